"""Training memory per GPU for the stage-1 latent generator at Wan2.1 sizes: computed (formula below), not measured.

    python benchmarks/memory_table.py                 # markdown table for docs/fitting_gpus.md

Parameter counts come from the models themselves (built on the meta device). Per GPU, with bf16 autocast, AdamW and
the loop's fp32 EMA of the trainables (P: all parameters, P_t: trainable ones, N: GPUs sharing one FSDP group):
    full fine-tuning:  20 P          (fp32 weights 4 + grads 4 + AdamW moments 8 + EMA 4 bytes per parameter)
    LoRA mode:          2 P + 20 P_t (frozen base stored in bf16; adapters + new layers trained as above)
    with FSDP:         the same divided by N, plus 2 gathered blocks (the running one and the prefetched one)
    activations:       gradient checkpointing keeps each block's input (L tokens x D x 2 bytes, bf16) and one
                       block's working set while it is recomputed, estimated as L x (30 D + 4 F) bytes (norms and
                       modulation in fp32, the FFN's F-wide hidden twice); attention is SDPA/flash: O(L) memory.
L = latent + semantic tokens of a 480x832, 81-frame clip (32,760 + 2,550), batch 1. The activation estimate is the
least certain term; benchmarks/train_step_memory.py measures a real-size step on CPU.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.config import DIT_CONFIGS
from semanticgen_core.dit import SemanticGenDiT
from semanticgen_core.lora import add_trainable_lora

GIB = 2**30


def counts(name: str, rank: int) -> dict:
    with torch.device("meta"):
        model = SemanticGenDiT(
            DIT_CONFIGS[name].__class__.from_dict({**DIT_CONFIGS[name].to_dict(), "sem_channels": 8})
        )
        base = sum(p.numel() for p in model.parameters())
        block = sum(p.numel() for p in model.blocks[0].parameters())
        add_trainable_lora(model, rank)
    lora = sum(p.numel() for n, p in model.named_parameters() if ".adapters." in n)
    new = sum(p.numel() for p in model.sem_embedding.parameters()) + 2048 * 8 * 4  # + the compressor MLP (approx.)
    return {"P": base, "P_t": lora + new, "block": block, "cfg": model.config}


def per_gpu(c: dict, lora: bool, n: int, tokens: int) -> float:
    cfg = c["cfg"]
    states = (2 * c["P"] + 20 * c["P_t"]) if lora else 20 * c["P"]
    gathered = 2 * c["block"] * (2 if lora else 4) if n > 1 else 0
    acts = cfg.num_layers * tokens * cfg.dim * 2 + tokens * (30 * cfg.dim + 4 * cfg.ffn_dim)
    return (states / n + gathered + acts) / GIB


def main(args):
    tokens = 21 * 30 * 52 + 5 * 17 * 30  # latent tokens (21 x 30 x 52) + semantic tokens (5 x 17 x 30)
    print(f"tokens per clip: {tokens}; LoRA rank {args.rank}\n")
    print(
        "| model | mode | P (B) | trainable (M) | 1 GPU (GiB) | FSDP x8 (GiB) | fits 24 / 48 / 80 GB (1 GPU; FSDP x8) |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in ("wan2.1-t2v-1.3b", "wan2.1-t2v-14b"):
        c = counts(name, args.rank)
        for lora in (False, True):
            one, eight = per_gpu(c, lora, 1, tokens), per_gpu(c, lora, 8, tokens)
            fits = " / ".join(("yes" if one < g * 0.93 else "no") + "; " + ("yes" if eight < g * 0.93 else "no")
                              for g in (24, 48, 80))  # fmt: skip
            mode = f"LoRA r{args.rank}" if lora else "full"
            t = c["P_t"] if lora else c["P"]
            print(f"| {name} | {mode} | {c['P'] / 1e9:.2f} | {t / 1e6:.0f} | {one:.1f} | {eight:.1f} | {fits} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rank", type=int, default=32, help="LoRA rank")
    main(p.parse_args())
