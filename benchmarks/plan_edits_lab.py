"""Plans you can edit, measured in the shapes lab (issue 15, item 4) on the embedded model:

1. schedule  60 s videos from 8 segment prompts (one character, a new motion every 6-8 s): the probe's motion per
             segment against the segment's prompt, and the character (colour and shape) per 4 s window; the same
             probe on the renders of the same schedules is the ceiling.
2. regen     the plan of a scheduled video regenerated over 20-40 s (stage-A inpainting), rendered with the same
             seeds: per-frame difference to the original inside and outside the range.
3. splice    two plans encoded from 10 s references (the object still on the left, still on the right, one prompt
             for both) spliced with a one-frame crossfade: when the object moves across, against the cut.

    python benchmarks/plan_edits_lab.py [--weights DIR] [--n 10] [--json F] [--strip PNG]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from paper_claims_plots import frame_grid  # noqa: E402
from plan_edits import per_second_diff, regenerated_video, render, scheduled_video  # noqa: E402

from semanticgen_core.config import SamplerConfig  # noqa: E402
from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path, load_embedded_pipeline, manifest  # noqa: E402
from semanticgen_core.lab.world import render as render_scene  # noqa: E402
from semanticgen_core.lab.world import render_long, sample_long, sample_scene  # noqa: E402
from semanticgen_core.plan_edit import splice  # noqa: E402
from semanticgen_core.plan_io import SemanticPlan  # noqa: E402

SIZE = 64


def rate(hits) -> dict:
    lo, hi = metrics.wilson_interval(int(np.sum(hits)), len(hits))
    return {"rate": float(np.mean(hits)), "lo": lo, "hi": hi, "n": len(hits)}


def fmt(r: dict) -> str:
    return f"{100 * r['rate']:.0f} % [{100 * r['lo']:.0f}, {100 * r['hi']:.0f}] (n={r['n']})"


def eight_segments(seed: int, i: int, seconds: float = 60.0):
    """A LongScene of 8 segments (6-8 s each) for video i: the first rng stream that gives eight."""
    for k in range(100):
        long = sample_long(np.random.default_rng([seed, i, k]), seconds, (7, 8), "heldout")
        if len(long.scenes) == 8:
            return long
    raise RuntimeError("no 8-segment schedule in 100 draws")


def object_x(frames: np.ndarray, threshold: float = 40.0) -> np.ndarray:
    """Per frame, the x centroid (pixels) of what differs from its row's median colour (the object); NaN if none."""
    x = frames.astype(np.float32)
    fg = np.abs(x - np.median(x, axis=2, keepdims=True)).max(-1) > threshold  # [T, H, W]
    cols = np.arange(frames.shape[2], dtype=np.float32)
    count = fg.sum((1, 2))
    return np.where(count > 0, (fg * cols).sum((1, 2)) / np.maximum(count, 1), np.nan)


def schedules(pipe, probe, sampler, window, n, seed):
    """Experiment 1, and the videos for experiment 2 and the strip."""
    fps = pipe.config.video.fps
    motion, motion_real, character, videos = [], [], [], []
    for i in range(n):
        long = eight_segments(seed, i)
        schedule = [(float(t), c) for t, c in zip(long.starts, long.captions(style="canonical"))]
        video, plan, text = scheduled_video(pipe, schedule, 60.0, sampler, seed + i, window, SIZE)
        real, segments = render_long(long, fps, SIZE, SIZE)
        n_frames = min(len(video), len(real))
        segments = [(a, min(b, n_frames), m) for a, b, m in segments if a < n_frames]
        preds = metrics.segment_predictions(probe, video, segments)
        motion += [p["motion"] == s[2] for p, s in zip(preds, segments)]
        motion_real += [
            p["motion"] == s[2] for p, s in zip(metrics.segment_predictions(probe, real, segments), segments)
        ]
        windows = metrics.segment_predictions(probe, video, window_seconds=4.0, fps=fps)
        character += [p["color"] == long.color and p["shape"] == long.shape for p in windows]
        videos.append((long, schedule, video, plan, text, segments))
        print(f"[schedule] video {i}: motion {np.mean(motion[-len(segments):]):.2f}, character "
              f"{np.mean(character[-len(windows):]):.2f}", flush=True)  # fmt: skip
    r = {"segment_motion": rate(motion), "segment_motion_real_renders": rate(motion_real),
         "character_kept_4s": rate(character)}  # fmt: skip
    return r, videos


def regen(pipe, sampler, window, videos, start, end, seed):
    """Experiment 2: per-frame |difference| (0..255) between a video and its plan regenerated over [start, end);
    `far`: frames more than one stage-B window from the range (nearer ones share windows with it)."""
    fps = pipe.config.video.fps
    reach = (window or 0) * pipe.config.video.temporal_factor / fps  # seconds
    per_video = []
    for i, (_, _, video, plan, text, _) in enumerate(videos):
        edited, _ = regenerated_video(pipe, plan, text, start, end, sampler, seed + i, window)
        frame_diff = np.abs(video.astype(np.float32) - edited.astype(np.float32)).mean(axis=(1, 2, 3))
        t = np.arange(len(frame_diff)) / fps
        inside, outside = frame_diff[(t >= start) & (t < end)], frame_diff[(t < start) | (t >= end)]
        far = frame_diff[(t < start - reach) | (t >= end + reach)]
        per_video.append({"inside_mean": float(inside.mean()), "outside_mean": float(outside.mean()),
                          "outside_max": float(outside.max()), "outside_frames_over_1": int((outside > 1.0).sum()),
                          "outside_frames": int(outside.size), "far_mean": float(far.mean()),
                          "far_max": float(far.max()), "reach_seconds": reach,
                          "per_second": per_second_diff(video, edited, fps)})  # fmt: skip
        print(f"[regen] video {i}: inside {inside.mean():.2f}, outside mean {outside.mean():.3f} max "
              f"{outside.max():.2f}", flush=True)  # fmt: skip
    keys = ("inside_mean", "outside_mean", "outside_max", "far_mean", "far_max")
    return {"range": [start, end], "videos": per_video, **{k: float(np.mean([v[k] for v in per_video])) for k in keys}}


def splices(pipe, sampler, window, n, seed, half=10.0):
    """Experiment 3: the object's x jumps where two reference plans are spliced; when, against the cut."""
    spec, fps = pipe.config.semantic, pipe.config.video.fps
    frame_s = spec.temporal_patch / spec.fps
    offsets = []
    for i in range(n):
        rng = np.random.default_rng([seed, 99, i])
        base = replace(sample_scene(rng, "train", half), motion="still", speed=0.0, y=0.5)
        plans = []
        for x in (0.28, 0.72):
            ref = render_scene(replace(base, x=x), half, fps=spec.fps, num_frames=round(half * spec.fps) + 1)
            clip, seconds = pipe.reference_clip(ref, SIZE, SIZE, seconds=half)
            z = pipe.plan_from_video(clip)
            plans.append(SemanticPlan(z, spec, pipe.config.video, seconds, SIZE, SIZE, "reference"))
        joined = splice(plans[0], plans[1], crossfade=1)
        # the cut: the first video frame of b's first unmixed semantic frame (one latent frame each, causal VAE)
        cut = (pipe.config.video.temporal_factor * (plans[0].grid[0] - 1) + 1) / fps
        prompt = f"a {base.color} {base.shape} stays still"
        ctx, uncond = pipe.encode_text([prompt])
        video = render(pipe, joined, (ctx, uncond, None), sampler, seed + i, window)
        xs = object_x(video)
        mid = SIZE / 2
        right = np.nan_to_num(xs, nan=-1) > mid
        # the switch: the first frame from which the object stays on the right
        switch = next((f for f in range(len(right)) if right[f:].all()), None)
        offsets.append(np.nan if switch is None else switch / fps - cut)
        print(f"[splice] {i}: cut {cut:.2f} s, switch {np.nan if switch is None else switch / fps:.2f} s", flush=True)
    off = np.asarray(offsets, dtype=float)
    within = [bool(abs(o) <= frame_s) for o in off]  # NaN (no clean switch) counts as a miss
    return {"semantic_frame_seconds": frame_s, "offsets_seconds": [None if np.isnan(o) else float(o) for o in off],
            "within_one_semantic_frame": rate(within),
            "median_abs_offset_seconds": float(np.nanmedian(np.abs(off))) if np.isfinite(off).any() else None}  # fmt: skip


def strip(path: Path, videos, fps: float) -> list[str]:
    """The README's picture of the first video: a row per segment (its start and motion), 6 frames across it."""
    long, schedule, video, _, _, segments = videos[0]
    rows = []
    for (t, _), (a, b, motion) in zip(schedule, segments):
        picks = np.linspace(a, b - 1, 6).round().astype(int)
        rows.append((f"{t:4.0f} s: {motion}", [video[i] for i in picks]))
    frame_grid(path, f"60 s from 8 prompts ({long.color} {long.shape}): 6 frames of each segment", rows, scale=2)
    return [c for _, c in schedule]


def main(args):
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    probe = metrics.AttributeProbe.load(embedded_path("probe", args.weights))
    pipe = load_embedded_pipeline(with_encoder=True, weights_dir=args.weights)
    info = manifest(args.weights)
    window = info.get("window")
    sampler = SamplerConfig(**info.get("sampler", {"steps": 20, "cfg": 4.0, "shift": 2.0}))
    t0 = time.time()
    r = {"n": args.n, "n_regen": args.n_regen, "n_splice": args.n_splice, "window": window}
    r["schedule"], videos = schedules(pipe, probe, sampler, window, args.n, args.seed)
    r["regen"] = regen(pipe, sampler, window, videos[: args.n_regen], *args.regen_range, args.seed)
    r["splice"] = splices(pipe, sampler, window, args.n_splice, args.seed)
    r["seconds"] = time.time() - t0
    if args.strip:
        r["strip_prompts"] = strip(Path(args.strip), videos, pipe.config.video.fps)
    s, g, p = r["schedule"], r["regen"], r["splice"]
    reach = g["videos"][0]["reach_seconds"] if g["videos"] else 0.0
    print(f"segment motion (8 prompts, 60 s): {fmt(s['segment_motion'])}; on the renders: "
          f"{fmt(s['segment_motion_real_renders'])}")  # fmt: skip
    print(f"character kept per 4 s: {fmt(s['character_kept_4s'])}")
    print(f"regenerated {g['range'][0]:g}-{g['range'][1]:g} s: mean |diff| inside {g['inside_mean']:.2f}, outside "
          f"{g['outside_mean']:.3f} (worst frame {g['outside_max']:.2f}); more than one window ({reach:g} s) away "
          f"{g['far_mean']:.3f} (worst {g['far_max']:.2f}) of 255")  # fmt: skip
    print(f"splice: switch within one semantic frame ({p['semantic_frame_seconds']:g} s) of the cut: "
          f"{fmt(p['within_one_semantic_frame'])}, median |offset| {p['median_abs_offset_seconds']} s")  # fmt: skip
    print(f"{r['seconds']:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return r


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="embedded weights folder (default: the shipped ones)")
    p.add_argument("--n", type=int, default=10, help="60 s scheduled videos (8 segments each)")
    p.add_argument("--n-regen", type=int, default=3, help="of those, how many get 20-40 s regenerated")
    p.add_argument("--regen-range", type=float, nargs=2, default=(20.0, 40.0), help="seconds to regenerate")
    p.add_argument("--n-splice", type=int, default=20, help="spliced reference plans")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="", help="write the results here")
    p.add_argument("--strip", default="", help="write a PNG of frames from each segment here")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
