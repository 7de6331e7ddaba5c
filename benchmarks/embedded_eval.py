"""Evaluation of the embedded shapes-world model (issue targets in brackets):

- text adherence on held-out prompts (attribute combinations never seen in training, paraphrase templates never
  seen in training), scored by the attribute probe: colour [>= 90 %], motion [>= 85 %], shape [>= 80 %]
- VBench temporal flickering of the generated clips
- reference transfer: the output keeps the reference's motion direction [>= 90 %] while taking colour / shape
  from the prompt
- one 60 s video: the character keeps its colour and shape in [>= 95 %] of 4 s segments; drift (FramePack) of the
  per-segment probe confidence between the first and last 15 %
- speed: a 2 s clip end to end through the CLI [<= 15 s on 2 CPU cores], a 60 s video and its peak memory

    python benchmarks/embedded_eval.py --n 60          # prints a markdown table; JSON next to it with --json
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path, load_embedded_pipeline  # noqa: E402
from semanticgen_core.lab.world import COLORS, SHAPES, ShapesWorld, parse_caption, render, sample_scene  # noqa: E402
from semanticgen_core.pipeline import video_to_uint8  # noqa: E402
from semanticgen_core.vae import frames_to_video  # noqa: E402

ATTRS = ("color", "shape", "motion")


def cli_run(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of `python -m semanticgen_core generate ...` in a fresh process."""
    t0 = time.time()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-m", "semanticgen_core", "generate", "--quiet", *args], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return time.time() - t0, max(peak, before) / 1024


def main(args):
    torch.manual_seed(0)
    probe = metrics.AttributeProbe.load(embedded_path("probe"))
    pipe = load_embedded_pipeline(with_encoder=True)
    results = {}

    # 1. text adherence on held-out prompts
    world = ShapesWorld(n=args.n, seed=args.seed, split="heldout", paraphrase=1.0)
    prompts = [world.scene(i)[1] for i in range(args.n)]
    videos = []
    for i, p in enumerate(prompts):
        videos.append(pipe(p, seconds=2.0, height=64, width=64, seed=i)[0])
    results["adherence"] = metrics.text_adherence(probe, videos, prompts)
    results["flicker"] = float(np.mean([metrics.temporal_flickering(v) for v in videos]))
    results["flicker_real"] = float(np.mean([metrics.temporal_flickering(world[i]["frames"]) for i in range(args.n)]))

    # 1b. the VAE's ceiling: the probe on reconstructions of real held-out renders (2 s, and the last 2 s of 8 s)
    rng = np.random.default_rng(args.seed + 2)
    for name, seconds in (("vae_recon", 2.0), ("vae_recon_8s_tail", 8.0)):
        scenes = [sample_scene(rng, "heldout", seconds) for _ in range(args.n)]
        recs = []
        for scene in scenes:
            real = render(scene, seconds, fps=8, num_frames=round(seconds * 8) + 1)
            with torch.no_grad():
                recs.append(video_to_uint8(pipe.vae.decode(pipe.vae.encode(frames_to_video(real))))[0][-17:])
        preds = probe.predict_batch(recs)
        results[name] = {k: float(np.mean([p[k] == getattr(s, k) for p, s in zip(preds, scenes)])) for k in ATTRS}

    # 2. reference transfer: motion from a rendered reference, colour and shape from the prompt
    rng = np.random.default_rng(args.seed + 1)
    refs, gens, colour_ok = [], [], []
    for i in range(args.n_ref):
        scene = sample_scene(rng, "heldout")
        ref = render(scene, 2.0, fps=pipe.config.semantic.fps, num_frames=10)
        color = [c for c in COLORS if c != scene.color][i % 5]
        shape = [s for s in SHAPES if s != scene.shape][i % 2]
        out = pipe(f"a {color} {shape}", seconds=2.0, height=64, width=64, seed=i, reference=ref)[0]
        refs.append(render(scene, 2.0, fps=8, num_frames=17))
        gens.append(out)
        colour_ok.append(probe.predict(out)["color"] == color)
    results["transfer_motion"] = metrics.motion_agreement_rate(probe, refs, gens)
    results["transfer_prompt_colour"] = float(np.mean(colour_ok))

    # 3. speed through the CLI, and the 60 s video
    with tempfile.TemporaryDirectory() as tmp:
        short = Path(tmp, "short.mp4")
        results["cli_2s_seconds"], _ = cli_run(["--prompt", "a red circle moves to the right", "--out", str(short)])
        long_path = Path(tmp, "long.mp4")
        t, peak = cli_run(["--prompt", args.long_prompt, "--seconds", "60", "--out", str(long_path)])
        results["cli_60s_seconds"], results["cli_60s_peak_mib"] = t, peak
        from semanticgen_core.video_io import read_video

        frames = read_video(long_path)
    preds = metrics.segment_predictions(probe, frames, window_seconds=4.0, fps=8)
    attrs = parse_caption(args.long_prompt)  # the prompt's colour and shape are the target
    keep = [p["color"] == attrs["color"] and p["shape"] == attrs["shape"] for p in preds]
    results["long_consistency"] = float(np.mean(keep))
    results["long_flicker_drift"] = metrics.drift(
        [metrics.temporal_flickering(frames[i : i + 32]) for i in range(0, len(frames) - 32, 32)]
    )
    results["n"], results["n_ref"] = args.n, args.n_ref
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return results


def _pct(d: dict) -> str:
    return " / ".join(f"{d[k]:.0%}" for k in ATTRS)


def print_table(r: dict) -> None:
    a = r["adherence"]
    rows = [
        ("text adherence: colour (held-out prompts)", f"{a['color']:.0%}", ">= 90 %"),
        ("text adherence: motion direction", f"{a['motion']:.0%}", ">= 85 %"),
        ("text adherence: shape", f"{a['shape']:.0%}", ">= 80 %"),
        (
            "VAE ceiling: probe on reconstructions of real 2 s clips (colour / shape / motion)",
            _pct(r["vae_recon"]),
            "-",
        ),
        ("VAE ceiling: the same on the last 2 s of 8 s clips", _pct(r["vae_recon_8s_tail"]), "-"),
        ("temporal flickering (generated / real renders)", f"{r['flicker']:.4f} / {r['flicker_real']:.4f}", "-"),
        ("reference transfer keeps the motion", f"{r['transfer_motion']:.0%}", ">= 90 %"),
        ("reference transfer takes the prompt's colour", f"{r['transfer_prompt_colour']:.0%}", "-"),
        ("60 s video keeps its character (4 s segments)", f"{r['long_consistency']:.0%}", ">= 95 %"),
        ("60 s video flicker drift (first vs last 15 %)", f"{r['long_flicker_drift']:.4f}", "-"),
        ("2 s clip through the CLI, end to end", f"{r['cli_2s_seconds']:.1f} s", "<= 15 s"),
        (
            "60 s video through the CLI (peak RSS)",
            f"{r['cli_60s_seconds']:.0f} s ({r['cli_60s_peak_mib']:.0f} MiB)",
            "minutes",
        ),
    ]
    print(f"\n| metric (n={r['n']} prompts, {r['n_ref']} references) | measured | target |\n| --- | --- | --- |")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=60, help="held-out prompts")
    p.add_argument("--n-ref", type=int, default=20, help="reference-transfer clips")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts and references")
    p.add_argument("--long-prompt", default="a yellow square moves to the right", help="prompt of the 60 s video")
    p.add_argument("--json", default=None, help="also write the results here")
    main(p.parse_args())
