"""Where the embedded model's Frechet distance comes from (issue 10: <= 2x the real-vs-real floor).

Against the same real renders of n held-out scenes, and one real-vs-real floor (renders of other held-out scenes),
the Frechet distance on probe features (`embedded_eval.frechet_scores`) of
  1. the VAE's reconstructions of those renders (what stage B could reach at best),
  2. stage B given their real plans and captions (`embedded_eval.stage_b_on_real_plans`),
  3. the whole pipeline from the captions (stage A's plans; the evaluation's row 3).

    python benchmarks/frechet_parts.py --n 100 --seed 0 [--weights DIR] [--json out.json]
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedded_eval import frechet_scores, generate, stage_b_on_real_plans  # noqa: E402

from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path, load_embedded_pipeline  # noqa: E402
from semanticgen_core.lab.world import ShapesWorld  # noqa: E402
from semanticgen_core.pipeline import video_to_uint8  # noqa: E402
from semanticgen_core.vae import frames_to_video  # noqa: E402


def frechet_parts(pipe, probe, n: int, seed: int = 0) -> dict:
    """{part: {generated_vs_real, real_vs_real, ratio}} for the three parts above, on the same n scenes."""
    world = ShapesWorld(n=n, seed=seed, split="heldout", paraphrase=1.0)
    real = [world[i]["frames"] for i in range(n)]
    with torch.no_grad():
        recon = [video_to_uint8(pipe.vae.decode(pipe.vae.encode(frames_to_video(x))))[0] for x in real]
    parts = {"vae_reconstructions": recon, "stage_b_real_plans": stage_b_on_real_plans(pipe, world, n),
             "pipeline": generate(pipe, [world.scene(i)[1] for i in range(n)], seed=seed)}  # fmt: skip
    out = {k: frechet_scores(probe, v, real, seed) for k, v in parts.items()}
    return {k: {**v, "ratio": v["generated_vs_real"] / v["real_vs_real"]} for k, v in out.items()}


def run_part(doc: str, part, argv=None, n_min: int = 1, why: str = "needs at least one scene") -> dict:
    """The command line of a per-part script (this one, plan_conflict.py): --n held-out scenes, --seed, --threads,
    --weights, --json; `part(pipe, probe, n, seed)` gives the results."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help=f"held-out scenes (at least {n_min})")
    p.add_argument("--seed", type=int, default=0, help="scene seed (the evaluation's: 0)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--weights", default=None, help="a folder laid out like semanticgen_core/lab/weights/")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.n < n_min:
        raise SystemExit(f"--n {args.n}: {why}")
    torch.set_num_threads(args.threads)
    pipe = load_embedded_pipeline(with_encoder=True, weights_dir=args.weights)
    res = part(pipe, metrics.AttributeProbe.load(embedded_path("probe", args.weights)), args.n, args.seed)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return res


def main(argv=None) -> dict:
    why = "needs >= 20 scenes for a 16-d covariance of probe features"
    res = run_part(__doc__, frechet_parts, argv, n_min=20, why=why)
    for k, v in res.items():
        print(f"{k:20s} {v['generated_vs_real']:8.1f}  floor {v['real_vs_real']:.1f}  {v['ratio']:.2f}x", flush=True)
    return res


if __name__ == "__main__":
    main()
