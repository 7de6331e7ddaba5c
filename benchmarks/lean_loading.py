"""Peak memory of loading Wan2.1 weights: `SemanticGenDiT.from_wan_pretrained(path, dtype=...)` at full size.

    python benchmarks/lean_loading.py                 # Wan2.1-1.3B sizes (writes ~7 GB to --work, needs ~7 GB RAM)
    python benchmarks/lean_loading.py --tiny          # the same at a tiny size, in seconds

1. A subprocess builds the reference with diffusers: `WanTransformer3DModel` with the Wan2.1-T2V-1.3B config and
   random weights, saved as bfloat16 in the diffusers layout (`save_pretrained`) and the original single-file
   layout with ComfyUI's `model.diffusion_model.` prefix, plus a ComfyUI-style scaled fp8 file
   (`*_fp8_e4m3fn_scaled.safetensors`: 2-D block weights in float8_e4m3fn with a per-tensor `scale_weight`).
2. Each load runs in a fresh subprocess, so its peak RSS (`ru_maxrss`, which includes the interpreter and torch,
   about 0.3 GB) is its own. After loading, every weight byte is read once: safetensors maps files lazily, and a
   weight taken without a cast stays a file page until it is first used (it then counts as resident memory). The ratio is peak RSS / (parameters x bytes of the requested dtype): the goal is
   <= 1.2. For the fp8 file the denominator is the bytes the loaded model holds (fp8 weights + the rest).
   `--eager` adds the former path (fp32 model with random init, then load_state_dict of the whole file) for
   comparison; it needs ~9 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WAN_1_3B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16, out_channels=16,
                text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True, eps=1e-6)  # fmt: skip
TINY = dict(WAN_1_3B, num_attention_heads=2, attention_head_dim=64, text_dim=64, ffn_dim=256, num_layers=2)
FILES = {"diffusers": "diffusers", "single": "wan2.1_t2v_bf16.safetensors",
         "fp8": "wan2.1_t2v_fp8_e4m3fn_scaled.safetensors"}  # fmt: skip


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux: KiB


def build(work: Path, tiny: bool) -> None:
    """Random-weight Wan2.1 transformer by diffusers, saved bf16 in both layouts, and a scaled fp8 single file."""
    import torch
    from diffusers import WanTransformer3DModel
    from safetensors.torch import save_file

    from semanticgen_core.checkpoint import diffusers_to_wan

    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # build in bf16 directly: half the memory of fp32 + a cast
    model = WanTransformer3DModel(**(TINY if tiny else WAN_1_3B)).eval()
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(work / FILES["diffusers"])
    state = {f"model.diffusion_model.{k}": v.contiguous() for k, v in diffusers_to_wan(model.state_dict()).items()}
    del model
    save_file(state, work / FILES["single"])
    fp8 = {"model.diffusion_model.scaled_fp8": torch.empty(0, dtype=torch.float8_e4m3fn)}
    for k, v in state.items():
        if v.ndim == 2 and ".blocks." in k:  # ComfyUI quantises the block matrices
            scale = v.abs().amax().float() / 448.0  # e4m3's largest value
            fp8[k] = (v.float() / scale).to(torch.float8_e4m3fn)
            fp8[k.removesuffix(".weight") + ".scale_weight"] = scale.reshape(())
        else:
            fp8[k] = v
        state[k] = None  # free as we go
    save_file(fp8, work / FILES["fp8"])


def load(work: Path, layout: str, dtype: str) -> dict:
    """One load in this process; returns its measurements."""
    import torch

    from semanticgen_core.dit import SemanticGenDiT
    from semanticgen_core.precision import resolve_dtype

    base = peak_rss_gb()
    t0 = time.perf_counter()
    path = work / FILES[{"eager": "single", "diffusers-ref": "diffusers"}.get(layout, layout)]
    if layout == "eager":  # the former path: random-init fp32 model, whole file in memory, load_state_dict
        from safetensors.torch import load_file

        from semanticgen_core.checkpoint import normalise_wan_keys, wan_weight_index

        cfg, _ = wan_weight_index(path)
        model = SemanticGenDiT(cfg)
        model.load_state_dict(normalise_wan_keys(load_file(str(path))))
        model.to(resolve_dtype(dtype))
    elif layout == "diffusers-ref":  # diffusers' own loader, for context
        from diffusers import WanTransformer3DModel

        model = WanTransformer3DModel.from_pretrained(path, torch_dtype=resolve_dtype(dtype))
    else:
        model = SemanticGenDiT.from_wan_pretrained(path, dtype=dtype)
    seconds = time.perf_counter() - t0
    tensors = [*model.parameters(), *model.buffers()]
    # safetensors maps the file lazily: weights taken as they are (no cast) are file pages that become resident
    # when first read. Read every byte, so the peak counts all the weights as a forward (or a move to a GPU) would.
    for t in tensors:
        t.detach().reshape(-1).view(torch.uint8).amax()  # no temporary copy (a sum would widen to int64)
    n = sum(t.numel() for t in tensors)
    held = sum(t.numel() * t.element_size() for t in tensors)
    nominal = n * torch.empty((), dtype=resolve_dtype(dtype)).element_size()
    peak = peak_rss_gb()
    denom = held if layout == "fp8" else nominal
    return {"layout": layout, "dtype": dtype, "params": n, "weights_gb": denom / 2**30, "held_gb": held / 2**30,
            "peak_rss_gb": peak, "baseline_rss_gb": base, "ratio": peak * 2**30 / denom,
            "ratio_above_baseline": (peak - base) * 2**30 / denom, "seconds": seconds}  # fmt: skip


def main(args) -> None:
    work = Path(args.work) / ("tiny" if args.tiny else "1.3b")
    work.mkdir(parents=True, exist_ok=True)
    if args.load:
        print(json.dumps(load(work, args.load, args.dtype)))
        return
    me = [sys.executable, str(Path(__file__).resolve())]
    flags = ["--work", args.work] + (["--tiny"] if args.tiny else [])
    if not (work / FILES["fp8"]).is_file():
        t0 = time.perf_counter()
        subprocess.run([*me, *flags, "--build"], check=True)
        print(f"built the reference files in {time.perf_counter() - t0:.0f} s: {work}")
    runs = [("diffusers", "bf16"), ("single", "bf16"), ("single", "fp32"), ("fp8", "bf16"), ("diffusers-ref", "bf16")]
    runs += [("eager", "bf16")] if args.eager else []
    print(f"{'file':14} {'dtype':5} {'params':>13} {'weights GB':>10} {'peak RSS GB':>11} {'ratio':>6} "
          f"{'(above base)':>12} {'load s':>7}")  # fmt: skip
    for layout, dtype in runs:
        out = subprocess.run([*me, *flags, "--load", layout, "--dtype", dtype], check=True, capture_output=True,
                             text=True).stdout  # fmt: skip
        r = json.loads(out.strip().splitlines()[-1])
        print(f"{layout:14} {dtype:5} {r['params']:13,d} {r['weights_gb']:10.3f} {r['peak_rss_gb']:11.3f} "
              f"{r['ratio']:6.3f} {r['ratio_above_baseline']:12.3f} {r['seconds']:7.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--work", default="/tmp/semanticgen_lean_loading", help="folder for the reference files")
    p.add_argument("--tiny", action="store_true", help="a 2-layer model of Wan width: seconds, not minutes")
    p.add_argument("--eager", action="store_true", help="also measure the former eager path (~9 GB at 1.3B)")
    p.add_argument("--build", action="store_true", help=argparse.SUPPRESS)  # internal: the build subprocess
    p.add_argument("--load", default=None, help=argparse.SUPPRESS)  # internal: one load subprocess
    p.add_argument("--dtype", default="bf16", help=argparse.SUPPRESS)
    a = p.parse_args()
    build(Path(a.work) / ("tiny" if a.tiny else "1.3b"), a.tiny) if a.build else main(a)
