"""Does stage B take the shape from the caption or from the plan? (issue 10: where the shape misses come from)

Each of n held-out scenes is rendered again in another shape (same colour, position, motion, background), its real
plan encoded, and stage B given that plan with the caption naming the scene's own shape
(`embedded_eval.stage_b_on_real_plans`, the text-to-video sampler). The probe says which shape was drawn: the
caption's, the plan's, or the third. Next to it, the same scenes with their own plans (no conflict).

    python benchmarks/plan_conflict.py --n 100 --seed 0 [--weights DIR]
"""

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedded_eval import rate, stage_b_on_real_plans  # noqa: E402
from frechet_parts import run_part  # noqa: E402

from semanticgen_core.lab.world import HELDOUT_COMBOS, SHAPES, ShapesWorld  # noqa: E402


def other_shape(i: int, shape: str) -> str:
    """One of the two other shapes, alternating with the scene index."""
    return [s for s in SHAPES if s != shape][i % 2]


def swapped(i: int, scene):
    """The scene in another shape (`other_shape`), all else the same."""
    return replace(scene, shape=other_shape(i, scene.shape))


def plan_conflict(pipe, probe, n: int, seed: int = 0) -> dict:
    """Shapes drawn by stage B from conflicting plans (and from the scenes' own plans), overall and on held-out pairs."""
    world = ShapesWorld(n=n, seed=seed, split="heldout", paraphrase=1.0)
    scenes = [world.scene(i)[0] for i in range(n)]
    pairs = [(s.color, s.shape) in HELDOUT_COMBOS["color_shape"] for s in scenes]
    own = [p["shape"] for p in probe.predict_batch(stage_b_on_real_plans(pipe, world, n))]
    drawn = [p["shape"] for p in probe.predict_batch(stage_b_on_real_plans(pipe, world, n, swapped))]
    out = {}
    for name, keep in (("all", [True] * n), ("heldout_pairs", pairs)):
        idx = [i for i in range(n) if keep[i]]
        out[name] = {
            "own_plan_caption_shape": rate([own[i] == scenes[i].shape for i in idx]),
            "conflict_caption_shape": rate([drawn[i] == scenes[i].shape for i in idx]),
            "conflict_plan_shape": rate([drawn[i] == other_shape(i, scenes[i].shape) for i in idx]),
        }
    return out


def main(argv=None) -> dict:
    res = run_part(__doc__, plan_conflict, argv)
    for name, r in res.items():
        print(name, " ".join(f"{k} {v['rate']:.0%} [{v['lo']:.0%}, {v['hi']:.0%}] (n={v['n']})" for k, v in r.items()))
    return res


if __name__ == "__main__":
    main()
