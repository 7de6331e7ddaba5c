"""One stage-1 training step of the Wan2.1-1.3B-size latent generator in LoRA mode, measured on this machine.

    python benchmarks/train_step_memory.py                                  # 1.3B, 480x832, 5 frames, rank 32
    python benchmarks/train_step_memory.py --frames 1 --height 240 --width 416 --no-checkpointing

The model is built as train/stage1.py builds it with --lora-rank R --base-dtype bf16 --gradient-checkpointing
--mixed-precision bf16 (random weights instead of a Wan file: the cost does not depend on the values): frozen base in
bf16, adapters and the semantic embedding in fp32, the compressor fully trained, AdamW on the trainables, an fp32
EMA copy of them as the loop keeps. A step = forward under bf16 autocast + backward + optimizer step + EMA update.
Prints the peak resident memory of the process (ru_maxrss), the part added by the step, and seconds per step (wall
and the process's CPU time: on a shared machine the wall time also counts the waits for a core).
"""

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.compressor import SemanticCompressor
from semanticgen_core.config import DIT_CONFIGS, SemanticSpec
from semanticgen_core.dit import SemanticGenDiT
from train.finetune import apply_lora_mode
from train.stage1 import Stage1Model
from train.state import trainable, update_ema

GB = 1e9


def rss() -> float:
    """Peak resident set size of this process so far, bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build(name: str, k: int, rank: int) -> SemanticGenDiT:
    """The latent generator in LoRA mode, weights allocated directly in their training dtypes (no fp32 copy)."""
    with torch.device("meta"):
        lat = SemanticGenDiT(DIT_CONFIGS[name].__class__.from_dict({**DIT_CONFIGS[name].to_dict(), "sem_channels": k}))
    lat.to(torch.bfloat16).to_empty(device="cpu")
    matmul = {id(p) for m in lat.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv3d)) for p in m.parameters()}
    with torch.no_grad():
        for n, p in lat.named_parameters():
            p.normal_(0, 0.02)
            if id(p) not in matmul or n.startswith("sem_embedding"):
                p.data = p.data.float()  # norms, modulation and the new layer: fp32, as in training
    apply_lora_mode(lat, rank, 0.0, "bf16", ["sem_embedding"])
    return lat


def main(args):
    torch.manual_seed(0)
    spec = SemanticSpec(dim=args.sem_dim, compressed_dim=8, fps=1.6, temporal_patch=2, spatial_patch=28)
    t0 = time.perf_counter()
    lat = build(args.config, 8, args.rank)
    lat.gradient_checkpointing = args.checkpointing
    comp = SemanticCompressor(args.sem_dim, 8)
    model = Stage1Model(lat, comp).train()
    params = trainable(model)
    opt = torch.optim.AdamW(params.values(), lr=1e-4)
    ema = {k: p.detach().float().clone() for k, p in params.items()}
    n_train = sum(p.numel() for p in params.values())
    n_all = sum(p.numel() for p in model.parameters())
    built = rss()
    print(f"built in {time.perf_counter() - t0:.1f} s: {n_all / 1e9:.3f} B parameters, {n_train / 1e6:.1f} M trainable; "
          f"peak RSS {built / GB:.2f} GB")  # fmt: skip

    t_lat = (args.frames - 1) // 4 + 1
    latents = torch.randn(1, 16, t_lat, args.height // 8, args.width // 8)
    grid = spec.grid(args.frames / 16, args.height, args.width)
    ctx = torch.nn.functional.pad(torch.randn(1, args.text_tokens, 4096), (0, 0, 0, 512 - args.text_tokens))
    batch = {"latents": latents, "sem_feats": torch.randn(1, args.sem_dim, *grid), "ctx": ctx}
    tokens = t_lat * args.height // 16 * args.width // 16
    print(f"clip {args.frames} frames {args.height}x{args.width}: {tokens} latent + {grid[0] * grid[1] * grid[2]} "
          f"semantic tokens, text {args.text_tokens} of 512; checkpointing {args.checkpointing}")  # fmt: skip
    g = torch.Generator().manual_seed(0)
    for step in range(args.steps):
        t1, c1 = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss, _ = model(batch, g)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        update_ema(ema, params, 0.999)
        seconds, cpu = time.perf_counter() - t1, time.process_time() - c1
        print(f"step {step}: loss {loss.item():.4f}, {seconds:.1f} s wall ({cpu:.1f} s CPU time, {torch.get_num_threads()} "
              f"threads), peak RSS {rss() / GB:.2f} GB "
              f"(+{(rss() - built) / GB:.2f} GB over the built model)", flush=True)  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="wan2.1-t2v-1.3b", help="DiT preset of the latent generator")
    p.add_argument("--rank", type=int, default=32, help="LoRA rank")
    p.add_argument("--frames", type=int, default=5, help="video frames (4k+1)")
    p.add_argument("--height", type=int, default=480, help="pixels")
    p.add_argument("--width", type=int, default=832, help="pixels")
    p.add_argument("--text-tokens", type=int, default=24, help="caption tokens (zero-padded to 512 as Wan does)")
    p.add_argument("--sem-dim", type=int, default=2048, help="semantic feature dim (Qwen2.5-VL-3B: 2048)")
    p.add_argument("--steps", type=int, default=1, help="training steps to time")
    p.add_argument(
        "--checkpointing", action=argparse.BooleanOptionalAction, default=True, help="gradient checkpointing"
    )
    main(p.parse_args())
