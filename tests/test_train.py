"""Training end to end on CPU: stage 1 then stage 2 into exports the pipeline samples from; SIGKILL + resume is
bit-identical to an uninterrupted run; SIGTERM saves and exits; a 2-process DDP run (gloo) ends with equal weights."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VAE, TinyTextEncoder
from safetensors.torch import load_file
from test_train_data import build_cache_with_alternatives

from semanticgen_core import PipelineConfig, SamplerConfig, SemanticGenPipeline
from semanticgen_core.checkpoint import CheckpointError, read_header
from semanticgen_core.compressor import SemanticCompressor
from semanticgen_core.vae import WanVAE
from semanticgen_core.video_io import read_video
from train import stage1, stage2
from train.data import CachedLatentDataset
from train.export import Stage1Export, load_stage1, load_stage2
from train.loop import drop_captions

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
FAST = ["--batch-size", "2", "--warmup-steps", "2", "--log-every", "1", "--ckpt-every", "2"]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_cache_with_alternatives(tmp_path_factory.mktemp("train"))["dir"]  # two clips with alternatives


def run_script(script, *args, **kw):
    return subprocess.Popen([sys.executable, str(ROOT / "train" / script), *map(str, args)], cwd=ROOT, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)  # fmt: skip


def wait_for_state(run: Path, proc, timeout=120.0) -> None:
    """Poll until the run has written its first training state."""
    end = time.time() + timeout
    while not list((run / "states").glob("step-*")):
        assert proc.poll() is None, proc.communicate()[0]
        assert time.time() < end, "no training state written in time"
        time.sleep(0.02)


def latest_step(run: Path) -> int:
    return max(int(p.name[5:]) for p in (run / "states").glob("step-*"))


def state_of(run: Path, step: int) -> dict:
    """Everything a training state holds, as comparable python objects."""
    folder = run / "states" / f"step-{step:08d}"
    out = {name: load_file(str(folder / f"{name}.safetensors")) for name in ("model", "ema_0", "rng_0")}
    out["optimizer"] = load_file(str(folder / "optimizer.safetensors"))  # no pickles in a state
    out["optimizer_json"] = json.loads((folder / "optimizer.json").read_text())
    assert not [p for p in folder.iterdir() if p.suffix in (".bin", ".pkl", ".pt")]
    trainer = json.loads((folder / "trainer_state.json").read_text())
    out["trainer"] = {k: v for k, v in trainer.items() if k != "resumed_from"}
    return out


def assert_same(a, b, path="state"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


def test_caption_dropout():
    g = torch.Generator().manual_seed(0)
    ctx, null = torch.randn(4, 3, 5), torch.randn(1, 5)
    assert torch.equal(drop_captions(ctx, null, 0.0, g), ctx)
    dropped = drop_captions(ctx, null, 1.0, g)
    assert torch.equal(dropped[:, 0], null.expand(4, 5)) and dropped[:, 1:].abs().sum() == 0


def test_stage1_then_stage2_exports_load_and_sample(cache, tmp_path):
    run1, run2, vae_file = tmp_path / "s1", tmp_path / "s2", tmp_path / "vae.safetensors"
    torch.manual_seed(0)
    vae = WanVAE.from_config(TINY_VAE).eval()
    vae.save(vae_file)
    common = ["--data", cache, "--max-steps", "4", "--sample-every", "4", "--sample-vae", str(vae_file), *FAST]
    out1 = stage1.main(stage1.parse_args([*common, "--out", str(run1)]))
    assert out1["step"] == 4 and (run1 / "loss.png").is_file()
    assert len((run1 / "log.jsonl").read_text().splitlines()) == 4
    frames = 4 * (CachedLatentDataset(cache)[0]["latents"].shape[1] - 1) + 1  # samples redraw the first item
    assert read_video(run1 / "samples" / "step-00000004.mp4").shape[0] == frames  # reference transfer, decoded
    header = read_header(run1 / "stage1_bundle.safetensors")
    assert header["role"] == "bundle" and header["semantic"]["kind"] == "test" and header["train"]["step"] == 4
    s1 = load_stage1(run1 / "stage1_bundle.safetensors")
    ema = load_file(str(run1 / "states" / "step-00000004" / "ema_0.safetensors"))
    assert torch.equal(s1.compressor.mlp[1].weight, ema["compressor.mlp.1.weight"])  # the export holds the EMA
    with pytest.raises(SystemExit, match="already has training states"):
        stage1.main(stage1.parse_args(["--data", cache, "--out", str(run1), "--max-steps", "5"]))

    stage2.main(stage2.parse_args([*common, "--stage1", str(run1 / "stage1_bundle.safetensors"), "--out", str(run2)]))
    s2 = load_stage2(run2 / "stage2_semantic_generator.safetensors", stage1=s1)
    assert s2.sem_generator.config.in_channels == 8 and s2.semantic == s1.semantic
    assert read_video(run2 / "samples" / "step-00000004.mp4").shape[0] == frames  # text -> plan -> latents -> video
    wrong = Stage1Export(s1.lat_generator, SemanticCompressor(16, 4), s1.semantic, s1.video, Path("other.safetensors"))
    with pytest.raises(CheckpointError, match=r"stage 2 .* vs stage 1 \(other.safetensors\).*dim 8.*dim 4"):
        load_stage2(run2 / "stage2_semantic_generator.safetensors", stage1=wrong)

    # the pipeline samples text -> video from the two exports
    samplers = dict(sem_sampler=SamplerConfig(2, 2.0, 2.0), lat_sampler=SamplerConfig(2, 2.0, 2.0))
    cfg = PipelineConfig(video=s1.video, semantic=s1.semantic, **samplers)
    pipe = SemanticGenPipeline(s2.sem_generator, s1.lat_generator, s1.compressor, vae, TinyTextEncoder(), None, cfg)
    frames = pipe("a square moves right", seconds=9 / 8, height=32, width=32, seed=0)
    assert frames.shape == (1, 9, 32, 32, 3) and frames.dtype == np.uint8


def test_init_fine_tunes_an_earlier_export_and_refuses_one_of_another_config(cache, tmp_path):
    base = ["--data", cache, "--max-steps", "2", *FAST]
    stage1.main(stage1.parse_args([*base, "--out", str(tmp_path / "s1"), "--seed", "1"]))
    bundle = tmp_path / "s1" / "stage1_bundle.safetensors"
    stage2.main(stage2.parse_args([*base, "--stage1", str(bundle), "--out", str(tmp_path / "s2"), "--seed", "1"]))
    gen = tmp_path / "s2" / "stage2_semantic_generator.safetensors"
    tiny = ["--max-steps", "1", "--lr", "1e-9", "--seed", "2"]  # another init seed; a step that barely moves
    stage1.main(stage1.parse_args([*base, *tiny, "--out", str(tmp_path / "t1"), "--init", str(bundle)]))
    stage2.main(stage2.parse_args([*base, *tiny, "--stage1", str(bundle), "--out", str(tmp_path / "t2"),
                                   "--init", str(gen)]))  # fmt: skip
    for a, b in ((bundle, tmp_path / "t1" / bundle.name), (gen, tmp_path / "t2" / gen.name)):
        before, after = load_file(str(a)), load_file(str(b))
        assert before.keys() == after.keys()
        assert all(torch.allclose(before[k], after[k], atol=1e-6) for k in before), a.name
    stage1.main(stage1.parse_args([*base, *tiny, "--out", str(tmp_path / "fresh")]))  # without --init: its own
    fresh = load_file(str(tmp_path / "fresh" / bundle.name))
    assert not torch.allclose(fresh["compressor.mlp.1.weight"], load_file(str(bundle))["compressor.mlp.1.weight"])
    with pytest.raises(SystemExit, match="config differs.*sem_channels"):
        stage1.main(stage1.parse_args([*base, *tiny, "--k", "4", "--out", str(tmp_path / "k4"), "--init", str(bundle)]))
    # --freeze-compressor: the latent generator learns, the plan space (and so stage 2) stays as it was
    fast = ["--max-steps", "2", "--lr", "1e-2", "--warmup-steps", "0", "--seed", "2"]
    stage1.main(stage1.parse_args([*base, *fast, "--out", str(tmp_path / "fz"), "--init", str(bundle),
                                   "--freeze-compressor"]))  # fmt: skip
    before, after = load_file(str(bundle)), load_file(str(tmp_path / "fz" / bundle.name))
    comp = [k for k in before if k.startswith("compressor.")]
    assert comp and all(torch.equal(before[k], after[k]) for k in comp)
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("lat_generator."))
    with pytest.raises(SystemExit, match="--freeze-compressor keeps a trained compressor: give --init"):
        stage1.main(stage1.parse_args([*base, "--out", str(tmp_path / "fz2"), "--freeze-compressor"]))
    with pytest.raises(SystemExit, match="--init .* and --init-wan"):
        stage2.main(stage2.parse_args([*base, *tiny, "--stage1", str(bundle), "--out", str(tmp_path / "w"),
                                       "--init", str(gen), "--init-wan", str(gen)]))  # fmt: skip


def test_sigkill_then_resume_equals_uninterrupted_run(cache, tmp_path):
    killed, ref = tmp_path / "killed", tmp_path / "ref"
    assert sum("ctx_alts" in e["shapes"] for e in CachedLatentDataset(cache).entries) == 2  # steps draw captions too
    args = ["--data", cache, *FAST]
    proc = run_script("stage1.py", *args, "--out", killed, "--max-steps", "100000")
    wait_for_state(killed, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = latest_step(killed)  # whatever the last complete state is; temp folders of a cut save are ignored
    (killed / "states" / ".tmp-step-99999999").mkdir(exist_ok=True)  # as a kill in the middle of a save leaves
    (killed / "states" / ".tmp-step-99999999" / "model.safetensors").write_bytes(b"half a file")
    final = saved + 3
    resumed = run_script("stage1.py", *args, "--out", killed, "--max-steps", final, "--resume")
    fresh = run_script("stage1.py", *args, "--out", ref, "--max-steps", final)
    log = resumed.communicate()[0]
    assert resumed.returncode == 0 and f"at step {saved}" in log, log
    assert fresh.wait() == 0, fresh.communicate()[0]
    assert json.loads((killed / "states" / f"step-{final:08d}" / "trainer_state.json").read_text())["resumed_from"] == [
        saved
    ]
    assert_same(state_of(killed, final), state_of(ref, final))
    assert not (killed / "states" / ".tmp-step-99999999").exists()
    assert_same(load_file(str(killed / "stage1_bundle.safetensors")), load_file(str(ref / "stage1_bundle.safetensors")))


def test_sigterm_saves_at_the_next_step_and_exits_143(cache, tmp_path):
    run = tmp_path / "term"
    proc = run_script(
        "stage1.py", "--data", cache, *FAST, "--ckpt-every", "1000", "--out", run, "--max-steps", "100000"
    )
    while not (run / "log.jsonl").is_file():  # training has started
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    log = proc.communicate(timeout=120)[0]
    assert proc.returncode == 143, log  # 128 + SIGTERM: `stage1 && stage2` stops here
    step = latest_step(run)
    assert f"SIGTERM: saved step {step}" in log and 0 < step < 1000
    assert read_header(run / "stage1_bundle.safetensors")["train"]["step"] == step


def test_two_process_ddp_run_ends_with_equal_weights(cache, tmp_path):
    run = tmp_path / "ddp"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
              str(port)]  # fmt: skip
    cmd = [*launch, str(ROOT / "train" / "stage1.py"), "--data", cache, "--out", str(run), "--max-steps", "3"]
    env = {**ENV, "ACCELERATE_USE_CPU": "1"}  # accelerate's CPU DDP (gloo) under its torchrun launcher
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    replicas = json.loads((run / "replicas.json").read_text())
    assert replicas["step"] == 3 and len(replicas["sha256"]) == 2 and len(set(replicas["sha256"])) == 1
    state = run / "states" / "step-00000003"
    assert json.loads((state / "trainer_state.json").read_text())["world"] == 2
    r0, r1 = (load_file(str(state / f"rng_{r}.safetensors"))["generator"] for r in (0, 1))
    assert not torch.equal(r0, r1)  # each rank draws its own noise


def test_stage1_trains_in_the_sampling_windows_when_asked():
    from semanticgen_core import DIT_CONFIGS, SemanticCompressor, SemanticGenDiT
    from train.stage1 import Stage1Model

    torch.manual_seed(0)
    lat, comp = SemanticGenDiT(DIT_CONFIGS["tiny"]), SemanticCompressor(16, 8)
    torch.nn.init.normal_(lat.sem_embedding.weight, std=0.1)  # let the plan take part, as after some training
    batch = {"latents": torch.randn(2, 16, 6, 4, 4), "sem_feats": torch.randn(2, 16, 3, 2, 2),
             "ctx": torch.randn(2, 5, 24)}  # fmt: skip

    def loss(window):
        return Stage1Model(lat, comp, window=window)(batch, torch.Generator().manual_seed(0))[0]

    # a window that covers the clip is full attention; a shorter one changes what each token sees
    assert torch.allclose(loss(0), loss(8), atol=1e-6) and not torch.allclose(loss(0), loss(2), atol=1e-4)


def test_object_weight_reweighs_the_masked_cells_and_needs_a_mask_in_the_cache(cache, tmp_path):
    from semanticgen_core import DIT_CONFIGS, SemanticCompressor, SemanticGenDiT
    from train.stage1 import Stage1Model

    torch.manual_seed(0)
    lat, comp = SemanticGenDiT(DIT_CONFIGS["tiny"]), SemanticCompressor(16, 8)
    mask = torch.zeros(2, 6, 4, 4)
    mask[:, :, 1:3, 1:3] = 1
    batch = {"latents": torch.randn(2, 16, 6, 4, 4), "sem_feats": torch.randn(2, 16, 3, 2, 2),
             "ctx": torch.randn(2, 5, 24), "fg_mask": mask}  # fmt: skip

    def loss(weight, fg=mask):
        return Stage1Model(lat, comp, object_weight=weight)({**batch, "fg_mask": fg}, torch.Generator().manual_seed(0))

    plain, weighted, only = loss(0.0)[1]["flow"], loss(5.0)[1]["flow"], loss(1e6)[1]["flow"]
    assert min(plain, only) < weighted < max(plain, only) and abs(only - plain) > 1e-3
    assert torch.allclose(loss(5.0, torch.ones_like(mask))[1]["flow"], plain)  # a mask over everything: no change
    with pytest.raises(SystemExit, match="--foreground-mask row-median"):
        train_to(cache, tmp_path / "run", 1, "--object-weight", "5")


# ----------------------------------------------------------------------------------------------------------------
# Training state you can trust
# ----------------------------------------------------------------------------------------------------------------


def train_to(cache, run, steps, *extra):
    return stage1.main(
        stage1.parse_args(["--data", cache, *FAST, "--out", str(run), "--max-steps", str(steps), *extra])
    )


@pytest.mark.parametrize("part", ["model.safetensors", "optimizer.json", "trainer_state.json", "rng_0.safetensors"])
def test_resume_skips_a_corrupt_newest_state_and_names_it(cache, tmp_path, capsys, part):
    run = tmp_path / "run"
    train_to(cache, run, 4)  # states step-2 and step-4
    bad = run / "states" / "step-00000004" / part
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # truncated
    with pytest.raises(SystemExit, match=f"{bad}: checksum mismatch"):
        train_to(cache, run, 6, "--resume", str(bad.parent))
    out = train_to(cache, run, 6, "--resume")
    log = capsys.readouterr().out
    assert f"{bad}: checksum mismatch" in log and "at step 2" in log and out["step"] == 6
    names = sorted(p.name for p in (run / "states").iterdir())
    assert names == ["bad-step-00000004", "step-00000004", "step-00000006"]  # the rotation kept the new ones
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]  # steps 3-4 of the first run were dropped when they were trained again


def test_a_full_disk_while_saving_loses_nothing(cache, tmp_path, monkeypatch):
    import errno

    import train.state as state

    run = tmp_path / "run"
    train_to(cache, run, 2)
    before = {p.name: p.read_bytes() for p in (run / "states" / "step-00000002").iterdir()}

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(state, "atomic_save_file", full)
    with pytest.raises(SystemExit, match=r"cannot save the training state to .*tmp-step-00000004: the disk is full"):
        train_to(cache, run, 4, "--resume")
    assert sorted(p.name for p in (run / "states").iterdir()) == ["step-00000002"]
    assert {p.name: p.read_bytes() for p in (run / "states" / "step-00000002").iterdir()} == before


def test_lora_mode_trains_adapters_and_new_layers_and_exports_a_loadable_lora(cache, tmp_path):
    from conftest import randomize
    from safetensors.torch import save_file

    from semanticgen_core import DIT_CONFIGS, SemanticGenDiT
    from semanticgen_core.lora import apply_lora, load_lora

    wan = randomize(SemanticGenDiT(DIT_CONFIGS["tiny"].__class__.from_dict({**DIT_CONFIGS["tiny"].to_dict(),
                                                                           "sem_channels": 0})), 0.2, seed=3)  # fmt: skip
    save_file({f"model.diffusion_model.{k}": v for k, v in wan.state_dict().items()}, str(tmp_path / "wan.safetensors"))
    run = tmp_path / "lora"
    args = ["--data", cache, "--out", str(run), "--init-wan", str(tmp_path / "wan.safetensors"), "--max-steps", "2",
            "--lora-rank", "4", "--lora-alpha", "8", "--lr", "1e-2", "--gradient-checkpointing", *FAST]  # fmt: skip
    stage1.main(stage1.parse_args(args))
    state = load_file(str(run / "states" / "step-00000002" / "model.safetensors"))
    base = wan.state_dict()
    frozen = [k for k in base if not k.startswith(("patch_embedding", "head.head"))]  # shapes kept: frozen
    assert all(torch.equal(state[f"lat_generator.{k}"], base[k]) for k in frozen)
    assert state["lat_generator.sem_embedding.weight"].abs().sum() > 0  # new layer: trained from its zero init
    assert state["lat_generator.blocks.1.ffn.2.adapters.0.up"].abs().sum() > 0  # adapters: trained from zero

    # the export is the merged model; the LoRA file on the Wan base (+ the trained new layer) gives the same model
    s1 = load_stage1(run / "stage1_bundle.safetensors")
    lora = load_lora(run / "stage1_lora.safetensors", wan)
    assert len(lora) == 2 * 10
    rebuilt = SemanticGenDiT(s1.lat_generator.config)
    rebuilt.load_state_dict({**{k: v for k, v in base.items()}, **{k: v for k, v in s1.lat_generator.state_dict().items()
                            if k.startswith("sem_embedding")}})  # fmt: skip
    apply_lora(rebuilt, load_lora(run / "stage1_lora.safetensors", rebuilt), 1.0, "merge")
    merged = s1.lat_generator.state_dict()
    assert max((rebuilt.state_dict()[k] - merged[k]).abs().max() for k in frozen) < 1e-6
    assert max((merged[k] - base[k]).abs().max() for k in frozen) > 1e-4  # and the LoRA did change the blocks

    # bf16 frozen base under bf16 autocast (the real-size setting) runs; the frozen weights stay bf16
    run16 = tmp_path / "lora16"
    args16 = [a if a != str(run) else str(run16) for a in args]
    proc = run_script("stage1.py", *args16, "--base-dtype", "bf16", "--mixed-precision", "bf16", "--max-steps", "1")
    assert proc.wait(timeout=300) == 0, proc.communicate()[0][-3000:]  # own process: accelerate's state is global
    state16 = load_file(str(run16 / "states" / "step-00000001" / "model.safetensors"))
    assert state16["lat_generator.blocks.0.self_attn.q.weight"].dtype == torch.bfloat16
    assert state16["lat_generator.blocks.0.self_attn.q.adapters.0.down"].dtype == torch.float32
    assert state16["lat_generator.blocks.0.norm3.weight"].dtype == torch.float32


def test_stage1_trains_under_bf16_mixed_precision(cache, tmp_path):
    """accelerate's mixed_precision='bf16' (fp32 weights, bf16 autocast) on CPU: finite losses, a bf16 export that
    loads in bf16 with the fp32 parts kept."""
    run = tmp_path / "bf16"
    # a process of its own: accelerate's state is process-wide, and earlier tests initialised it without it
    proc = run_script("stage1.py", "--data", cache, "--out", run, "--max-steps", "2", "--mixed-precision", "bf16",
                      "--export-dtype", "bf16", *FAST)  # fmt: skip
    log = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, log
    losses = [json.loads(line)["loss"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert len(losses) == 2 and np.isfinite(losses).all()
    s1 = load_stage1(run / "stage1_bundle.safetensors", dtype="auto")  # the file's dtype
    assert s1.lat_generator.dtype == torch.bfloat16 and s1.lat_generator.blocks[0].modulation.dtype == torch.float32
