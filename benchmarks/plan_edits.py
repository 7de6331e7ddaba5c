"""Plan edits on a real pipeline: a scheduled video, the same video with a time range of its plan regenerated, and
the per-second pixel difference between the two (the kept spans should stay unchanged where stage B's windows do
not reach the edit). Hooks for the lab evaluation: `scheduled_video`, `regenerated_video`, `per_second_diff`.

    python benchmarks/plan_edits.py --seconds 60 --regen 20 40 --steps 20 \
        --prompt "a purple circle moves to the right" --prompt "15: a purple circle moves up" \
        --prompt "30: a purple circle moves to the left" --prompt "45: a purple circle moves down"
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core.config import SamplerConfig  # noqa: E402
from semanticgen_core.plan_edit import regenerate  # noqa: E402
from semanticgen_core.plan_io import SemanticPlan  # noqa: E402
from semanticgen_core.schedule import parse_schedule  # noqa: E402


def scheduled_video(pipe, schedule, seconds, sampler, seed=0, window=None, size=64):
    """(uint8 frames [F, H, W, 3], SemanticPlan, (ctx, uncond, starts)) of a prompt schedule."""
    ctx, uncond, starts = pipe.encode_schedule(schedule)
    grid = pipe.plan_grid(seconds, size, size)
    z_sem = pipe.generate_plan(ctx, uncond, grid, sampler, torch.Generator().manual_seed(seed), starts=starts)
    plan = SemanticPlan(z_sem.float().cpu(), pipe.config.semantic, pipe.config.video, seconds, size, size,
                        "generated", schedule)  # fmt: skip
    return render(pipe, plan, (ctx, uncond, starts), sampler, seed, window), plan, (ctx, uncond, starts)


def render(pipe, plan: SemanticPlan, text, sampler, seed=0, window=None) -> np.ndarray:
    """Stage B + decode of a plan with a fixed seed: uint8 frames [F, H, W, 3]."""
    ctx, uncond, starts = text
    shape = pipe.config.video.latent_shape(plan.seconds, plan.height, plan.width)
    gen = torch.Generator().manual_seed(seed + 1)
    z = pipe.generate_latents(plan.z, ctx, uncond, shape, sampler, None, window, gen, starts=starts)
    return pipe.decode(z)[0]


def regenerated_video(pipe, plan, text, start, end, sampler, seed=0, window=None):
    """(frames, plan) with [start, end) s of the plan regenerated (stage-A inpainting) and rendered as before."""
    ctx, uncond, starts = text
    new = regenerate(pipe, plan, start, end, ctx, uncond, sampler, torch.Generator().manual_seed(seed + 7),
                     starts=starts)  # fmt: skip
    return render(pipe, new, text, sampler, seed, window), new


def per_second_diff(a: np.ndarray, b: np.ndarray, fps: float) -> list[float]:
    """Mean absolute pixel difference (0..255) of two videos [F, H, W, 3], per second."""
    d = np.abs(a.astype(np.float32) - b.astype(np.float32)).mean(axis=(1, 2, 3))
    n = int(np.ceil(len(d) / fps))
    return [float(d[int(i * fps) : int((i + 1) * fps)].mean()) for i in range(n)]


def main(args):
    from semanticgen_core.lab.embedded import load_embedded_pipeline, manifest

    pipe = load_embedded_pipeline(args.device)
    sampler = SamplerConfig(steps=args.steps, cfg=args.cfg, shift=args.shift)
    window = args.window or manifest().get("window")
    schedule = parse_schedule(args.prompt)
    t0 = time.time()
    video, plan, text = scheduled_video(pipe, schedule, args.seconds, sampler, args.seed, window)
    edited, _ = regenerated_video(pipe, plan, text, *args.regen, sampler, args.seed, window)
    diff = per_second_diff(video, edited, pipe.config.video.fps)
    a, b = args.regen
    inside = [d for i, d in enumerate(diff) if a <= i < b]
    outside = [d for i, d in enumerate(diff) if not a <= i < b]
    print(f"{args.seconds:g} s, regenerated {a:g}-{b:g} s, window {window}, {time.time() - t0:.0f} s")
    print("per-second mean |diff| (0..255):", " ".join(f"{d:.2f}" for d in diff))
    print(f"inside the range: {np.mean(inside):.2f}; outside: {np.mean(outside):.2f} (max {np.max(outside):.2f})")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--prompt", action="append", required=True, help="'SECONDS: prompt', repeated (a schedule)")
    p.add_argument("--seconds", type=float, default=60.0, help="video length")
    p.add_argument("--regen", type=float, nargs=2, default=(20.0, 40.0), help="time range of the plan to regenerate")
    p.add_argument("--steps", type=int, default=20, help="Euler steps per stage")
    p.add_argument("--cfg", type=float, default=4.0, help="guidance scale")
    p.add_argument("--shift", type=float, default=2.0, help="timestep shift")
    p.add_argument("--window", type=int, default=0, help="stage-B window (0: the embedded model's)")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
