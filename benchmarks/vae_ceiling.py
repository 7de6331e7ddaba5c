"""What a VAE gives back of real held-out clips: the ceiling it puts on the embedded model's attributes and crispness.

For each VAE file: the attribute probe on reconstructions of n held-out 2 s clips and of the last 2 s of n 8 s clips
(colour / shape / motion, 95 % Wilson intervals), PSNR on the 8 s clips, edge sharpness of the 2 s reconstructions
against the real clips (embedded_eval.vae_scores; the same clips for every VAE). Compare VAEs trained with equal
budgets, e.g. `train/pretrain.py vae --spatial-factor 4` against 8.

And whether the encoder keeps colours apart late in a clip (`colour_separation`): each of `--n-still` held-out
scenes, made still, in each colour, 8 s; the distance between the two nearest colours' latents at the last latent
frame over that at frame 0. Below 1 the settled codes of two colours have moved together, which no decoder undoes.

    python benchmarks/vae_ceiling.py --n 100 semanticgen_core/lab/weights/shapes_vae.safetensors runs/vae4/shapes_vae.safetensors
"""

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from embedded_eval import ATTRS, FPS, fmt, vae_scores  # noqa: E402

from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path  # noqa: E402
from semanticgen_core.lab.world import COLORS, render, sample_scene  # noqa: E402
from semanticgen_core.vae import frames_to_video, load_vae  # noqa: E402


def colour_separation(vae, n: int, seed: int) -> dict:
    """For n held-out scenes made still: min over colour pairs of the latent distance at the last latent frame of an
    8 s clip, divided by the same at frame 0 (median, worst, and the pair that comes closest most often)."""
    rng, names = np.random.default_rng(seed), list(COLORS)
    ratios, pairs = [], []
    for _ in range(n):
        scene = replace(sample_scene(rng, "heldout", 8.0), motion="still")
        with torch.no_grad():  # [C, T, h, w] each
            z = {c: vae.encode(frames_to_video(render(replace(scene, color=c), 8.0, fps=FPS)))[0] for c in names}
        dist = {(a, b): [float((z[a][:, t] - z[b][:, t]).norm()) for t in (0, -1)]
                for i, a in enumerate(names) for b in names[i + 1 :]}  # fmt: skip
        first, last = min(d[0] for d in dist.values()), min(d[1] for d in dist.values())
        ratios.append(last / first)
        pairs.append("-".join(min(dist, key=lambda k: dist[k][1])))
    top = max(set(pairs), key=pairs.count)
    return {"median": float(np.median(ratios)), "worst": float(np.min(ratios)), "closest_pair": top,
            "closest_pair_share": pairs.count(top) / n, "n": n}  # fmt: skip


def main(args) -> dict:
    missing = [v for v in args.vaes if not Path(v).is_file()]
    if missing:
        raise SystemExit(f"no such VAE file: {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    probe = metrics.AttributeProbe.load(embedded_path("probe"))
    out = {}
    for path in args.vaes:
        vae = load_vae(path).eval()
        r = out[path] = vae_scores(vae, probe, args.n, args.seed)
        r["colour_separation"] = sep = colour_separation(vae, args.n_still, args.seed)
        print(f"{path}: PSNR 8 s {r['psnr_8s_mean']:.1f} dB (worst {r['psnr_8s_min']:.1f}); probe on 2 s "
              + ", ".join(f"{k} {fmt(r['probe']['2s'][k])}" for k in ATTRS)
              + f"; sharpness {r['sharpness_recon']:.1f} / real {r['sharpness_real']:.1f}; last 2 s of 8 s "
              + ", ".join(f"{k} {fmt(r['probe']['8s_tail'][k])}" for k in ATTRS)
              + f"; nearest colours' latents, last frame / first: median {sep['median']:.2f}, worst {sep['worst']:.2f}"
              + f" ({sep['closest_pair']} in {sep['closest_pair_share']:.0%})", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vaes", nargs="+", help="VAE files (semanticgen_core.vae.load_vae)")
    p.add_argument("--n", type=int, default=100, help="held-out clips of each length")
    p.add_argument("--n-still", type=int, default=20, help="still scenes for the colour separation (6 clips each)")
    p.add_argument("--seed", type=int, default=2, help="clip seed (embedded_eval.py's VAE clips: its seed + 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
