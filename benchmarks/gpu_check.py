"""GPU check: bf16 Wan2.1-1.3B forward at 480x832x81 and one stage-1 training step, ours vs diffusers.

    python benchmarks/gpu_check.py --out gpu_check.json     # a CUDA GPU; ~3 min on an H100-class card
    python benchmarks/gpu_check.py --tiny                    # the same script on a CPU in seconds (a smoke run)

Random weights (no download): our SemanticGenDiT with the Wan2.1-T2V-1.3B config, cast to bf16 as the loaders do
(precision.cast_module: time embedding, modulation and affine norms in fp32), and diffusers' WanTransformer3DModel
holding the same weights. Per attention backend (sdpa; flash-attn when installed): seconds per forward, model
TFLOP/s, MFU against the card's dense bf16 peak, peak memory, and the relative difference ours vs diffusers.
Then one stage-1 training step (latent generator + compressor, fp32 weights under bf16 autocast as accelerate's
mixed_precision='bf16', gradient checkpointing, AdamW) at the same size: seconds, TFLOP/s, peak memory.

FLOPs are counted analytically (`forward_flops`, multiply-add = 2), for the nominal computation with the 512-token
padded text context of Wan; ours collapses the zero padding exactly (attention.compact_padding), so its TFLOP/s is
"Wan-equivalent". A training step counts 3x the forward (the recomputation of checkpointing is not model FLOPs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core import attention as attention_mod  # noqa: E402
from semanticgen_core.checkpoint import wan_to_diffusers  # noqa: E402
from semanticgen_core.config import DIT_CONFIGS, DiTConfig, SemanticSpec  # noqa: E402
from semanticgen_core.dit import SemanticGenDiT  # noqa: E402
from semanticgen_core.precision import cast_module  # noqa: E402

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity) from the vendors' datasheets; --peak-tflops overrides
PEAK_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
               "L40": 181.0, "RTX 4090": 165.0, "RTX 6000 Ada": 364.0, "A10": 125.0}  # fmt: skip
TINY = DiTConfig(dim=64, ffn_dim=128, freq_dim=32, text_dim=32, num_heads=2, num_layers=2)


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def forward_flops(cfg: DiTConfig, tokens: int, text: int, sem_tokens: int = 0) -> float:
    """Matmul FLOPs of one forward: per block self-attention (projections, scores, values), cross-attention over
    `text` tokens, FFN; plus patch embedding, text embedding and head."""
    d, f, n = cfg.dim, cfg.ffn_dim, tokens + sem_tokens
    patch = cfg.in_channels * math.prod(cfg.patch_size)
    block = 2 * n * d * d * 4 + 2 * 2 * n * n * d  # self-attention
    block += 2 * n * d * d * 2 + 2 * text * d * d * 2 + 2 * 2 * n * text * d  # cross-attention
    block += 2 * 2 * n * d * f  # FFN
    rest = 2 * tokens * patch * d + 2 * text * (cfg.text_dim * d + d * d) + 2 * tokens * d * patch
    return cfg.num_layers * block + rest + (2 * sem_tokens * cfg.sem_channels * d if sem_tokens else 0)


def device_peak(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (never reset)


def timed(fn, device, steps: int, warmup: int) -> tuple[float, object]:
    """Mean seconds per call after `warmup` calls, and the last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn()
    sync(device)
    return (time.perf_counter() - t0) / steps, out


def backend(name: str):
    """Our attention backend for the enclosed calls (attention.attention_backend where this checkout has it)."""
    switch = getattr(attention_mod, "attention_backend", None)
    if switch is not None:
        return switch(name)
    if name == "sdpa" and getattr(attention_mod, "_flash_attn_func", None) is not None:
        raise RuntimeError("this checkout cannot force sdpa while flash-attn is installed (no attention_backend)")
    return contextlib.nullcontext()


def diffusers_twin(model: SemanticGenDiT, device, dtype):
    """diffusers' WanTransformer3DModel with our weights (its _keep_in_fp32_modules in fp32, the rest in dtype)."""
    from diffusers import WanTransformer3DModel

    cfg = model.config
    ref = WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=cfg.cross_attn_norm, eps=cfg.eps,
    ).to(device)  # fmt: skip
    ours = {k: v for k, v in model.state_dict().items() if not k.startswith("sem_embedding.")}
    ref.load_state_dict(wan_to_diffusers(ours))
    keep = set(getattr(ref, "_keep_in_fp32_modules", None) or ())
    for name, p in ref.named_parameters():
        p.data = p.data.to(torch.float32 if keep & set(name.split(".")) else dtype)
    return ref.eval()


# ----------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------


def check_forward(args, cfg, device, dtype, peak) -> list[dict]:
    """Seconds per bf16 forward per backend, ours and diffusers, on the same weights and inputs."""
    torch.manual_seed(0)
    with torch.device(device):
        model = cast_module(SemanticGenDiT(cfg), dtype).eval()
    lat_t, lat_h, lat_w = (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(1, cfg.in_channels, lat_t, lat_h, lat_w, generator=g, device=device)
    t = torch.full((1,), 0.7, device=device)
    ctx = torch.zeros(1, args.text_len, cfg.text_dim, device=device)
    ctx[:, : args.prompt_tokens] = torch.randn(1, args.prompt_tokens, cfg.text_dim, generator=g, device=device)
    tokens = lat_t * (lat_h // cfg.patch_size[1]) * (lat_w // cfg.patch_size[2])
    flops = forward_flops(cfg, tokens, args.text_len)
    print(f"forward: latent {tuple(x.shape)} = {tokens} tokens, text {args.text_len} ({args.prompt_tokens} real), "
          f"{flops / 1e12:.3g} TFLOP per forward", flush=True)  # fmt: skip

    ref = None if args.skip_diffusers else diffusers_twin(model, device, dtype)
    backends = ["sdpa"] + (["flash"] if device.type == "cuda" and attention_mod._flash_attn_func is not None else [])
    rows = []
    for name in backends:
        with torch.no_grad(), backend(name):
            reset_peak(device)
            sec, v = timed(lambda: model(x, t, ctx), device, args.steps, args.warmup)
            rows.append(dict(model="ours", attention=name, seconds=sec, peak_gb=peak_gb(device)))
            if ref is not None:
                if name == "flash" and hasattr(ref, "set_attention_backend"):
                    ref.set_attention_backend("flash")
                reset_peak(device)
                xd, ctxd = x.to(dtype), ctx.to(dtype)
                call = lambda: ref(hidden_states=xd, timestep=1000 * t, encoder_hidden_states=ctxd).sample  # noqa: E731
                sec_ref, out = timed(call, device, args.steps, args.warmup)
                rel = float((v.float() - out.float()).norm() / out.float().norm())
                rows[-1]["rel_diff_vs_diffusers"] = rel
                rows.append(dict(model="diffusers", attention=name, seconds=sec_ref, peak_gb=peak_gb(device)))
    for r in rows:
        r["tflops"] = flops / r["seconds"] / 1e12
        r["mfu"] = r["tflops"] / peak if peak else None
    return rows  # the models are freed with this frame


def check_train_step(args, cfg, device) -> dict:
    """One stage-1 step (forward, backward, AdamW) as training runs it at this size."""
    from semanticgen_core import SemanticCompressor
    from train.stage1 import Stage1Model

    torch.manual_seed(0)
    spec = SemanticSpec()  # Qwen2.5-VL geometry: the plan grid of this clip
    frames, fps = args.frames, 16.0
    grid = spec.grid(frames / fps, args.height, args.width)
    with torch.device(device):
        lat = SemanticGenDiT(DiTConfig.from_dict({**cfg.to_dict(), "sem_channels": 8}))
        model = Stage1Model(lat, SemanticCompressor(args.sem_dim, 8)).train()
    lat.gradient_checkpointing = not args.tiny
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    g = torch.Generator(device).manual_seed(0)
    lat_shape = (1, cfg.in_channels, (frames - 1) // 4 + 1, args.height // 8, args.width // 8)
    batch = {"latents": torch.randn(lat_shape, generator=g, device=device),
             "sem_feats": torch.randn(1, args.sem_dim, *grid, generator=g, device=device),
             "ctx": torch.randn(1, args.prompt_tokens, cfg.text_dim, generator=g, device=device)}  # fmt: skip
    gen = torch.Generator().manual_seed(0)

    def step():
        with torch.autocast(device.type, torch.bfloat16):
            loss, _ = model(batch, gen)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    reset_peak(device)
    sec, loss = timed(step, device, args.train_steps, 1)
    tokens = math.prod(lat_shape[2:]) // 4
    flops = 3 * forward_flops(lat.config, tokens, args.prompt_tokens, math.prod(grid))
    return dict(seconds=sec, peak_gb=peak_gb(device), tflops=flops / sec / 1e12, loss=float(loss),
                plan_grid=list(grid), gradient_checkpointing=lat.gradient_checkpointing)  # fmt: skip


def main(args) -> dict:
    if args.tiny:
        device, cfg = torch.device("cpu"), TINY
        args.frames, args.height, args.width, args.text_len, args.prompt_tokens = 9, 64, 64, 16, 5
        args.sem_dim, args.steps, args.warmup, args.train_steps = 16, 2, 1, 1
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run with --tiny for the CPU smoke run")
        device, cfg = torch.device("cuda"), DIT_CONFIGS["wan2.1-t2v-1.3b"]
    dtype = torch.bfloat16
    peak = device_peak(device, args.peak_tflops)
    info = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "peak_tflops": peak, "shape": [args.frames, args.height, args.width],
            "flash_attn": attention_mod._flash_attn_func is not None}  # fmt: skip
    print(json.dumps(info), flush=True)
    rows = check_forward(args, cfg, device, dtype, peak)
    print(f"{'model':10} {'attention':9} {'s/forward':>9} {'TFLOP/s':>8} {'MFU':>6} {'peak GB':>8} {'rel diff':>9}")
    for r in rows:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        diff = f"{r['rel_diff_vs_diffusers']:.2e}" if "rel_diff_vs_diffusers" in r else ""
        print(f"{r['model']:10} {r['attention']:9} {r['seconds']:9.3f} {r['tflops']:8.3g} {mfu:>6} "
              f"{r['peak_gb']:8.2f} {diff:>9}", flush=True)  # fmt: skip
    train = None
    if not args.skip_train:
        if device.type == "cuda":
            torch.cuda.empty_cache()
        train = check_train_step(args, cfg, device)
        print(f"stage-1 train step: {train['seconds']:.3f} s, {train['tflops']:.3g} TFLOP/s, peak "
              f"{train['peak_gb']:.2f} GB, loss {train['loss']:.4f}, plan grid {train['plan_grid']}")  # fmt: skip
    result = {**info, "forward": rows, "train_step": train}
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny config on the CPU: proves the script runs, in seconds")
    p.add_argument("--frames", type=int, default=81, help="video frames (4k+1)")
    p.add_argument("--height", type=int, default=480, help="pixels, multiple of 16")
    p.add_argument("--width", type=int, default=832, help="pixels, multiple of 16")
    p.add_argument("--text-len", type=int, default=512, help="padded text context length (Wan: 512)")
    p.add_argument("--prompt-tokens", type=int, default=64, help="real (non-zero) prompt tokens in the context")
    p.add_argument("--sem-dim", type=int, default=2048, help="semantic encoder feature size (Qwen2.5-VL-3B: 2048)")
    p.add_argument("--steps", type=int, default=3, help="timed forwards per backend")
    p.add_argument("--warmup", type=int, default=1, help="untimed forwards first")
    p.add_argument("--train-steps", type=int, default=2, help="timed training steps (after one untimed)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak (default: a table)")
    p.add_argument("--skip-diffusers", action="store_true", help="only our model")
    p.add_argument("--skip-train", action="store_true", help="no training step")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    main(p.parse_args())
