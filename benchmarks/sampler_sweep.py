"""Sampler settings of the embedded model on held-out prompts: guidance of each stage, steps, shifts, plan noise.

Tunes on prompt seeds other than the evaluation's (embedded_eval.py uses seed 0), so the shipped defaults are not
fitted to the numbers the README reports. Each setting is one line of JSON; unset keys keep the shipped value
(a: stage A's CFG, b: stage B's CFG, steps, shift_a, shift_b, noise: plan noise; with `--task transfer` the
stage-B keys set the manifest's transfer_sampler, r: the flow time stage A re-plans the reference's plan from, 0:
as encoded, ra: stage A's CFG while re-planning). `--task transfer` measures reference transfer instead
(embedded_eval.transfer_scores: the motion kept, the prompt's colour and shape, the reference's colour trace);
`--task long` 60 s videos (embedded_eval.long_scores: the character kept per 4 s segment, videos kept whole; the
evaluation's is prompt seed 0).

    python benchmarks/sampler_sweep.py --n 200 --seed 1 --settings '[{"a": 4, "b": 4}, {"a": 1, "b": 4}]'
    python benchmarks/sampler_sweep.py --n 100 --seed 1 --frechet --settings '[{}, {"steps": 30}]'
    python benchmarks/sampler_sweep.py --task transfer --n 100 --seed 11 --settings '[{"b": 4}, {"b": 8}]'
    python benchmarks/sampler_sweep.py --task long --n 40 --seed 1 --settings '[{}, {"a": 2}]'
    python benchmarks/sampler_sweep.py --task transfer --n 100 --seed 12 --settings '[{"r": 0}, {"r": 0.2, "ra": 3}]'

Two builds on the same prompts and seeds, paired: `--json A.json` on one's weights, then `--weights DIR --against
A.json` on the other's prints each attribute's difference per prompt (bootstrap interval over prompts), the shape on
held-out colour-shape pairs included (`shape_pairs`).
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedded_eval import (  # noqa: E402
    ATTRS,
    attribute_hits,
    frechet_scores,
    generate,
    long_scores,
    rate,
    transfer_scores,
)

from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.claims_metrics import bootstrap_ci  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path, load_embedded_pipeline, manifest  # noqa: E402
from semanticgen_core.lab.world import HELDOUT_COMBOS, ShapesWorld, parse_caption  # noqa: E402

KEYS = {"a", "b", "steps", "shift_a", "shift_b", "noise", "r", "ra"}


def with_settings(config, s: dict):
    """The pipeline config with one setting applied (stage A: sem_sampler; stage B: lat_sampler, and the
    transfer_sampler it uses on a reference's plan)."""
    unknown = set(s) - KEYS
    if unknown:
        raise SystemExit(f"--settings: unknown keys {sorted(unknown)}; known: {sorted(KEYS)}")

    def stage_b(b):
        return replace(b, cfg=s.get("b", b.cfg), steps=s.get("steps", b.steps), shift=s.get("shift_b", b.shift))

    a = config.sem_sampler
    a = replace(a, cfg=s.get("a", a.cfg), steps=s.get("steps", a.steps), shift=s.get("shift_a", a.shift))
    transfer = stage_b(config.transfer_sampler or config.lat_sampler)
    r = config.replan_sampler or config.sem_sampler
    r = replace(r, cfg=s.get("ra", r.cfg), steps=s.get("steps", r.steps), shift=s.get("shift_a", r.shift))
    return replace(config, sem_sampler=a, lat_sampler=stage_b(config.lat_sampler), transfer_sampler=transfer,
                   transfer_replan=s.get("r", config.transfer_replan), replan_sampler=r,
                   plan_noise=s.get("noise", config.plan_noise))  # fmt: skip


def prompt_set(args) -> dict:
    """What makes two runs' prompts the same (kept in each --json row)."""
    return {"task": "generate", "n": args.n, "seed": args.seed, "split": args.split}


def read_against(path: str, args) -> dict:
    """The per-prompt hits of the first row of an earlier run's --json, checked to be of the same prompts."""
    try:
        row = json.loads(Path(path).read_text())[0]
    except (OSError, ValueError, IndexError, KeyError) as e:
        raise SystemExit(f"--against {path}: not a --json file of this script ({e})") from None
    same = prompt_set(args)
    if not isinstance(row, dict) or "hits" not in row or row.get("prompts") != same:
        raise SystemExit(f"--against {path}: needs per-prompt hits of --task generate with the same --n, --seed "
                         f"and --split ({same}); it has {row.get('prompts') if isinstance(row, dict) else row}")  # fmt: skip
    return row["hits"]


def paired(new: dict, old: dict) -> str:
    """Each attribute's mean difference new - old over the same prompts, in points, with its bootstrap interval."""
    parts = []
    for k in new:
        d, lo, hi = bootstrap_ci([a - b for a, b in zip(new[k], old[k]) if a is not None and b is not None])
        parts.append(f"{k} {100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]")
    return "paired against --against: " + " ".join(parts)


def main(args) -> list[dict]:
    settings = json.loads(args.settings)
    if not isinstance(settings, list) or not all(isinstance(s, dict) for s in settings):
        raise SystemExit('--settings: a JSON list of objects, e.g. \'[{"a": 1, "b": 4}]\'')
    for flag, on, task in (("--against", args.against, "generate"), ("--frechet", args.frechet, "generate"),
                           ("--control", args.control, "transfer")):  # fmt: skip
        if on and args.task != task:
            raise SystemExit(f"{flag} goes with --task {task} (got --task {args.task})")
    if args.task != "generate" and args.split != "heldout":
        raise SystemExit(f"--task {args.task} measures held-out scenes only: drop --split {args.split}")
    against = read_against(args.against, args) if args.against else None
    torch.set_num_threads(args.threads)
    probe = metrics.AttributeProbe.load(embedded_path("probe", args.weights))
    pipe = load_embedded_pipeline(with_encoder=args.task == "transfer", weights_dir=args.weights)
    shipped = pipe.config
    world = ShapesWorld(n=args.n, seed=args.seed, split=args.split, paraphrase=1.0)
    prompts = [world.scene(i)[1] for i in range(args.n)]
    truths = [parse_caption(p) for p in prompts]
    pairs = [(t["color"], t["shape"]) in HELDOUT_COMBOS["color_shape"] for t in truths]
    rows = []
    for s in settings:
        pipe.config = with_settings(shipped, s)
        t0 = time.time()
        if args.task == "long":
            res = long_scores(pipe, probe, args.n, args.seed, manifest(args.weights).get("window"))
            row = {"settings": s, **res, "seconds": round(time.time() - t0, 1)}
            rows.append(row)
            ck, whole = res["character_kept"], res["videos_kept_whole"]
            print(json.dumps(s), f"character kept {ck['rate']:.3f} [{ck['lo']:.3f}, {ck['hi']:.3f}]",
                  f"videos whole {round(whole['rate'] * whole['n'])} of {whole['n']};",
                  "; ".join(f"{k} {v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}] ({v[3]} videos)"
                            for k, v in res["character_kept_by_kind"].items()), flush=True)  # fmt: skip
            continue
        if args.task == "transfer":
            row = {
                "settings": s,
                **transfer_scores(pipe, probe, args.n, args.seed, s.get("noise"), control=args.control),
            }
            rows.append({**row, "seconds": round(time.time() - t0, 1)})
            print(json.dumps(s), " ".join(f"{k} {v['rate']:.2f}" if isinstance(v, dict) else
                                          f"{k} {v[0]:+.4f} [{v[1]:+.4f}, {v[2]:+.4f}]" if isinstance(v, tuple) else
                                          f"{k} {v:.3f}" for k, v in row.items() if k != "settings"), flush=True)  # fmt: skip
            continue
        videos = generate(pipe, prompts, seed=args.seed, plan_noise=s.get("noise"))
        hits = attribute_hits(probe, videos, truths)
        hits["all"] = [all(hits[k][i] for k in ATTRS) for i in range(args.n)]
        hits["shape_pairs"] = [h if p else None for h, p in zip(hits["shape"], pairs)]  # None: not a held-out pair
        hits = {k: [None if h is None else int(h) for h in v] for k, v in hits.items()}
        row = {"settings": s, **{k: rate([h for h in v if h is not None]) for k, v in hits.items()},
               "seconds": round(time.time() - t0, 1), "hits": hits,
               "prompts": prompt_set(args)}  # fmt: skip
        if args.frechet:
            row["frechet"] = frechet_scores(probe, videos, [world[i]["frames"] for i in range(args.n)], args.seed)
        rows.append(row)
        fr = row.get("frechet")
        fr = f" frechet {fr['generated_vs_real']:.1f} (floor {fr['real_vs_real']:.1f})" if fr else ""
        print(json.dumps(s), " ".join(f"{k} {row[k]['rate']:.2f}" for k in hits) + fr, flush=True)
        if against:
            print("   ", paired(hits, against), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", required=True, help="JSON list of settings (keys: a, b, steps, shift_a, ...)")
    p.add_argument("--task", default="generate", choices=["generate", "transfer", "long"], help="what is measured")
    p.add_argument("--n", type=int, default=200, help="prompts (references / 60 s videos for --task transfer / long)")
    p.add_argument("--seed", type=int, default=1, help="prompt seed (the evaluation's is 0: tune elsewhere)")
    p.add_argument("--split", default="heldout", choices=["heldout", "train"], help="held-out or training scenes")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--weights", default=None, help="a folder laid out like semanticgen_core/lab/weights/")
    p.add_argument("--json", default=None, help="also write the rows here (with each prompt's hits)")
    p.add_argument("--control", action="store_true", help="--task transfer: also the trace without a reference")
    p.add_argument("--frechet", action="store_true", help="also the Frechet distance to real renders (crispness)")
    p.add_argument("--against", default=None, help="an earlier --json of the same prompts: paired differences")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
