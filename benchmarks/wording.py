"""The same held-out scenes phrased by different caption templates: which wording costs the embedded model what.

Each template (placeholders {color} {shape} {finite} {participle}, filled with the canonical words, so only the
wording differs) captions the same n held-out scenes, generated with the same seeds; the attribute probe scores
colour / shape / motion (95 % Wilson intervals), and the text encoder's tokens nearest the colour word (cosine of
per-token features) in the first scene's caption are named. Scenes come from a seed other than the evaluation's (0).

    python benchmarks/wording.py --n 100 "a {color} {shape} {finite}" "a {shape}, {color} in colour, {participle}"
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).resolve().parent))

from embedded_eval import ATTRS, attribute_hits, fmt, generate, rate  # noqa: E402

from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path, load_embedded_pipeline  # noqa: E402
from semanticgen_core.lab.world import MOTION_FINITE, MOTION_PARTICIPLE, ShapesWorld, _articles  # noqa: E402


def phrase(template: str, scene) -> str:
    """`template` filled with the scene's canonical words ("a" before a vowel becomes "an")."""
    words = dict(color=scene.color, shape=scene.shape, finite=MOTION_FINITE[scene.motion][0],
                 participle=MOTION_PARTICIPLE[scene.motion][0])  # fmt: skip
    try:
        return _articles(template.format(**words))
    except (KeyError, IndexError, ValueError) as err:
        raise SystemExit(f"{template!r}: the placeholders are {{color}} {{shape}} {{finite}} {{participle}}") from err


def colour_neighbours(text_encoder, text: str, color: str) -> list[tuple[str, float]]:
    """Cosine similarity of each other token's text feature to the colour word's, in one caption, highest first."""
    ctx, mask = text_encoder.encode([text])  # [1, S, D]
    tokens = text_encoder.tokenizer.convert_ids_to_tokens(text_encoder.tokenizer(text)["input_ids"])
    feats = dict(zip(tokens, ctx[0, : int(mask[0].sum())]))  # a repeated token keeps its last feature
    sims = {
        w: float(torch.cosine_similarity(f, feats[color], 0))
        for w, f in feats.items()
        if w not in (color, "[CLS]", "[SEP]")
    }
    return sorted(sims.items(), key=lambda kv: -kv[1])


def main(args) -> list[dict]:
    world = ShapesWorld(n=args.n, seed=args.seed, split="heldout")
    scenes = [world.scene(i)[0] for i in range(args.n)]
    prompts = {t: [phrase(t, s) for s in scenes] for t in args.templates}  # a bad template fails before loading
    torch.set_num_threads(args.threads)
    probe = metrics.AttributeProbe.load(embedded_path("probe", args.weights))
    pipe = load_embedded_pipeline(with_encoder=False, weights_dir=args.weights)
    truths = [{k: getattr(s, k) for k in ATTRS} for s in scenes]
    rows = []
    for template in args.templates:
        hits = attribute_hits(probe, generate(pipe, prompts[template], seed=args.seed), truths)
        near = colour_neighbours(pipe.text_encoder, prompts[template][0], scenes[0].color)[:2]
        rows.append({"template": template, **{k: rate(hits[k]) for k in ATTRS}, "nearest_to_colour_word": near})
        print(
            f"{template!r}: " + ", ".join(f"{k} {fmt(rows[-1][k])}" for k in ATTRS) + "; tokens nearest the "
            f"colour word in {prompts[template][0]!r}: " + ", ".join(f"{w} {c:.2f}" for w, c in near),
            flush=True,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("templates", nargs="+", help="caption templates, e.g. 'a {color} {shape} {finite}'")
    p.add_argument("--n", type=int, default=100, help="held-out scenes")
    p.add_argument("--seed", type=int, default=5, help="scene and sampling seed (the evaluation's is 0)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--weights", default=None, help="a folder laid out like semanticgen_core/lab/weights/")
    p.add_argument("--json", default=None, help="also write the rows here")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
