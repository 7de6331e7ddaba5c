"""What a VAE gives back of real held-out clips: the ceiling it puts on the embedded model's attributes and crispness.

For each VAE file: the attribute probe on reconstructions of n held-out 2 s clips and of the last 2 s of n 8 s clips
(colour / shape / motion, 95 % Wilson intervals), PSNR on the 8 s clips, edge sharpness of the 2 s reconstructions
against the real clips (embedded_eval.vae_scores; the same clips for every VAE). Compare VAEs trained with equal
budgets, e.g. `train/pretrain.py vae --spatial-factor 4` against 8.

    python benchmarks/vae_ceiling.py --n 100 semanticgen_core/lab/weights/shapes_vae.safetensors runs/vae4/shapes_vae.safetensors
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedded_eval import ATTRS, fmt, vae_scores  # noqa: E402

from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path  # noqa: E402
from semanticgen_core.vae import load_vae  # noqa: E402


def main(args) -> dict:
    missing = [v for v in args.vaes if not Path(v).is_file()]
    if missing:
        raise SystemExit(f"no such VAE file: {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    probe = metrics.AttributeProbe.load(embedded_path("probe"))
    out = {}
    for path in args.vaes:
        r = out[path] = vae_scores(load_vae(path).eval(), probe, args.n, args.seed)
        print(f"{path}: PSNR 8 s {r['psnr_8s_mean']:.1f} dB (worst {r['psnr_8s_min']:.1f}); probe on 2 s "
              + ", ".join(f"{k} {fmt(r['probe']['2s'][k])}" for k in ATTRS)
              + f"; sharpness {r['sharpness_recon']:.1f} / real {r['sharpness_real']:.1f}", flush=True)  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("vaes", nargs="+", help="VAE files (semanticgen_core.vae.load_vae)")
    p.add_argument("--n", type=int, default=100, help="held-out clips of each length")
    p.add_argument("--seed", type=int, default=2, help="clip seed (embedded_eval.py's VAE clips: its seed + 2)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
