"""Command line: `python -m semanticgen_core generate --prompt "a red circle moves to the right" --out out.mp4`.

With no weight flags the embedded shapes-world model is used. `--stage1/--stage2/--vae/--text-encoder-path`
(and `--semantic-encoder-path` for `--reference`) point it at other SemanticGen weights instead.

Several prompts make a schedule, each from its start time in seconds (the first starts at 0):
    --prompt "a red square moves to the right" --prompt "6: the red square moves up" --prompt "14: it stays still"
One prompt may be composed, "A AND B [:w]" (compose.py: every part guides at once, B at w times the CFG scale):
    --prompt "a red triangle moves to the left AND a triangle moves to the left :0.5"
`--save-plan plan.safetensors` keeps the semantic plan; `--plan plan.safetensors` renders a saved (or edited) one.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

MAX_SECONDS = 600.0


def _split_parts(schedule):
    """A one-prompt schedule "A AND B [:w]" -> ([(0, "A")], [("B", w)]) (compose.py); a schedule's segments are plain."""
    from .compose import SEPARATOR, split_prompt

    if len(schedule) > 1:
        if any(SEPARATOR in p for _, p in schedule):
            raise ValueError("--prompt: a schedule's segments take plain prompts; compose (A AND B) one prompt")
        return schedule, []
    text, parts = split_prompt(schedule[0][1])
    return [(schedule[0][0], text)], parts


def _fail(parser: argparse.ArgumentParser, msg: str):
    parser.error(msg)  # prints usage + message, exits 2


def check_args(parser: argparse.ArgumentParser, args) -> None:
    """Reject bad arguments before any loading, with messages that name the flag and what is expected."""
    from . import checks

    try:
        checks.output_file(args.out, "--out")
        if args.seconds is not None:
            checks.seconds(args.seconds, "--seconds", MAX_SECONDS)
        if args.height is not None or args.width is not None:
            checks.size(args.height or 16, args.width or 16, ("--height", "--width"))
        if args.steps is not None:
            checks.number("--steps", args.steps, 1, checks.MAX_STEPS, integer=True)
        if args.replan is not None:
            checks.number("--replan", args.replan, 0.0, 1.0)
        for flag, value in (("--cfg", args.cfg), ("--plan-cfg", args.plan_cfg)):
            if value is not None:
                checks.number(flag, value, *checks.CFG_RANGE)
        if args.shift is not None:
            checks.number("--shift", args.shift, *checks.SHIFT_RANGE)
        if args.plan_noise is not None:
            checks.plan_noise(args.plan_noise, "--plan-noise")
        checks.seed(args.seed, "--seed")
        checks.device(args.device, "--device")
    except ValueError as err:
        _fail(parser, str(err))
    if args.window is not None and (args.window < 2 or args.window % 2):
        _fail(parser, f"--window {args.window}: must be an even number >= 2 of latent frames (it shifts by half)")
    if args.reference is not None and not Path(args.reference).is_file():
        _fail(parser, f"--reference {args.reference}: no such file")
    if args.plan is not None and not Path(args.plan).is_file():
        _fail(parser, f"--plan {args.plan}: no such file")
    if args.plan and args.reference:
        _fail(parser, "--plan and --reference both give the plan; use one")
    if args.replan and not (args.plan or args.reference):
        _fail(parser, f"--replan {args.replan:g} re-samples a given plan: use it with --reference or --plan")
    if args.save_plan is not None and not args.save_plan.endswith(".safetensors"):
        _fail(parser, f"--save-plan {args.save_plan!r}: a plan file is .safetensors; give a path ending in it")
    from .schedule import ScheduleError, check_schedule, parse_schedule

    try:
        args.schedule = parse_schedule(args.prompt, "--prompt")
        args.schedule, args.parts = _split_parts(args.schedule)
        if not (args.reference or args.plan):  # else the length is the reference's or the plan's (checked later)
            check_schedule(args.schedule, args.seconds or 2.0, "--prompt")
    except (ScheduleError, ValueError) as err:
        _fail(parser, str(err))
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
    """The embedded pipeline, or one assembled from the weight flags, in the dtype of --dtype."""
    from .encoders import load_semantic_encoder
    from .lab.embedded import load_embedded_pipeline, manifest
    from .models import build_pipeline
    from .precision import auto_dtype, resolve_dtype
    from .text import load_text_encoder
    from .vae import load_vae

    dtype = auto_dtype(args.device) if args.dtype == "auto" else resolve_dtype(args.dtype)
    if not args.stage1:
        pipe = load_embedded_pipeline(args.device, with_encoder=args.reference is not None)
        return pipe.to(dtype=dtype), manifest()
    vae = load_vae(args.vae, dtype, args.device).eval()
    text = load_text_encoder(args.text_encoder, args.text_encoder_path, dtype, args.device)
    enc = None
    if args.reference:
        enc = load_semantic_encoder(args.semantic_encoder, args.semantic_encoder_path, dtype, args.device)
    # offloading: the generators stay in CPU memory until configure_pipeline places their resident parts
    gen_device = "cpu" if args.blocks_on_device is not None else args.device
    pipe = build_pipeline(args.stage1, args.stage2, vae, text, enc, device=gen_device, dtype=dtype)
    return pipe, {"height": 480, "width": 832, "window": None}


def generate(args) -> Path:
    """Run the two stages and stream the decoded frames into an mp4."""
    from tqdm.auto import tqdm

    from . import checks, flow
    from .checkpoint import CheckpointError
    from .compose import encode_parts
    from .config import SamplerConfig
    from .plan_io import SemanticPlan, check_plan, load_plan, save_plan
    from .runtime import configure_pipeline
    from .schedule import check_schedule
    from .video_io import read_video, video_info, write_video

    t0 = time.time()
    pipe, info = load_pipeline(args)
    configure_pipeline(pipe, runtime_config(args), args.device)  # LoRA, offloading, compile, attention
    cfg = pipe.config
    height, width = args.height or info["height"], args.width or info["width"]
    lat = cfg.transfer_sampler if args.reference and cfg.transfer_sampler else cfg.lat_sampler  # on a reference's plan
    sampler, plan_sampler, replan_sampler = (  # stage B's, stage A's (new, re-sampled plan): model's unless flags
        SamplerConfig(
            steps=args.steps or s.steps,
            cfg=s.cfg if cfg_flag is None else cfg_flag,
            shift=s.shift if args.shift is None else args.shift,
        )
        for s, cfg_flag in (
            (lat, args.cfg),
            (cfg.sem_sampler, args.plan_cfg),
            (cfg.replan_sampler or cfg.sem_sampler, args.plan_cfg),
        )  # fmt: skip
    )
    replan = args.replan if args.replan is not None else cfg.transfer_replan if args.reference else 0.0
    generator = checks.generator(args.seed, "--seed")
    ctx, uncond, starts = pipe.encode_schedule(args.schedule, args.negative_prompt)  # ctx [1, G, S, D]
    parts = encode_parts(lambda texts: pipe.encode_text(texts)[0], [args.parts])  # "A AND B": compose.py

    # 1. plan: from a plan file, from the reference video (semantic transfer) or generated by stage A
    if args.plan:
        plan = load_plan(args.plan)
        check_plan(plan, cfg.semantic, cfg.video, f"--plan {args.plan}")
        asked = {"--seconds": (args.seconds, plan.seconds), "--height": (args.height, plan.height),
                 "--width": (args.width, plan.width)}  # fmt: skip
        clash = [f"{k} {a:g} (the plan: {b:g})" for k, (a, b) in asked.items() if a is not None and a != b]
        if clash:
            raise CheckpointError(f"--plan {args.plan} fixes the video's length and size; drop {', '.join(clash)}")
        z_sem, seconds, height, width, plan_steps = plan.z[:1], plan.seconds, plan.height, plan.width, 0
    elif args.reference:
        frames = read_video(args.reference, fps=cfg.semantic.fps)
        duration = video_info(args.reference)["duration"] or None
        frames, seconds = pipe.reference_clip(frames, height, width, args.seconds or 0.0, duration)
        if args.seconds and seconds < args.seconds - 1 / cfg.video.fps and not args.quiet:
            print(f"note: the reference lasts {seconds:g} s, so the video does too (asked for {args.seconds:g} s)")
        z_sem = pipe.plan_from_video(frames)
        plan_steps = 0
    else:
        seconds = args.seconds or 2.0
        z_sem, plan_steps = None, plan_sampler.steps
    check_schedule(args.schedule, seconds, "--prompt")
    latent_shape = cfg.video.latent_shape(seconds, height, width)
    window = args.window or (info.get("window") if latent_shape[1] > (info.get("window") or math.inf) else None)

    if z_sem is not None and replan > 0:
        plan_steps = len(flow.schedule_from(replan, replan_sampler.steps, replan_sampler.shift)) - 1
    bar = tqdm(total=plan_steps + sampler.steps, desc="generate", unit="step", disable=args.quiet)
    callback = lambda _info: bar.update(1)  # noqa: E731
    if z_sem is None:
        grid = pipe.plan_grid(seconds, height, width)
        z_sem = pipe.generate_plan(ctx, uncond, grid, plan_sampler, generator, callback, starts)
    elif replan > 0:  # stage A re-samples the given plan with the prompt from flow time `replan`
        z_sem = pipe.generate_plan(ctx, uncond, tuple(z_sem.shape[2:]), replan_sampler, generator, callback, starts,
                                   init=z_sem, replan=replan)  # fmt: skip
    if args.save_plan:
        source = "file" if args.plan else "reference" if args.reference else "generated"
        save_plan(args.save_plan, SemanticPlan(z_sem, cfg.semantic, cfg.video, seconds, height, width, source,
                                               args.schedule))  # fmt: skip
    # 2. latents conditioned on the plan (shifted windows when the video is longer than the window)
    z = pipe.generate_latents(
        z_sem, ctx, uncond, latent_shape, sampler, args.plan_noise, window, generator, callback, starts, parts
    )
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
    g.add_argument(
        "--prompt", required=True, action="append",
        help="what to generate; repeat as 'SECONDS: prompt' for a schedule (each prompt from its start time); one "
        "prompt may be composed, 'A AND B [:weight]' (compose.py)",
    )  # fmt: skip
    g.add_argument("--out", default="out.mp4", help="output .mp4 (written atomically)")
    g.add_argument("--seconds", type=float, default=None, help="video length (default 2, or the reference's)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed, same video)")
    g.add_argument("--reference", default=None, help="reference video: its semantic plan, details from the prompt")
    g.add_argument("--plan", default=None, help="render a saved semantic plan (.safetensors) instead of stage A")
    g.add_argument("--save-plan", default=None, help="also write the semantic plan to this .safetensors file")
    g.add_argument("--negative-prompt", default="", help="prompt guided away from (CFG)")
    g.add_argument("--height", type=int, default=None, help="pixels, multiple of 16 (default: the model's)")
    g.add_argument("--width", type=int, default=None, help="pixels, multiple of 16 (default: the model's)")
    g.add_argument("--steps", type=int, default=None, help="Euler steps per stage (default: the model's)")
    g.add_argument("--cfg", type=float, default=None, help="stage B's guidance scale (default: the model's)")
    g.add_argument(
        "--plan-cfg", type=float, default=None,
        help="stage A's guidance scale (default: the model's; the embedded model's is 1, unguided)",
    )  # fmt: skip
    g.add_argument(
        "--replan", type=float, default=None,
        help="with --reference or --plan: stage A re-samples that plan with the prompt from this flow time in [0, 1] "
        "(0: as given; larger: more follows the prompt, less of the plan's layout and motion is kept; default: the "
        "model's for --reference, the embedded model's is 0.2, else 0)",
    )  # fmt: skip
    g.add_argument("--shift", type=float, default=None, help="timestep shift (default: the model's)")
    g.add_argument("--plan-noise", type=float, default=None, help="noise added to the plan before stage B")
    g.add_argument("--window", type=int, default=None, help="stage-B window in latent frames (default: auto)")
    g.add_argument("--device", default="cpu", help="cpu or cuda")
    g.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="weight and compute dtype of every model (auto: fp32 on cpu, bf16 on a GPU that has it, "
                   "else fp16); norms, modulation and the sampler stay fp32")  # fmt: skip
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

    # SIGTERM unwinds like Ctrl-C, so the atomic writer removes its temp file (the default action would just die)
    main_thread = threading.current_thread() is threading.main_thread()  # only it can install signal handlers
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            generate(args)
    except (ValueError, CheckpointError, ImportError) as err:  # VideoReadError is a ValueError; both name the file
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # e.g. the disk filled up while writing: name the path and the reason
        where = f" {err.filename!r}" if err.filename else ""
        print(f"error:{where} {err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted (an unfinished output is never left behind)", file=sys.stderr)
        return 130
    except _Terminated:
        print("terminated (an unfinished output is never left behind)", file=sys.stderr)
        return 143
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


class _Terminated(BaseException):
    """Raised by the SIGTERM handler; a BaseException, so that only cleanup code (finally, atomic writes) sees it."""


def _terminate(signum, frame):
    raise _Terminated()
