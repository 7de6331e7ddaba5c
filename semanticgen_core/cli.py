"""Command line: `python -m semanticgen_core generate --prompt "a red circle moves to the right" --out out.mp4`.

With no weight flags the embedded shapes-world model is used. `--stage1/--stage2/--vae/--text-encoder-path`
(and `--semantic-encoder-path` for `--reference`) point it at other SemanticGen weights instead.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

MAX_SECONDS = 600.0


def _fail(parser: argparse.ArgumentParser, msg: str):
    parser.error(msg)  # prints usage + message, exits 2


def check_args(parser: argparse.ArgumentParser, args) -> None:
    """Reject bad arguments with messages that say what is expected."""
    if not args.out.lower().endswith(".mp4"):
        _fail(parser, f"--out {args.out!r}: the output is an H.264 .mp4 file; give a path ending in .mp4")
    if args.seconds is not None and not (0 < args.seconds <= MAX_SECONDS):
        _fail(parser, f"--seconds {args.seconds}: must be > 0 and <= {MAX_SECONDS:g}")
    for name in ("height", "width"):
        v = getattr(args, name)
        if v is not None and (v < 16 or v % 16):
            _fail(parser, f"--{name} {v}: must be a positive multiple of 16 (VAE factor 8 x DiT patch 2)")
    if args.steps is not None and args.steps < 1:
        _fail(parser, f"--steps {args.steps}: must be >= 1")
    if args.window is not None and (args.window < 2 or args.window % 2):
        _fail(parser, f"--window {args.window}: must be an even number >= 2 of latent frames (it shifts by half)")
    if args.reference is not None and not Path(args.reference).is_file():
        _fail(parser, f"--reference {args.reference}: no such file")
    custom = [args.stage1, args.stage2, args.vae, args.text_encoder_path]
    if any(custom) and not all(custom):
        _fail(parser, "custom weights need all of --stage1, --stage2, --vae and --text-encoder-path")
    if args.reference and any(custom) and not args.semantic_encoder_path:
        _fail(parser, "--reference with custom weights needs --semantic-encoder-path")
    check_runtime_args(parser, args)


def runtime_config(args):
    """The RuntimeConfig (LoRA, offloading, compile, attention) of the budget flags."""
    from .runtime import RuntimeConfig, parse_lora_arg

    loras = [parse_lora_arg(text) for text in args.lora]
    return RuntimeConfig(args.attention, args.blocks_on_device, args.prefetch_blocks, args.compile, loras,
                         args.lora_mode)  # fmt: skip


def check_runtime_args(parser: argparse.ArgumentParser, args) -> None:
    """The budget flags: LoRA files exist, the attention backend is installed for the device, counts are sane."""
    rt = runtime_config(args)
    for path, _ in rt.loras:
        if not Path(path).is_file() or not path.endswith(".safetensors"):
            _fail(parser, f"--lora {path}: no such .safetensors file (give PATH or PATH:STRENGTH)")
    if args.prefetch_blocks < 0:
        _fail(parser, f"--prefetch-blocks {args.prefetch_blocks}: must be >= 0")
    try:
        rt.check(args.device)
    except ValueError as err:
        _fail(parser, f"{err} (--attention / --blocks-on-device / --lora-mode)")


def load_pipeline(args):
    """The embedded pipeline, or one assembled from the weight flags."""
    from .encoders import load_semantic_encoder
    from .lab.embedded import load_embedded_pipeline, manifest
    from .models import build_pipeline
    from .text import load_text_encoder
    from .vae import load_vae

    if not args.stage1:
        return load_embedded_pipeline(args.device, with_encoder=args.reference is not None), manifest()
    vae = load_vae(args.vae, device=args.device).eval()
    text = load_text_encoder(args.text_encoder, args.text_encoder_path, device=args.device)
    enc = None
    if args.reference:
        enc = load_semantic_encoder(args.semantic_encoder, args.semantic_encoder_path, device=args.device)
    # offloading: the generators stay in CPU memory until configure_pipeline places their resident parts
    gen_device = "cpu" if args.blocks_on_device is not None else args.device
    pipe = build_pipeline(args.stage1, args.stage2, vae, text, enc, device=gen_device)
    return pipe, {"height": 480, "width": 832, "window": None}


def generate(args) -> Path:
    """Run the two stages and stream the decoded frames into an mp4."""
    import torch
    from tqdm.auto import tqdm

    from .config import SamplerConfig
    from .runtime import configure_pipeline
    from .video_io import read_video, write_video

    t0 = time.time()
    pipe, info = load_pipeline(args)
    configure_pipeline(pipe, runtime_config(args), args.device)  # LoRA, offloading, compile, attention
    cfg = pipe.config
    height, width = args.height or info["height"], args.width or info["width"]
    sampler = SamplerConfig(
        steps=args.steps or cfg.lat_sampler.steps,
        cfg=cfg.lat_sampler.cfg if args.cfg is None else args.cfg,
        shift=args.shift or cfg.lat_sampler.shift,
    )
    generator = torch.Generator("cpu").manual_seed(args.seed)
    ctx, uncond = pipe.encode_text([args.prompt], args.negative_prompt)

    # 1. plan: from the reference video (semantic transfer) or generated by stage A
    if args.reference:
        frames = read_video(args.reference, fps=cfg.semantic.fps)
        frames, seconds = pipe.reference_clip(frames, height, width, args.seconds or 0.0)
        if args.seconds and seconds < args.seconds and not args.quiet:
            print(f"note: the reference lasts {seconds:g} s, so the video does too (asked for {args.seconds:g} s)")
        z_sem = pipe.plan_from_video(frames)
        plan_steps = 0
    else:
        seconds = args.seconds or 2.0
        z_sem, plan_steps = None, sampler.steps
    latent_shape = cfg.video.latent_shape(seconds, height, width)
    window = args.window or (info.get("window") if latent_shape[1] > (info.get("window") or math.inf) else None)

    bar = tqdm(total=plan_steps + sampler.steps, desc="generate", unit="step", disable=args.quiet)
    callback = lambda _info: bar.update(1)  # noqa: E731
    if z_sem is None:
        z_sem = pipe.generate_plan(ctx, uncond, pipe.plan_grid(seconds, height, width), sampler, generator, callback)
    # 2. latents conditioned on the plan (shifted windows when the video is longer than the window)
    z = pipe.generate_latents(z_sem, ctx, uncond, latent_shape, sampler, args.plan_noise, window, generator, callback)
    bar.close()
    # 3. decode in chunks straight into the (atomically written) mp4
    out = Path(args.out)
    write_video(out, (f for block in pipe.iter_decode(z) for f in block), fps=cfg.video.fps)
    if not args.quiet:
        frames_n = (latent_shape[1] - 1) * cfg.video.temporal_factor + 1
        mode = f"window {window}" if window else "full attention"
        print(f"wrote {out} ({frames_n} frames, {width}x{height}, {seconds:g} s, {mode}) in {time.time() - t0:.1f} s")
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m semanticgen_core", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    g = sub.add_parser("generate", help="text (or reference video) to video")
    g.add_argument("--prompt", required=True, help="what to generate")
    g.add_argument("--out", default="out.mp4", help="output .mp4 (written atomically)")
    g.add_argument("--seconds", type=float, default=None, help="video length (default 2, or the reference's)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    g.add_argument("--reference", default=None, help="reference video: its semantic plan, details from the prompt")
    g.add_argument("--negative-prompt", default="", help="prompt guided away from (CFG)")
    g.add_argument("--height", type=int, default=None, help="pixels, multiple of 16 (default: the model's)")
    g.add_argument("--width", type=int, default=None, help="pixels, multiple of 16 (default: the model's)")
    g.add_argument("--steps", type=int, default=None, help="Euler steps per stage (default: the model's)")
    g.add_argument("--cfg", type=float, default=None, help="classifier-free guidance scale (default: the model's)")
    g.add_argument("--shift", type=float, default=None, help="timestep shift (default: the model's)")
    g.add_argument("--plan-noise", type=float, default=None, help="noise added to the plan before stage B")
    g.add_argument("--window", type=int, default=None, help="stage-B window in latent frames (default: auto)")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    w = g.add_argument_group("other weights (default: the embedded shapes-world model)")
    w.add_argument("--stage1", default=None, help="stage-1 bundle (compressor + latent generator)")
    w.add_argument("--stage2", default=None, help="stage-2 semantic generator")
    w.add_argument("--vae", default=None, help="VAE weights (Wan2.1 file or folder, or ours)")
    w.add_argument("--text-encoder", default="umt5", help="text encoder kind: umt5 | sentence")
    w.add_argument("--text-encoder-path", default=None, help="text encoder folder")
    w.add_argument("--semantic-encoder", default="qwen2_5_vl", help="semantic encoder kind (for --reference)")
    w.add_argument("--semantic-encoder-path", default=None, help="semantic encoder weights (for --reference)")
    b = g.add_argument_group("fitting the GPU (see README: Fitting real GPUs)")
    b.add_argument("--lora", action="append", default=[], metavar="PATH[:STRENGTH]",
                   help="LoRA for the Wan base of the latent generator (diffusers/PEFT, ComfyUI or kohya layout); "
                   "repeat for several")  # fmt: skip
    b.add_argument("--lora-mode", choices=("runtime", "merge"), default="runtime",
                   help="runtime: adapters beside untouched weights; merge: added into the weights (no extra compute)")  # fmt: skip
    b.add_argument("--blocks-on-device", type=int, default=None,
                   help="transformer blocks kept on the device, the rest streamed from CPU memory (default: all)")  # fmt: skip
    b.add_argument("--prefetch-blocks", type=int, default=1, help="streamed blocks copied ahead of use")
    b.add_argument("--attention", default="auto", choices=("auto", "sdpa", "flash", "sage"),
                   help="attention kernel (auto: flash-attn for fp16/bf16 on CUDA when installed, else SDPA)")  # fmt: skip
    b.add_argument("--compile", action="store_true", help="torch.compile each transformer block (slow first step)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = parser._subparsers._group_actions[0].choices[args.command]
    check_args(sub, args)
    from .checkpoint import CheckpointError
    from .video_io import VideoReadError

    try:
        generate(args)
    except (VideoReadError, CheckpointError, FileNotFoundError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
