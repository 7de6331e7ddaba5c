"""ComfyUI types <-> semanticgen_core tensors, the objects our own socket types carry, and progress reporting.

ComfyUI conventions: IMAGE is float [B, H, W, C] in 0..1 (video frames are the batch); LATENT is
`{"samples": [B, C, T, H, W]}` holding raw (un-normalised) VAE latents, as `VAEDecode` with the Wan 2.1 VAE expects;
CONDITIONING is a list of `[cond [B, S, D], {extras}]`. Our types: SEMANTICGEN_MODEL (`SemanticGenModel`),
SEMANTIC_PLAN (a dict, see `make_plan`), SEMANTIC_ENCODER (a `semanticgen_core.encoders.SemanticEncoder`) and
SEMANTICGEN_VAE (a `semanticgen_core.vae.WanVAE`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange

from ..semanticgen_core.checkpoint import check_plan_compatible
from ..semanticgen_core.config import SemanticSpec, VideoSpec
from ..semanticgen_core.pipeline import SemanticGenPipeline
from ..semanticgen_core.plan_io import SemanticPlan
from ..semanticgen_core.preview import features_to_rgb, latent_to_rgb
from ..semanticgen_core.schedule import check_schedule
from ..semanticgen_core.vae import denormalize_latents, normalize_latents, wan21_vae_config  # noqa: F401
from . import comfy_compat as cc

PREVIEW_SIZE = 256  # longest side of the step previews, pixels

# ----------------------------------------------------------------------------------------------------------------
# Our socket types
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SemanticGenModel:
    """SEMANTICGEN_MODEL: a pipeline without text encoder / VAE, plus the latent statistics of its VAE space."""

    pipeline: SemanticGenPipeline
    latents_mean: torch.Tensor  # [C] per-channel mean of raw VAE latents (LATENT <-> generator space)
    latents_std: torch.Tensor  # [C]
    name: str  # what the loader loaded, for messages

    @property
    def semantic(self) -> SemanticSpec:
        return self.pipeline.config.semantic

    @property
    def video(self) -> VideoSpec:
        return self.pipeline.config.video

    @property
    def wan21_latents(self) -> bool:
        """Whether the model generates in Wan 2.1's latent space (its VAE statistics), where Wan 2.1's
        latent-to-RGB factors give the step previews."""
        cfg = wan21_vae_config()
        return self.latents_mean.shape == (16,) and all(
            torch.allclose(a.float(), torch.tensor(b), atol=1e-3)
            for a, b in ((self.latents_mean, cfg["latents_mean"]), (self.latents_std, cfg["latents_std"]))
        )


def make_plan(z_sem: torch.Tensor, spec: SemanticSpec, seconds: float, height: int, width: int, source: str,
              video: VideoSpec | None = None, schedule=None) -> dict:  # fmt: skip
    """SEMANTIC_PLAN: the compressed plan [B, k, T_s, H_s, W_s] (CPU float32) with what it was made for (and, for
    plan files and edits, the video spec and the prompt schedule)."""
    return {
        "plan": z_sem.detach().float().cpu(),
        "spec": spec,
        "seconds": float(seconds),
        "height": int(height),
        "width": int(width),
        "source": source,
        "video": video,
        "schedule": schedule,
    }


def plan_to_core(plan: dict) -> SemanticPlan:
    """SEMANTIC_PLAN -> semanticgen_core.plan_io.SemanticPlan."""
    if plan.get("video") is None:
        raise ValueError(f"this {plan['source']} plan does not record its video spec; make it again with this version")
    return SemanticPlan(plan["plan"], plan["spec"], plan["video"], plan["seconds"], plan["height"], plan["width"],
                        plan["source"], plan.get("schedule"))  # fmt: skip


def plan_from_core(p: SemanticPlan) -> dict:
    """semanticgen_core.plan_io.SemanticPlan -> SEMANTIC_PLAN."""
    return make_plan(p.z, p.semantic, p.seconds, p.height, p.width, p.source, p.video, p.schedule)


def check_plan(plan: dict, model: SemanticGenModel) -> None:
    """Raise a ValueError naming both sides unless the plan fits the model (encoder kind, dim, grid for its length)."""
    spec, z = plan["spec"], plan["plan"]
    check_plan_compatible(
        z.shape[1],
        spec.kind,
        model.semantic.compressed_dim,
        model.semantic.kind,
        f"{plan['source']} plan vs model {model.name}: ",
    )
    want = model.pipeline.plan_grid(plan["seconds"], plan["height"], plan["width"])
    if tuple(z.shape[2:]) != tuple(want):
        raise ValueError(
            f"{plan['source']} plan has a semantic grid (T_s, H_s, W_s) = {tuple(z.shape[2:])}, but model {model.name} "
            f"expects {tuple(want)} for {plan['seconds']:g} s at {plan['width']}x{plan['height']}; make the plan with "
            "this model's settings (same encoder, size and length)"
        )


# ----------------------------------------------------------------------------------------------------------------
# IMAGE, LATENT, CONDITIONING
# ----------------------------------------------------------------------------------------------------------------


def image_to_frames(image: torch.Tensor) -> np.ndarray:
    """IMAGE [T, H, W, C] float 0..1 -> uint8 frames [T, H, W, 3] (alpha dropped)."""
    if image.ndim != 4 or image.shape[-1] not in (3, 4):
        raise ValueError(f"expected an IMAGE batch [T, H, W, 3], got {tuple(image.shape)}")
    return (image[..., :3].float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def frames_to_image(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] -> IMAGE [T, H, W, 3] float32 0..1."""
    return torch.as_tensor(np.asarray(frames)).float().div(255)


def video_to_image(video: torch.Tensor) -> torch.Tensor:
    """Decoded video [B, 3, F, H, W] in [-1, 1] -> IMAGE [B*F, H, W, 3] in 0..1 (as VAEDecode flattens video)."""
    x = ((video.float().clamp(-1, 1) + 1) / 2).cpu()
    return rearrange(x, "b c f h w -> (b f) h w c").contiguous()


def wrap_latent(z_raw: torch.Tensor) -> dict:
    """LATENT from raw latents [B, C, T, H, W]."""
    return {"samples": z_raw.detach().float().cpu()}


def parse_conditioning(conditioning, text_dim: int, model_name: str) -> torch.Tensor:
    """CONDITIONING (ComfyUI's CLIPTextEncode or ours) -> text features ctx [B, S, D], zero past the attention mask."""
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise ValueError("expected a CONDITIONING (a list of [cond, {...}]), got an empty or unknown value")
    if len(conditioning) > 1:
        raise ValueError(
            f"CONDITIONING holds {len(conditioning)} entries (Conditioning Combine); SemanticGen takes one text: "
            "use Conditioning (Concat) instead"
        )
    ctx, extra = conditioning[0][0], conditioning[0][1] if len(conditioning[0]) > 1 else {}
    if ctx.ndim != 3 or ctx.shape[-1] != text_dim:
        raise ValueError(
            f"CONDITIONING has text features {tuple(ctx.shape)} (dim {ctx.shape[-1]}), but model {model_name} takes "
            f"text features of dim {text_dim}: the embedded model takes SemanticGen Text Encode (MiniLM, 384), Wan2.1 "
            "models take CLIPLoader type wan (umt5-xxl, 4096)"
        )
    mask = extra.get("attention_mask") if isinstance(extra, dict) else None
    if mask is not None and tuple(mask.shape) == tuple(ctx.shape[:2]):
        ctx = ctx * mask.to(ctx.device, ctx.dtype)[..., None]
    return ctx.float()


SCHEDULE_START = "semanticgen_start"  # CONDITIONING extra: start time (s) of a prompt-schedule entry


def schedule_conditioning(conditionings: list, starts: list[float]) -> list:
    """A prompt schedule as one CONDITIONING: one entry per prompt, its start time in the entry's extras."""
    check_schedule([(float(s), "") for s in starts], what="prompt schedule")
    out = []
    for c, start in zip(conditionings, starts):
        if not isinstance(c, (list, tuple)) or len(c) != 1:
            raise ValueError("each prompt of a schedule must be one CONDITIONING entry (one text encode)")
        extra = dict(c[0][1]) if len(c[0]) > 1 and isinstance(c[0][1], dict) else {}
        out.append([c[0][0], {**extra, SCHEDULE_START: float(start)}])
    return out


PART_WEIGHT = "semanticgen_part_weight"  # CONDITIONING extra: a composed prompt's part ("A AND B :w"), its weight


def composed_conditioning(main: list, parts: list[tuple[list, float]]) -> list:
    """A composed prompt (compose.py) as one CONDITIONING: the prompt's entry, then each part's with its weight."""
    return [*main, *([c[0][0], {**c[0][1], PART_WEIGHT: float(w)}] for c, w in parts)]


def parse_parts(conditioning, text_dim: int, model_name: str):
    """A composed CONDITIONING's parts -> (contexts [1, K, S, D], weights [1, K]) for generate_latents, or None."""
    parts = [e for e in conditioning[1:] if len(e) > 1 and isinstance(e[1], dict) and PART_WEIGHT in e[1]]
    if not parts:
        return None
    ctxs = [parse_conditioning([e], text_dim, model_name)[:1] for e in parts]  # [1, S_k, D]
    s = max(c.shape[1] for c in ctxs)
    ctx = torch.stack([torch.nn.functional.pad(c, (0, 0, 0, s - c.shape[1])) for c in ctxs], dim=1)  # [1, K, S, D]
    return ctx, torch.tensor([[float(e[1][PART_WEIGHT]) for e in parts]])


def parse_prompt_conditioning(conditioning, text_dim: int, model_name: str):
    """CONDITIONING -> (ctx [B, S, D], None), or for a prompt schedule (from the Prompt Schedule nodes)
    (ctx [1, G, S, D], starts [G] seconds). A composed prompt's parts are left out (parse_parts reads them)."""
    entries = conditioning if isinstance(conditioning, (list, tuple)) else []
    if entries and parse_parts(entries, text_dim, model_name) is not None:
        return parse_conditioning(entries[:1], text_dim, model_name), None
    starts = [e[1].get(SCHEDULE_START) if len(e) > 1 and isinstance(e[1], dict) else None for e in entries]
    if len(entries) < 2 or any(s is None for s in starts):
        return parse_conditioning(conditioning, text_dim, model_name), None
    ctxs = [parse_conditioning([e], text_dim, model_name)[:1] for e in entries]  # [1, S_g, D]
    s = max(c.shape[1] for c in ctxs)
    ctx = torch.stack([torch.nn.functional.pad(c, (0, 0, 0, s - c.shape[1])) for c in ctxs], dim=1)  # [1, G, S, D]
    return ctx, [float(t) for t in starts]


def make_conditioning(ctx: torch.Tensor, mask: torch.Tensor) -> list:
    """CONDITIONING [[ctx [B, S, D], {"attention_mask": mask [B, S]}]] (ComfyUI's layout)."""
    return [[ctx.detach().float().cpu(), {"attention_mask": mask.cpu()}]]


# ----------------------------------------------------------------------------------------------------------------
# Progress with previews
# ----------------------------------------------------------------------------------------------------------------


def preview_image(x: torch.Tensor, size: int = PREVIEW_SIZE, wan21: bool = False):
    """PIL preview of the first frame of x [B, C, T, H, W], scaled up (nearest) towards `size`: Wan 2.1 latents
    through ComfyUI's latent-to-RGB factors (wan21), anything else (plans, other VAE spaces such as the embedded
    model's, whose factors would need their own fit) as PCA colours. Neither decodes with a VAE."""
    from PIL import Image

    first = x[:1, :, :1]
    rgb = (latent_to_rgb(first) if wan21 else features_to_rgb(first))[0, 0]  # [H, W, 3]
    img = Image.fromarray((rgb * 255).round().to(torch.uint8).cpu().numpy())
    scale = max(1, size // max(img.size))
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


class StepProgress:
    """Sampler callback: honours Cancel between steps and updates the node's progress bar with a preview."""

    def __init__(self, total: int, wan21: bool = False):
        self.bar, self.total, self.done, self.wan21 = cc.progress_bar(total), total, 0, wan21

    def __call__(self, info: dict) -> None:
        cc.throw_if_interrupted()
        self.done += 1
        preview = preview_image(info["denoised"], wan21=self.wan21)
        self.bar.update_absolute(self.done, self.total, ("JPEG", preview, PREVIEW_SIZE))
