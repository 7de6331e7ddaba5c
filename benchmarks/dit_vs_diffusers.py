"""Our DiT forward vs diffusers' WanTransformer3DModel: same config, same weights, measured side by side.

    python benchmarks/dit_vs_diffusers.py                       # CPU, fp32
    python benchmarks/dit_vs_diffusers.py --device cuda --dtype bf16 --dim 1536 --layers 30 --heads 12 --ffn 8960

Prints a table of median forward times at several token counts and the speed ratio (diffusers / ours), plus the
max abs difference of the outputs (a benchmark that compares different maths would be meaningless).
"""

import argparse
import statistics
import sys
from pathlib import Path

import torch
from diffusers import WanTransformer3DModel
from timing import median_time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.checkpoint import diffusers_to_wan, infer_wan_config
from semanticgen_core.dit import SemanticGenDiT

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def flops(cfg, tokens: int, text: int) -> float:
    """Matmul FLOPs of one forward (attention included), for TFLOP/s."""
    d, f = cfg.dim, cfg.ffn_dim
    per_layer = 2 * tokens * d * d * 4 + 2 * tokens * d * f * 2 + 4 * tokens * tokens * d  # self-attn + ffn
    per_layer += 2 * tokens * d * d * 2 + 2 * text * d * d * 2 + 4 * tokens * text * d  # cross-attn
    return cfg.num_layers * per_layer


def main(args):
    torch.manual_seed(0)
    dtype, dev = DTYPES[args.dtype], args.device
    ref = WanTransformer3DModel(
        num_attention_heads=args.heads,
        attention_head_dim=args.dim // args.heads,
        in_channels=16,
        out_channels=16,
        text_dim=args.text_dim,
        ffn_dim=args.ffn,
        num_layers=args.layers,
    ).eval()
    sd = diffusers_to_wan(ref.state_dict())
    ours = SemanticGenDiT(infer_wan_config(sd, head_dim=args.dim // args.heads)).eval()
    ours.load_state_dict(sd)
    ref, ours = ref.to(dev, dtype), ours.to(dev, dtype)
    print(f"device={dev} dtype={args.dtype} dim={args.dim} layers={args.layers} heads={args.heads} ffn={args.ffn}")
    print(
        f"{'tokens':>7} {'latent THW':>12} {'diffusers s':>12} {'ours s':>9} {'speed-up':>9} {'max|diff|':>10} {'TFLOP/s':>8}"
    )
    for frames in args.frames:
        h, w = args.size
        x = torch.randn(1, 16, frames, h, w, device=dev, dtype=dtype)
        t = torch.rand(1, device=dev)
        ctx = torch.zeros(1, args.text_len, args.text_dim, device=dev, dtype=dtype)  # Wan: zero-padded to 512
        ctx[:, : args.prompt_tokens] = torch.randn(1, args.prompt_tokens, args.text_dim, device=dev, dtype=dtype)
        with torch.inference_mode():
            a = ref(hidden_states=x, timestep=1000 * t, encoder_hidden_states=ctx).sample
            b = ours(x, t, ctx)
            t_ref, t_ours = [], []
            run_ref = lambda: ref(hidden_states=x, timestep=1000 * t, encoder_hidden_states=ctx)  # noqa: E731
            run_ours = lambda: ours(x, t, ctx)  # noqa: E731
            for r in range(args.rounds):  # alternate, and swap who goes first, so both see the same machine state
                pair = [(run_ref, t_ref), (run_ours, t_ours)]
                for fn, times in pair[:: -1 if r % 2 else 1]:
                    times.append(median_time(fn, 1, dev))
        tr, to = statistics.median(t_ref), statistics.median(t_ours)
        tokens = frames * h * w // 4
        tf = flops(ours.config, tokens, args.text_len) / to / 1e12
        diff = (a.float() - b.float()).abs().max().item()
        print(f"{tokens:>7} {f'{frames}x{h}x{w}':>12} {tr:>12.4f} {to:>9.4f} {tr / to:>8.2f}x {diff:>10.2e} {tf:>8.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="fp32", choices=sorted(DTYPES), help="weights and activations dtype")
    p.add_argument("--dim", type=int, default=768, help="hidden size")
    p.add_argument("--heads", type=int, default=6, help="attention heads")
    p.add_argument("--ffn", type=int, default=3072, help="FFN inner size")
    p.add_argument("--layers", type=int, default=4, help="transformer blocks")
    p.add_argument("--text-dim", type=int, default=4096, help="text feature size")
    p.add_argument("--text-len", type=int, default=512, help="text tokens (Wan pads to 512)")
    p.add_argument("--prompt-tokens", type=int, default=32, help="true prompt length inside the padded context")
    p.add_argument("--size", type=int, nargs=2, default=[16, 16], help="latent height width")
    p.add_argument("--frames", type=int, nargs="+", default=[4, 16, 32], help="latent frame counts to measure")
    p.add_argument("--rounds", type=int, default=5, help="alternating timed rounds per size")
    main(p.parse_args())
