"""Plan, sample and decode nodes: each converts ComfyUI types, calls one SemanticGenPipeline step, wraps the result.

text ─ GenerateSemanticPlan (stage A) ─┐
video ─ EncodeReferenceSemantics ──────┴─ SEMANTIC_PLAN ─ SemanticToLatent / SwinLongVideoSampler (stage B)
                                                          ─ LATENT (raw Wan latents) ─ SemanticGenDecode ─ IMAGE
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..semanticgen_core import checks
from ..semanticgen_core.config import SamplerConfig
from ..semanticgen_core.pipeline import SemanticGenPipeline
from ..semanticgen_core.schedule import check_schedule
from ..semanticgen_core.video_io import resample_indices
from . import comfy_compat as cc
from .convert import (
    StepProgress,
    check_plan,
    denormalize_latents,
    features_to_rgb,
    image_to_frames,
    make_plan,
    normalize_latents,
    parse_conditioning,
    parse_parts,
    parse_prompt_conditioning,
    video_to_image,
    wrap_latent,
)

ASSETS = Path(__file__).resolve().parents[1] / "workflows" / "assets"  # example clips shipped with the pack
FROM_INPUT = "none (use the video or images input)"  # the reference file choice when a VIDEO / IMAGE is connected

# ----------------------------------------------------------------------------------------------------------------
# Shared inputs
# ----------------------------------------------------------------------------------------------------------------


def number(kind: str, default, lo, hi, tooltip: str, **extra) -> tuple:
    """An INT or FLOAT widget."""
    return (kind, {"default": default, "min": lo, "max": hi, **extra, "tooltip": tooltip})


MODEL = ("SEMANTICGEN_MODEL", {"tooltip": "From SemanticGen Model Loader."})
PLAN = (
    "SEMANTIC_PLAN",
    {"tooltip": "From Generate Semantic Plan or Encode Reference Semantics; it fixes the video's length and size."},
)
POSITIVE = (
    "CONDITIONING",
    {
        "tooltip": "The prompt: SemanticGen Text Encode (embedded model), or CLIP Text Encode "
        "with Load CLIP type wan (Wan2.1-based models)."
    },
)
NEGATIVE = ("CONDITIONING", {"tooltip": "What to guide away from (classifier-free guidance); usually an empty prompt."})
SECONDS = number(
    "FLOAT", 2.0, 0.25, 600.0, "Video length in seconds; the plan covers all of it with full attention.", step=0.25
)
WIDTH = number(
    "INT", 64, 16, 4096, "Video width in pixels (multiple of 16); the embedded model was trained at 64.", step=16
)
HEIGHT = number(
    "INT", 64, 16, 4096, "Video height in pixels (multiple of 16); the embedded model was trained at 64.", step=16
)
STEPS = number("INT", 20, 1, 1000, "Euler sampling steps.")
CFG = number(
    "FLOAT", 4.0, 1.0, 30.0,
    "Classifier-free guidance scale (1 = no guidance, half the compute). On a reference video's plan the embedded "
    "model is better at 3: the prompt's colour taken more often and fewer traces of the reference's than at 4 "
    "(README, Sampling).", step=0.1, round=0.01,
)  # fmt: skip
PLAN_CFG = number(
    "FLOAT",
    1.0,
    1.0,
    30.0,
    "Stage A's classifier-free guidance scale (1 = no guidance, half the compute). The embedded model samples its "
    "plans unguided: no worse than 4 on held-out prompts (README, Sampling), at half the cost.",
    step=0.1,
    round=0.01,
)
SHIFT = number(
    "FLOAT",
    2.0,
    0.1,
    100.0,
    "Timestep shift of the flow schedule (higher spends more steps at high noise; Wan2.1 uses 3-8).",
    step=0.1,
)
SEED = number(
    "INT",
    0,
    0,
    0xFFFFFFFFFFFFFFFF,
    "Random seed: the same seed and settings give the same result.",
    control_after_generate=True,
)
PLAN_NOISE = number(
    "FLOAT",
    0.1,
    0.0,
    2.0,
    "Noise added to the plan before stage B (trained with it): closes the gap between generated and encoded plans.",
    step=0.01,
)
WINDOW = number(
    "INT",
    8,
    2,
    1024,
    "Attention window in latent frames (even; odd layers shift it by half). Memory "
    "grows with the window, not with the video length.",
    step=2,
)
MAX_SECONDS = number("FLOAT", 0.0, 0.0, 600.0, "Use at most this much of the clip (0 = all of it).", step=0.25)
FPS = number("FLOAT", 16.0, 0.1, 240.0, "Frame rate of 'images' (they are resampled to the encoder's rate).", step=0.1)
CHUNK = number("INT", 4, 1, 256, "Latent frames decoded at a time (4 video frames each); lower uses less memory.")

# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def reference_files() -> list[str]:
    """Shipped example clips first, then videos in ComfyUI's input/ folder, then 'none' (a connected input)."""
    shipped = sorted(p.name for p in ASSETS.glob("*") if p.suffix.lower() in cc.VIDEO_EXTENSIONS)
    return shipped + [f for f in cc.input_videos() if f not in shipped] + [FROM_INPUT]


def reference_path(name: str) -> Path:
    """A shipped clip by name, else a file in input/, else an existing path."""
    for path in (ASSETS / name, cc.input_path(name), Path(name)):
        if path is not None and path.is_file():
            return path
    raise FileNotFoundError(f"reference video {name!r} is neither shipped in {ASSETS} nor in ComfyUI's input/ folder")


def reference_source(file: str, sem_fps: float, images=None, fps: float = 16.0, video=None):
    """(uint8 frames [T, H, W, 3] at the semantic fps, duration in seconds) from a VIDEO, an IMAGE batch at `fps`,
    or a file (in that order)."""
    from ..semanticgen_core.video_io import read_video, video_info

    if video is not None:  # ComfyUI VideoInput (LoadVideo)
        parts = video.get_components()
        images, fps = parts.images, float(parts.frame_rate)
    if images is not None:
        frames = image_to_frames(images)
        return frames[resample_indices(len(frames), fps, sem_fps)], len(frames) / fps
    if file == FROM_INPUT:
        raise ValueError(
            f"Encode Reference Semantics: file is {FROM_INPUT!r} but neither 'video' (e.g. Load Video) nor 'images' "
            "is connected; connect one, or pick a clip in 'file'"
        )
    path = reference_path(file)
    return read_video(path, fps=sem_fps), video_info(path)["duration"] or None


def text_pair(model, positive, negative, text_dim: int):
    """(ctx, uncond, starts) from two CONDITIONINGs, checked against the generator's text dim; the positive one may
    be a prompt schedule (ctx [1, G, S, D] and the G start times), else starts is None."""
    ctx, starts = parse_prompt_conditioning(positive, text_dim, model.name)
    return ctx, parse_conditioning(negative, text_dim, model.name), starts


def sample_latents(model, plan, positive, negative, plan_noise, steps, cfg, shift, seed, window):
    """Stage B for both sampler nodes: generator-space latents from the pipeline -> raw LATENT."""
    check_plan(plan, model)
    pipe = model.pipeline
    ctx, uncond, starts = text_pair(model, positive, negative, pipe.lat_generator.config.text_dim)
    parts = parse_parts(positive, pipe.lat_generator.config.text_dim, model.name)  # "A AND B": stage B only
    if starts is not None:
        check_schedule([(t, "") for t in starts], plan["seconds"], "prompt schedule")
    shape = model.video.latent_shape(plan["seconds"], plan["height"], plan["width"])
    generator = checks.generator(seed)
    with cc.on_device(pipe.lat_generator):
        z = pipe.generate_latents(
            plan["plan"],
            ctx.to(pipe.device, pipe.dtype),
            uncond.to(pipe.device, pipe.dtype),
            shape,
            SamplerConfig(steps, cfg, shift),
            plan_noise,
            window,
            generator,
            StepProgress(steps, wan21=model.wan21_latents),
            starts,
            parts and (parts[0].to(pipe.device, pipe.dtype), parts[1].to(pipe.device)),
        )
    return (wrap_latent(denormalize_latents(z.float().cpu(), model.latents_mean, model.latents_std)),)


# ----------------------------------------------------------------------------------------------------------------
# Nodes
# ----------------------------------------------------------------------------------------------------------------


class EncodeReferenceSemantics:
    """Reference video -> SEMANTIC_PLAN: encoder features at the semantic fps, compressed by the model's compressor."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Takes the semantic plan (layout and motion) of a reference video; stage B then renders it with "
        "your prompt's details."
    )
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The reference's compressed plan, with its time span and size.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        file_tip = (
            "Reference video: a shipped example or a file in input/; 'none' when 'video' or 'images' is connected "
            "(a connected input always wins)."
        )
        required = {
            "encoder": (
                "SEMANTIC_ENCODER",
                {"tooltip": "From Load Semantic Encoder; the kind the model was trained on."},
            ),
            "model": ("SEMANTICGEN_MODEL", {"tooltip": "Its compressor turns encoder features into a plan."}),
            "file": (reference_files(), {"tooltip": file_tip}),
            "width": WIDTH,
            "height": HEIGHT,
            "max_seconds": MAX_SECONDS,
        }
        optional = {
            "images": ("IMAGE", {"tooltip": "Reference frames (e.g. Get Video Components); they override 'file'."}),
            "fps": FPS,
            "video": ("VIDEO", {"tooltip": "Reference VIDEO (e.g. Load Video); overrides 'images' and 'file'."}),
        }
        return {"required": required, "optional": optional}

    def encode(self, encoder, model, file, width, height, max_seconds, images=None, fps=16.0, video=None):
        frames, duration = reference_source(file, model.semantic.fps, images, fps, video)
        frames, seconds = model.pipeline.reference_clip(frames, height, width, max_seconds, duration)
        p = model.pipeline
        pipe = SemanticGenPipeline(p.sem_generator, p.lat_generator, p.compressor, None, None, encoder, p.config)
        with cc.on_device(encoder):
            z_sem = pipe.plan_from_video(frames)
        return (make_plan(z_sem, model.semantic, seconds, height, width, "reference", model.video),)


class GenerateSemanticPlan:
    """Stage A: text -> SEMANTIC_PLAN with full attention over the whole length (global planning)."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Generates a compact semantic plan (layout and motion) of the whole video from text."
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The generated plan; preview it with Preview Semantic Plan before paying for stage B.",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": MODEL,
                "positive": POSITIVE,
                "negative": NEGATIVE,
                "seconds": SECONDS,
                "width": WIDTH,
                "height": HEIGHT,
                "steps": STEPS,
                "cfg": PLAN_CFG,
                "shift": SHIFT,
                "seed": SEED,
            }
        }

    def generate(self, model, positive, negative, seconds, width, height, steps, cfg, shift, seed):
        pipe = model.pipeline
        if pipe.sem_generator is None:
            raise ValueError(
                f"model {model.name} was loaded without a stage-2 semantic generator; pick one in the "
                "loader, or make the plan with Encode Reference Semantics"
            )
        ctx, uncond, starts = text_pair(model, positive, negative, pipe.sem_generator.config.text_dim)
        if starts is not None:
            check_schedule([(t, "") for t in starts], seconds, "prompt schedule")
        grid = pipe.plan_grid(seconds, height, width)
        generator = checks.generator(seed)
        with cc.on_device(pipe.sem_generator, pipe.lat_generator):  # the pipeline's device is the latent generator's
            z_sem = pipe.generate_plan(
                ctx.to(pipe.device, pipe.dtype),
                uncond.to(pipe.device, pipe.dtype),
                grid,
                SamplerConfig(steps, cfg, shift),
                generator,
                StepProgress(steps),
                starts,
            )
        return (make_plan(z_sem, model.semantic, seconds, height, width, "generated", model.video),)


class SemanticToLatent:
    """Stage B for short clips: plan + text -> LATENT (raw Wan latents), full attention."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Renders a semantic plan into VAE latents (full attention: short clips)."
    RETURN_TYPES = ("LATENT",)
    OUTPUT_TOOLTIPS = ("Raw VAE latents [B, 16, T, H/8, W/8]: SemanticGen Decode, or VAE Decode with the Wan VAE.",)
    FUNCTION = "sample"
    REQUIRED = {
        "model": MODEL,
        "plan": PLAN,
        "positive": POSITIVE,
        "negative": NEGATIVE,
        "plan_noise": PLAN_NOISE,
        "steps": STEPS,
        "cfg": CFG,
        "shift": SHIFT,
        "seed": SEED,
    }

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": cls.REQUIRED}

    def sample(self, model, plan, positive, negative, plan_noise, steps, cfg, shift, seed):
        return sample_latents(model, plan, positive, negative, plan_noise, steps, cfg, shift, seed, None)


class SwinLongVideoSampler(SemanticToLatent):
    """Stage B for long plans: shifted-window attention, memory bounded by the window, not the length."""

    DESCRIPTION = (
        "Renders a long semantic plan into VAE latents with shifted-window attention (Swin): each window "
        "sees its span of the plan; memory is bounded by the window."
    )
    REQUIRED = {**SemanticToLatent.REQUIRED, "window": WINDOW}

    def sample(self, model, plan, positive, negative, plan_noise, steps, cfg, shift, seed, window):
        return sample_latents(model, plan, positive, negative, plan_noise, steps, cfg, shift, seed, window)


class SemanticGenDecode:
    """LATENT (raw) -> IMAGE frames, decoded a few latent frames at a time."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Decodes SemanticGen latents with a SemanticGen VAE, chunk by chunk (bounded memory)."
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("Video frames as an IMAGE batch [F, H, W, 3] (Create Video, Save Animated WEBP, ...).",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        vae_tip = "From SemanticGen VAE Loader; the VAE the model was trained with."
        return {
            "required": {
                "samples": ("LATENT", {"tooltip": "Raw VAE latents from a SemanticGen sampler."}),
                "vae": ("SEMANTICGEN_VAE", {"tooltip": vae_tip}),
                "chunk": CHUNK,
            }
        }

    def decode(self, samples, vae, chunk):
        z = normalize_latents(samples["samples"], vae.latents_mean.flatten(), vae.latents_std.flatten())
        bar, blocks = cc.progress_bar(z.shape[2]), []
        with cc.on_device(vae) as device:
            for block in vae.iter_decode(z.to(device), chunk):
                cc.throw_if_interrupted()
                blocks.append(block.cpu())
                bar.update_absolute(min(len(blocks) * chunk, z.shape[2]), z.shape[2])
        return (video_to_image(torch.cat(blocks, dim=2)),)


class PreviewSemanticPlan:
    """SEMANTIC_PLAN -> IMAGE: PCA colours per semantic frame, scaled up to the video size."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Shows a plan as images (top 3 principal components as RGB, one image per semantic frame) so you "
        "can check the layout before stage B."
    )
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("One image per semantic frame [B*T_s, H, W, 3] (Preview Image).",)
    FUNCTION = "preview"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"plan": PLAN}}

    def preview(self, plan):
        rgb = features_to_rgb(plan["plan"]).flatten(0, 1).permute(0, 3, 1, 2)  # [B*T_s, 3, H_s, W_s]
        image = torch.nn.functional.interpolate(rgb, size=(plan["height"], plan["width"]), mode="nearest")
        return (image.permute(0, 2, 3, 1),)
