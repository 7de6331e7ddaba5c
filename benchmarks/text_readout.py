"""How well can the attributes be read off the text features, on held-out combinations? A text-side ceiling.

A small cross-attention reader (3 learned queries over the MLP-embedded per-token MiniLM features, RMS-normed keys:
the shape of a DiT block's text cross-attention) is trained to name colour / shape / motion from the embedded build's
training captions (train split, the dataset's captions plus the build's caption alternatives, one drawn per step),
then tested on held-out scenes (attribute combinations the train split never has) in held-out, fresh and canonical
wording, and on training-split scenes in held-out wording (new words, seen combinations). It isolates what the
captions teach from everything the video side adds: if this reader cannot name a held-out colour, neither stage can
be expected to.

Rates pool `--seeds` readers (n = scenes x seeds; the interval is Wilson's on the pooled predictions, the range is
the seeds' spread). CPU, ~1 min per reader on 2 threads:

    python benchmarks/text_readout.py --alternatives 0 --partial 0       # the shipped build's captions
    python benchmarks/text_readout.py --alternatives 4 --partial 2       # with partial captions (attribute dropout)
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.captions import caption_alternatives  # noqa: E402
from semanticgen_core.lab.embedded import default_text_encoder  # noqa: E402
from semanticgen_core.lab.world import COLORS, MOTIONS, SHAPES, ShapesWorld, caption  # noqa: E402

ATTRS = {"color": sorted(COLORS), "shape": list(SHAPES), "motion": list(MOTIONS)}
TESTS = {  # name -> (split, templates, style)
    "heldout combinations, held-out wording": ("heldout", "heldout", "paraphrase"),
    "heldout combinations, fresh wording": ("heldout", "fresh", "paraphrase"),
    "heldout combinations, canonical": ("heldout", "train", "canonical"),
    "train combinations, held-out wording": ("train", "heldout", "paraphrase"),
}


class Reader(nn.Module):
    """Learned queries cross-attending to the embedded text tokens, one linear head per attribute."""

    def __init__(self, text_dim: int, dim: int = 128, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.embed = nn.Sequential(nn.Linear(text_dim, dim), nn.GELU(approximate="tanh"), nn.Linear(dim, dim))
        self.queries = nn.Parameter(torch.randn(len(ATTRS), dim) * 0.02)
        self.k, self.v, self.norm_k = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.RMSNorm(dim)
        self.out = nn.ModuleList(nn.Linear(dim, len(v)) for v in ATTRS.values())

    def forward(self, ctx: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """ctx [B, S, text_dim], mask [B, S] bool -> logits per attribute [B, n_values]."""
        x = self.embed(ctx)
        b, s, d = x.shape
        k = self.norm_k(self.k(x)).view(b, s, self.heads, -1).transpose(1, 2)
        v = self.v(x).view(b, s, self.heads, -1).transpose(1, 2)
        q = self.queries.expand(b, -1, -1).reshape(b, len(ATTRS), self.heads, -1).transpose(1, 2)
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None]).transpose(1, 2).reshape(b, -1, d)
        return [head(o[:, i]) for i, head in enumerate(self.out)]


def labels(scenes) -> torch.Tensor:
    """[N, 3] attribute indices."""
    return torch.tensor([[values.index(getattr(s, a)) for a, values in ATTRS.items()] for s in scenes])


def encode(text, captions: list[str], batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    parts = [text.encode(captions[i : i + batch]) for i in range(0, len(captions), batch)]
    return torch.cat([c for c, _ in parts]), torch.cat([m for _, m in parts])


def training_set(text, n: int, alternatives: int, partial: int, seed: int, unnamed=("shape", "color")):
    """Features of every caption alternative of n training scenes, and which scene each row belongs to."""
    rows, owner, scenes, world = [], [], [], ShapesWorld(n=n, seed=seed, split="train")
    for i in range(n):
        scene, text_i = world.scene(i)
        alts = caption_alternatives(
            text_i, alternatives, np.random.default_rng([seed, 11, i]), "wide", partial, unnamed
        )
        rows += alts if (alternatives or partial) else [text_i]
        owner += [i] * (len(alts) if (alternatives or partial) else 1)
        scenes.append(scene)
    ctx, mask = encode(text, rows)
    return ctx, mask, torch.tensor(owner), labels(scenes)


def test_sets(text, n: int, seed: int) -> dict:
    out = {}
    for name, (split, templates, style) in TESTS.items():
        world = ShapesWorld(n=n, seed=seed, split=split)
        scenes = [world.scene(i)[0] for i in range(n)]
        rng = np.random.default_rng([seed, 31])
        out[name] = (*encode(text, [caption(s, rng, style, templates) for s in scenes]), labels(scenes))
    return out


def fit(train, steps: int, seed: int) -> Reader:
    """A reader trained on one alternative per scene per step (drawn like the build's training loop)."""
    ctx, mask, owner, y = train
    by_scene = [torch.nonzero(owner == i)[:, 0] for i in range(len(y))]
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    reader = Reader(ctx.shape[-1])
    opt = torch.optim.AdamW(reader.parameters(), 1e-3, weight_decay=0.01)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (64,), generator=g)
        rows = torch.stack([by_scene[i][torch.randint(0, len(by_scene[i]), (1,), generator=g)][0] for i in idx])
        loss = sum(F.cross_entropy(o, y[idx, a]) for a, o in enumerate(reader(ctx[rows], mask[rows])))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return reader


def main(args) -> dict:
    torch.set_num_threads(args.threads)
    text = default_text_encoder(24)
    train = training_set(text, args.train, args.alternatives, args.partial, args.seed, args.unnamed.split(","))
    tests = test_sets(text, args.n, args.seed + 1)
    hits = {name: {a: [] for a in ATTRS} for name in tests}
    per_seed = {name: {a: [] for a in ATTRS} for name in tests}
    for s in range(args.seeds):
        reader = fit(train, args.steps, s)
        with torch.no_grad():
            for name, (ctx, mask, y) in tests.items():
                for a, logits in enumerate(reader(ctx, mask)):
                    right = (logits.argmax(-1) == y[:, a]).tolist()
                    hits[name][list(ATTRS)[a]] += right
                    per_seed[name][list(ATTRS)[a]].append(float(np.mean(right)))
    result = {"alternatives": args.alternatives, "partial": args.partial, "unnamed": args.unnamed, "seeds": args.seeds}
    result["rows"] = {}
    print(
        f"captions: {args.alternatives} alternatives, {args.partial} partial per unnamed {args.unnamed}; {args.seeds} readers"
    )
    for name in tests:
        row = {}
        for a in ATTRS:
            lo, hi = metrics.wilson_interval(sum(hits[name][a]), len(hits[name][a]))
            row[a] = {"rate": float(np.mean(hits[name][a])), "lo": lo, "hi": hi, "n": len(hits[name][a]),
                      "seed_min": min(per_seed[name][a]), "seed_max": max(per_seed[name][a])}  # fmt: skip
        result["rows"][name] = row
        print(f"  {name}: " + ", ".join(
            f"{a} {r['rate']:.1%} [{r['lo']:.1%}, {r['hi']:.1%}] (seeds {r['seed_min']:.0%}-{r['seed_max']:.0%})"
            for a, r in row.items()))  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--alternatives", type=int, default=0, help="caption alternatives per clip (the build's flag)")
    p.add_argument("--partial", type=int, default=0, help="partial captions per clip and attribute (the build's flag)")
    p.add_argument("--unnamed", default="shape,color", help="the attributes partial captions leave unnamed")
    p.add_argument("--train", type=int, default=4000, help="training scenes (the build's 2 s clips: 4000)")
    p.add_argument("--n", type=int, default=500, help="test scenes per wording")
    p.add_argument("--steps", type=int, default=1500, help="reader steps (batch 64)")
    p.add_argument("--seeds", type=int, default=3, help="readers trained, pooled")
    p.add_argument("--seed", type=int, default=0, help="scene seed (the build's: 0)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--json", default="", help="write the rows here")
    return p.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
