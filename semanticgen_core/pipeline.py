"""SemanticGenPipeline: text -> semantic plan (stage A) -> VAE latents (stage B) -> frames (paper Fig. 3c).

Components are passed in, so the same pipeline drives the embedded shapes-world model, tiny random test models and
real Wan2.1 / Qwen2.5-VL weights:
- `sem_generator`: SemanticGenDiT over compressed plans [B, k, T_s, H_s, W_s] (full attention: global planning)
- `lat_generator`: SemanticGenDiT over normalised VAE latents [B, C, T, H, W] with the plan in context
- `compressor`: SemanticCompressor (needed for plans from a reference video)
- `vae`: `decode(z) -> video [B, 3, F, H, W] in [-1, 1]` on normalised latents (and optionally `iter_decode`)
- `text_encoder`: `encode(prompts) -> (ctx [B, S, D], mask [B, S])`
- `semantic_encoder`: `encode(frames uint8 [T, H, W, 3]) -> [B, d, T_s, H_s, W_s]` (reference transfer only)

Precision: the networks run in their weights' dtype (`pipe.to(dtype=torch.bfloat16)` casts them all, keeping the
parts precision.py keeps in float32); noise, plans, latents and the Euler updates stay float32 whatever it is, so
a half-precision run starts from the same noise as a float32 one and accumulates no rounding in the sampler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from . import flow
from .checkpoint import check_plan_compatible
from .compressor import add_plan_noise
from .config import PipelineConfig, SamplerConfig
from .sampling import guided, sample_euler


def video_to_uint8(video: torch.Tensor) -> np.ndarray:
    """[B, 3, F, H, W] in [-1, 1] -> uint8 [B, F, H, W, 3]."""
    x = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 4, 1).cpu().numpy()


class SemanticGenPipeline:
    """Two-stage SemanticGen sampling with full or shifted-window attention in stage B."""

    def __init__(self, sem_generator, lat_generator, compressor, vae, text_encoder, semantic_encoder=None, config=None):
        self.sem_generator = sem_generator
        self.lat_generator = lat_generator
        self.compressor = compressor
        self.vae = vae
        self.text_encoder = text_encoder
        self.semantic_encoder = semantic_encoder
        self.config = config or PipelineConfig()
        k = self.config.semantic.compressed_dim
        if sem_generator is not None and sem_generator.config.in_channels != k:
            raise ValueError(
                f"semantic generator makes plans of dim {sem_generator.config.in_channels}, config says {k}"
            )
        if lat_generator.config.sem_channels != k:
            raise ValueError(
                f"latent generator takes plans of dim {lat_generator.config.sem_channels}, config says {k}"
            )

    @property
    def device(self) -> torch.device:
        return next(self.lat_generator.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the generators."""
        return self.lat_generator.dtype

    def to(self, device=None, dtype=None) -> SemanticGenPipeline:
        """Move every component to `device` and/or cast its weights to `dtype` (float32 kept where the model
        keeps it, precision.cast_module). Components without weights (test doubles) are left as they are."""
        from .precision import cast_module, resolve_dtype

        dtype = resolve_dtype(dtype) if dtype is not None else None
        parts = (self.sem_generator, self.lat_generator, self.compressor, self.vae, self.text_encoder,
                 self.semantic_encoder)  # fmt: skip
        for part in parts:
            if not isinstance(part, torch.nn.Module):
                continue
            if dtype is not None:
                cast_module(part, dtype, device)
            elif device is not None:
                part.to(device)
        return self

    def plan_grid(self, seconds: float, height: int, width: int) -> tuple[int, int, int]:
        """(T_s, H_s, W_s) of the plan for a clip. The semantic frames cover the video's exact duration (F / fps),
        the span over which training data sample both rates (train/prepare.py)."""
        video = self.config.video
        return self.config.semantic.grid(video.num_frames(seconds) / video.fps, height, width)

    def reference_clip(self, frames: np.ndarray, height: int, width: int, seconds: float = 0.0):
        """Reference frames at the semantic fps [F, H', W', 3] -> (the frames the plan needs, centre-cropped to
        height x width; the video's seconds). The video lasts as long as the reference (len / fps), capped by
        seconds > 0; the CLI's --reference and the EncodeReferenceSemantics node share this rule."""
        from .video_io import resize_center_crop

        if len(frames) == 0:
            raise ValueError("the reference video has no frames")
        spec = self.config.semantic
        length = len(frames) / spec.fps
        seconds = min(seconds, length) if seconds > 0 else length
        need = self.plan_grid(seconds, height, width)[0] * spec.temporal_patch
        return resize_center_crop(frames[:need], height, width), seconds

    # ------------------------------------------------------------------------------------------------------------
    # Steps
    # ------------------------------------------------------------------------------------------------------------

    def encode_text(self, prompts: list[str], negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """(ctx [B, S, D], uncond [1, S', D]) on the pipeline's device, float32 (the generators cast them)."""
        ctx, _ = self.text_encoder.encode(list(prompts))
        uncond, _ = self.text_encoder.encode([negative_prompt])
        return ctx.to(self.device, torch.float32), uncond.to(self.device, torch.float32)

    def generate_plan(
        self,
        ctx: torch.Tensor,
        uncond: torch.Tensor | None,
        grid: tuple[int, int, int],
        sampler: SamplerConfig | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
    ) -> torch.Tensor:
        """Stage A: sample a compressed plan z_sem [B, k, T_s, H_s, W_s] with full attention and CFG."""
        s = sampler or self.config.sem_sampler
        model = self.sem_generator
        x = flow.randn((ctx.shape[0], model.config.in_channels, *grid), generator, self.device)  # float32
        fn = guided(model, ctx, uncond, s.cfg)
        cb = _tagged(callback, "plan")
        with torch.no_grad():
            return sample_euler(fn, x, flow.schedule(s.steps, s.shift, self.device), callback=cb)

    def plan_from_video(self, frames) -> torch.Tensor:
        """Reference transfer: encoder features of frames (uint8 [T, H, W, 3] at the semantic fps) -> z_sem (mode)."""
        if self.semantic_encoder is None:
            raise ValueError("plan_from_video needs a semantic encoder; pass semantic_encoder= to the pipeline")
        feats = self.semantic_encoder.encode(frames).to(self.device)
        spec = self.config.semantic
        check_plan_compatible(
            feats.shape[1], self.semantic_encoder.kind, self.compressor.in_dim, spec.kind, "reference "
        )
        with torch.no_grad():
            return self.compressor(feats).mode().float()

    def generate_latents(
        self,
        z_sem: torch.Tensor,
        ctx: torch.Tensor,
        uncond: torch.Tensor | None,
        latent_shape: tuple[int, int, int, int],
        sampler: SamplerConfig | None = None,
        plan_noise: float | None = None,
        window: int | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
    ) -> torch.Tensor:
        """Stage B: sample normalised VAE latents [B, C, T, H, W] with the (noised) plan in context."""
        s = sampler or self.config.lat_sampler
        model = self.lat_generator
        if z_sem.shape[1] != model.config.sem_channels:
            check_plan_compatible(z_sem.shape[1], "", model.config.sem_channels, "", "stage B: ")
        noise = self.config.plan_noise if plan_noise is None else plan_noise
        z_sem = z_sem.to(self.device, torch.float32)
        z_sem = add_plan_noise(z_sem, noise, generator) if noise > 0 else z_sem
        x = flow.randn((ctx.shape[0], *latent_shape), generator, self.device)  # float32
        fn = guided(model, ctx, uncond, s.cfg)
        cb = _tagged(callback, "latent")
        with torch.no_grad():
            ts = flow.schedule(s.steps, s.shift, self.device)
            return sample_euler(
                fn, x, ts, extra_args={"sem": z_sem.expand(ctx.shape[0], -1, -1, -1, -1), "window": window}, callback=cb
            )

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Normalised latents [B, C, T, H, W] -> uint8 frames [B, F, H, W, 3]."""
        with torch.no_grad():
            return video_to_uint8(self.vae.decode(z))

    def iter_decode(self, z: torch.Tensor, chunk: int | None = None) -> Iterator[np.ndarray]:
        """Decode in temporal chunks, yielding uint8 frames [F_chunk, H, W, 3] of the first sample (bounded memory)."""
        chunk = chunk or self.config.decode_chunk
        with torch.no_grad():
            if hasattr(self.vae, "iter_decode"):
                for block in self.vae.iter_decode(z[:1], chunk):
                    yield video_to_uint8(block)[0]
            else:
                yield self.decode(z[:1])[0]

    # ------------------------------------------------------------------------------------------------------------
    # All steps
    # ------------------------------------------------------------------------------------------------------------

    def __call__(
        self,
        prompt: str | list[str],
        seconds: float = 2.0,
        height: int = 64,
        width: int = 64,
        negative_prompt: str = "",
        seed: int = 0,
        reference=None,
        window: int | None = None,
        plan_noise: float | None = None,
        callback: Callable[[dict], None] | None = None,
        return_latents: bool = False,
    ):
        """Generate videos. Returns uint8 frames [B, F, H, W, 3] (or normalised latents with return_latents)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        generator = torch.Generator("cpu").manual_seed(seed)
        cfg = self.config

        # 1. Encode text
        ctx, uncond = self.encode_text(prompts, negative_prompt)

        # 2. Semantic plan: generated (stage A) or taken from a reference video
        if reference is not None:
            z_sem = self.plan_from_video(reference).expand(len(prompts), -1, -1, -1, -1)
        else:
            z_sem = self.generate_plan(ctx, uncond, self.plan_grid(seconds, height, width), None, generator, callback)

        # 3.-4. Plan noise (RAE-style), then VAE latents conditioned on the plan (stage B)
        latent_shape = cfg.video.latent_shape(seconds, height, width)
        window = cfg.window if window is None else window
        z = self.generate_latents(z_sem, ctx, uncond, latent_shape, None, plan_noise, window, generator, callback)
        if return_latents:
            return z

        # 5. Decode
        return self.decode(z)


def _tagged(callback, stage: str):
    """Wrap a step callback so that its info dict also names the stage ('plan' or 'latent')."""
    if callback is None:
        return None
    return lambda info: callback({**info, "stage": stage})
