"""Device memory of block offloading at real Wan2.1 sizes.

    python benchmarks/offload_memory.py                                   # no GPU: weight bytes, 1.3B and 14B
    python benchmarks/offload_memory.py --device cuda --configs wan2.1-t2v-1.3b --frames 81 --height 480 --width 832

With --device cuda the real forward runs in bf16 with random weights, and torch.cuda.max_memory_allocated (weights +
activations) and seconds per forward are measured for each number of blocks kept on the device. Without CUDA the
models are built on the meta device (no memory) and the table gives the weight bytes a GPU would hold: the
resident parts plus (1 + prefetch) streamed blocks, summed over the real parameter tensors; that the offloader
never holds more than 1 + prefetch streamed blocks at once is measured on CPU by tests/test_offload.py.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.config import DIT_CONFIGS
from semanticgen_core.dit import SemanticGenDiT
from semanticgen_core.offload import attach_offload

GB = 1e9


def build(name: str, device: str) -> SemanticGenDiT:
    """The preset in bf16: on meta (shapes only), or on the CPU with random weights for streaming to CUDA."""
    with torch.device("meta"):
        model = SemanticGenDiT(DIT_CONFIGS[name]).to(torch.bfloat16).eval()
    if device == "meta":
        return model
    model.to_empty(device="cpu")
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.02)
    return model


def nbytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def weight_bytes(model, on_device: int, prefetch: int) -> tuple[int, int]:
    """(weights on the device at the peak of a forward, streamed bytes per forward) from the tensors' sizes."""
    streamed = [nbytes(b) for b in model.blocks[on_device:]]
    held = sorted(streamed, reverse=True)[: 1 + min(prefetch, max(0, len(streamed) - 1))] if streamed else []
    return nbytes(model) - sum(streamed) + sum(held), sum(streamed)


def measure_cuda(model, on_device, prefetch, shape, text_len) -> dict:
    """Real forward on CUDA: peak allocated bytes (weights + activations) and seconds."""
    attach_offload(model, "cuda", on_device, prefetch)
    x = torch.randn(1, *shape, device="cuda", dtype=torch.bfloat16)
    ctx = torch.randn(1, text_len, model.config.text_dim, device="cuda", dtype=torch.bfloat16)
    t = torch.full((1,), 0.5, device="cuda")
    with torch.no_grad():
        model(x, t, ctx)  # warm-up (allocator, kernels)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        model(x, t, ctx)
        torch.cuda.synchronize()
    return {"peak": torch.cuda.max_memory_allocated(), "seconds": time.perf_counter() - t0}


def main(args):
    device = args.device if args.device == "cuda" else "meta"
    c, f, h, w = 16, (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    print(f"latent {c}x{f}x{h}x{w} ({f * h * w // 4} tokens), bf16, prefetch {args.prefetch}, device {device}")
    print("| model | blocks on device | weights on device (GB) | streamed per forward (GB) |"
          + (" peak allocated (GB) | s / forward |" if device == "cuda" else ""))  # fmt: skip
    print("|---|---|---|---|" + ("---|---|" if device == "cuda" else ""))
    for name in args.configs.split(","):
        model = build(name, device)
        layers = len(model.blocks)
        for n in sorted({min(layers, int(v)) for v in args.blocks.split(",")}, reverse=True):
            weights, streamed = weight_bytes(model, n, args.prefetch)
            row = f"| {name} | {n}/{layers} | {weights / GB:.2f} | {streamed / GB:.2f} |"
            if device == "cuda":
                r = measure_cuda(model, n, args.prefetch, (c, f, h, w), args.text_len)
                row += f" {r['peak'] / GB:.2f} | {r['seconds']:.2f} |"
            print(row, flush=True)
        del model


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="meta", help="cuda (real forward) or meta (weight bytes only)")
    p.add_argument("--configs", default="wan2.1-t2v-1.3b,wan2.1-t2v-14b", help="DiT presets, comma separated")
    p.add_argument("--blocks", default="40,20,10,4,0", help="blocks kept on the device, comma separated")
    p.add_argument("--prefetch", type=int, default=1, help="streamed blocks copied ahead")
    p.add_argument("--frames", type=int, default=81, help="video frames (4k+1)")
    p.add_argument("--height", type=int, default=480, help="pixels")
    p.add_argument("--width", type=int, default=832, help="pixels")
    p.add_argument("--text-len", type=int, default=512, help="text tokens (Wan pads to 512)")
    main(p.parse_args())
