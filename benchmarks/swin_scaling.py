"""Stage-B forward time vs video length: shifted-window vs full attention, measured side by side in one run.

    python benchmarks/swin_scaling.py
    python benchmarks/swin_scaling.py --device cuda --dim 1536 --heads 12 --layers 4 --base-frames 21

The latent generator sees latents [1, 16, T, H, W] plus the semantic plan in context (one semantic token per
`--sem-ratio` latent tokens, like the paper's 1/16). Windowed cost should grow linearly with T (time(8x)/time(1x)
<= 9); full attention grows quadratically once attention dominates.
"""

import argparse
import sys
from pathlib import Path

import torch
from timing import median_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.config import DiTConfig
from semanticgen_core.dit import SemanticGenDiT


def main(args):
    torch.manual_seed(0)
    cfg = DiTConfig(
        dim=args.dim, num_heads=args.heads, ffn_dim=4 * args.dim, num_layers=args.layers, text_dim=64, sem_channels=8
    )
    model = SemanticGenDiT(cfg).eval().to(args.device)
    h = w = args.size
    ctx = torch.randn(1, 16, 64, device=args.device)
    t = torch.rand(1, device=args.device)
    base = None
    print(
        f"dim={args.dim} layers={args.layers} latent {h}x{w}, window={args.window} latent frames, device={args.device}"
    )
    print(
        f"{'length':>6} {'T':>4} {'tokens':>7} {'swin s':>8} {'full s':>8} {'swin x1':>8} {'full x1':>8} {'full/swin':>9}"
    )
    for mult in args.mults:
        frames = args.base_frames * mult
        x = torch.randn(1, 16, frames, h, w, device=args.device)
        # semantic plan: 1 frame per 4 latent frames, (H/2)/2 x (W/2)/2 tokens -> 1/16 of the latent tokens
        sem = torch.randn(1, 8, max(1, frames // 4), max(1, h // 4), max(1, w // 4), device=args.device)
        with torch.inference_mode():
            ts = median_time(lambda: model(x, t, ctx, sem=sem, window=args.window), args.rounds, args.device)
            tf = median_time(lambda: model(x, t, ctx, sem=sem, window=None), args.rounds, args.device)
        base = base or (ts, tf)
        tokens = frames * h * w // 4 + sem[0, 0].numel()
        print(
            f"{mult:>5}x {frames:>4} {tokens:>7} {ts:>8.3f} {tf:>8.3f} {ts / base[0]:>8.2f} {tf / base[1]:>8.2f} {tf / ts:>9.2f}"
        )


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dim", type=int, default=256, help="hidden size")
    p.add_argument("--heads", type=int, default=4, help="attention heads")
    p.add_argument("--layers", type=int, default=2, help="transformer blocks")
    p.add_argument("--size", type=int, default=16, help="latent height = width")
    p.add_argument("--base-frames", type=int, default=8, help="latent frames at 1x")
    p.add_argument("--window", type=int, default=8, help="attention window in latent frames")
    p.add_argument("--mults", type=int, nargs="+", default=[1, 2, 4, 8], help="length multiples to measure")
    p.add_argument("--rounds", type=int, default=3, help="timed runs per point (median)")
    main(p.parse_args())
