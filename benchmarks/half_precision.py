"""How far half precision moves the DiT's output from float32, at Wan2.1-1.3B width.

    python benchmarks/half_precision.py                 # dim 1536, 12 heads, ffn 8960, 2 layers, 384 tokens
    python benchmarks/half_precision.py --layers 4 --frames 8

Relative L2 error ||v - v_fp32|| / ||v_fp32|| of the velocity for: every weight cast with `.to(dtype)`, the
loaders' cast (precision.cast_module: time embedding, modulation, affine norms kept fp32), and fp32 weights under
autocast (what accelerate's mixed_precision runs); and for one stage-1 training step under bf16 autocast, the
loss ratio and the cosine between its gradient and the fp32 one. Random weights (default init, the semantic
projection randomised so the plan takes part), a zero-padded text context as Wan feeds it.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core import SemanticCompressor  # noqa: E402
from semanticgen_core.config import DIT_CONFIGS, DiTConfig  # noqa: E402
from semanticgen_core.dit import SemanticGenDiT  # noqa: E402
from semanticgen_core.precision import cast_module  # noqa: E402
from train.stage1 import Stage1Model  # noqa: E402


def rel(a, b) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def main(args):
    torch.manual_seed(0)
    cfg = DiTConfig.from_dict({**DIT_CONFIGS["wan2.1-t2v-1.3b"].to_dict(), "num_layers": args.layers,
                               "sem_channels": 8})  # fmt: skip
    model = SemanticGenDiT(cfg).eval()
    torch.nn.init.normal_(model.sem_embedding.weight, std=0.02)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 16, args.frames, args.height, args.width, generator=g)
    t = torch.full((1,), 0.7)
    ctx = torch.zeros(1, 512, cfg.text_dim)
    ctx[:, :32] = torch.randn(1, 32, cfg.text_dim, generator=g) * 0.2  # umT5 features are O(0.1)
    sem = torch.randn(1, 8, 2, 4, 6, generator=g)
    tokens = args.frames * args.height * args.width // 4
    print(f"dim {cfg.dim}, {cfg.num_layers} layers, {tokens} latent tokens + {sem[0, 0].numel()} semantic tokens")

    def run(m, autocast=None):
        t0 = time.perf_counter()
        with torch.no_grad(), torch.autocast("cpu", autocast or torch.bfloat16, enabled=autocast is not None):
            v = m(x, t, ctx, sem=sem)
        return v, time.perf_counter() - t0

    ref, sec = run(model)
    print(f"{'variant':34} {'rel L2 error':>12} {'s/forward':>10}")
    print(f"{'fp32':34} {0.0:12.2e} {sec:10.2f}")
    for dtype in (torch.bfloat16, torch.float16):
        name = str(dtype).removeprefix("torch.")
        for label, m in ((f"{name}: .to(dtype), all weights", copy.deepcopy(model).to(dtype)),
                         (f"{name}: cast_module (fp32 kept)", cast_module(copy.deepcopy(model), dtype))):  # fmt: skip
            v, sec = run(m)
            print(f"{label:34} {rel(v, ref):12.2e} {sec:10.2f}", flush=True)
    v, sec = run(model, torch.bfloat16)
    print(f"{'fp32 weights, bf16 autocast':34} {rel(v, ref):12.2e} {sec:10.2f}")

    # one stage-1 training step: fp32 vs bf16 autocast (accelerate mixed_precision='bf16')
    step = Stage1Model(model, SemanticCompressor(64, 8)).train()
    batch = {"latents": x, "sem_feats": torch.randn(1, 64, 2, 4, 6, generator=g), "ctx": ctx[:, :32]}

    def grads(autocast: bool):
        step.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            loss, _ = step(batch, torch.Generator().manual_seed(0))
        loss.backward()
        return float(loss.detach()), torch.cat([p.grad.flatten() for p in step.parameters() if p.grad is not None])

    loss32, g32 = grads(False)
    loss16, g16 = grads(True)
    cos = float(torch.nn.functional.cosine_similarity(g16.double(), g32.double(), dim=0))  # fp64: 1e8 terms
    print(f"training step, bf16 autocast vs fp32: loss {loss16:.5f} vs {loss32:.5f} (ratio {loss16 / loss32:.4f}), "
          f"gradient cosine {cos:.5f}, gradient rel L2 {rel(g16, g32):.2e}")  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=2, help="transformer blocks (Wan2.1-1.3B has 30)")
    p.add_argument("--frames", type=int, default=4, help="latent frames")
    p.add_argument("--height", type=int, default=16, help="latent height (pixels / 8)")
    p.add_argument("--width", type=int, default=24, help="latent width (pixels / 8)")
    main(p.parse_args())
