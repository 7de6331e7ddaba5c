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

import math
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch

from . import checks, flow
from .attention import attention_backend
from .checkpoint import check_plan_compatible
from .compose import encode_parts, split_prompt
from .compressor import add_plan_noise
from .config import PipelineConfig, SamplerConfig
from .sampling import guided, sample_euler
from .schedule import PromptSchedule, check_schedule, latent_frame_times, plan_frame_times, segment_ids


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
        checks.seconds(seconds)
        checks.size(height, width)
        video = self.config.video
        return self.config.semantic.grid(video.num_frames(seconds) / video.fps, height, width)

    def reference_clip(
        self, frames: np.ndarray, height: int, width: int, seconds: float = 0.0, duration: float | None = None
    ):
        """Reference frames at the semantic fps [F, H', W', 3] -> (the frames the plan needs, centre-cropped to
        height x width; the video's seconds). The CLI's --reference and the EncodeReferenceSemantics node share it.

        The video gets the geometry of a training clip (train/prepare.py): F = 4k + 1 frames, as close to `seconds`
        (> 0) or else to the reference's `duration` as it can be without outlasting the reference, and the plan
        is made of the semantic frames sampled in F / fps seconds, as prepare.py reads them. duration: the
        reference's length in seconds (a file's, or its frame count / fps); None estimates len(frames) / sem fps,
        which can be up to one semantic period long.
        """
        from .video_io import resize_center_crop

        if len(frames) == 0:
            raise ValueError("the reference video has no frames")
        spec, video = self.config.semantic, self.config.video
        length = len(frames) / spec.fps if duration is None else checks.seconds(duration, "reference duration", 1e9)
        checks.number("seconds", seconds, 0.0, checks.MAX_SECONDS)
        target = min(seconds, length) if seconds > 0 else length
        n = video.num_frames(target)
        while n > 1 and n / video.fps > length + 1e-6:  # never longer than the reference
            n -= video.temporal_factor
        seconds = n / video.fps
        need = max(1, math.ceil(seconds * spec.fps - 1e-6))  # samples at k / fps < seconds, as prepare.py reads
        if len(frames) < need:
            raise ValueError(f"the reference has {len(frames)} frames at {spec.fps:g} fps; {seconds:g} s need {need}")
        return resize_center_crop(frames[:need], height, width), seconds

    # ------------------------------------------------------------------------------------------------------------
    # Steps
    # ------------------------------------------------------------------------------------------------------------

    def encode_text(self, prompts: list[str], negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        """(ctx [B, S, D], uncond [1, S', D]) on the pipeline's device, float32 (the generators cast them). Prompts
        longer than the text encoder's max_length are cut there, with a warning that says how much is ignored."""
        warn_long_prompts(self.text_encoder, [*prompts, negative_prompt])
        ctx, _ = self.text_encoder.encode(list(prompts))
        uncond, _ = self.text_encoder.encode([negative_prompt])
        return ctx.to(self.device, torch.float32), uncond.to(self.device, torch.float32)

    def encode_schedule(
        self, schedule: PromptSchedule, negative_prompt: str = ""
    ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
        """A prompt schedule [(start_seconds, prompt), ...] -> (ctx [1, G, S, D], uncond [1, S', D], starts [G])."""
        check_schedule(schedule)
        ctx, uncond = self.encode_text([p for _, p in schedule], negative_prompt)  # [G, S, D]
        return ctx[None], uncond, [float(s) for s, _ in schedule]

    def text_args(self, ctx: torch.Tensor, starts, times: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """(context, extra DiT args) for frames at `times` [T] (s): ctx [B, S, D] as is; ctx [B, G, S, D] with the
        G segment starts (s) -> the segment of every frame, `segments` [B, T]. One segment is a plain context."""
        if ctx.ndim == 3:
            if starts is not None and len(starts) > 1:
                raise ValueError(f"{len(starts)} segment starts given, but the text context {tuple(ctx.shape)} is one")
            return ctx, {}
        if ctx.shape[1] == 1:
            return ctx[:, 0], {}
        if starts is None or len(starts) != ctx.shape[1]:
            raise ValueError(f"a context of {ctx.shape[1]} prompt segments needs their {ctx.shape[1]} start times, "
                             f"got {None if starts is None else len(starts)}")  # fmt: skip
        seg = segment_ids(starts, times).to(self.device)
        return ctx, {"segments": seg.expand(ctx.shape[0], -1)}

    def generate_plan(
        self,
        ctx: torch.Tensor,
        uncond: torch.Tensor | None,
        grid: tuple[int, int, int],
        sampler: SamplerConfig | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
        starts: list[float] | None = None,
        init: torch.Tensor | None = None,
        replan: float = 1.0,
    ) -> torch.Tensor:
        """Stage A: sample a compressed plan z_sem [B, k, T_s, H_s, W_s] with full attention and CFG.

        ctx: [B, S, D], or [B, G, S, D] with `starts` (seconds) for a prompt schedule: every semantic frame reads
        the text of the segment holding its time, while attention stays global over the whole plan.
        init (a plan [B or 1, k, T_s, H_s, W_s]) with replan t in (0, 1): start from init noised to flow time t,
        x_t = (1 - t) init + t eps, and integrate the schedule's times below t (SDEdit on the plan): what the noise
        at t drowns (fine attributes such as colour) follows the prompt, what survives it (layout, motion) is kept.
        """
        s = sampler or self.config.sem_sampler
        model = self.sem_generator
        if model is None:
            raise ValueError(
                "stage A needs a semantic generator (stage-2 weights); this pipeline was built without one"
            )
        checks.sampler(s.steps, s.cfg, s.shift)
        batch = ctx.shape[0] * _forwards(uncond, s.cfg, None)
        checks.memory(
            model.config, (model.config.in_channels, *grid), batch, self.dtype, self.device, "stage A: plans of shape"
        )
        ctx, extra = self.text_args(ctx, starts, plan_frame_times(grid[0], self.config.semantic))
        x = flow.randn((ctx.shape[0], model.config.in_channels, *grid), generator, self.device)  # float32
        ts = flow.schedule(s.steps, s.shift, self.device)
        if init is not None and checks.number("replan", replan, 0.0, 1.0) < 1:
            ts = flow.schedule_from(replan, s.steps, s.shift, self.device)
            x = flow.interpolate(init.to(self.device, torch.float32).expand_as(x), x, ts[:1])
        fn = guided(model, ctx, uncond, s.cfg)
        cb = _tagged(callback, "plan")
        with torch.no_grad(), attention_backend(self.config.attention):
            return sample_euler(fn, x, ts, extra_args=extra, callback=cb)

    def inpaint_plan(
        self,
        ctx: torch.Tensor,
        uncond: torch.Tensor | None,
        z_known: torch.Tensor,
        keep: torch.Tensor,
        sampler: SamplerConfig | None = None,
        generator: torch.Generator | None = None,
        callback: Callable[[dict], None] | None = None,
        starts: list[float] | None = None,
    ) -> torch.Tensor:
        """Stage A in time: regenerate the frames of z_known [B, k, T_s, H_s, W_s] where keep [T_s] is False.

        Before every Euler step the kept frames are replaced by their noised originals, x_t = (1 - t) x0 + t eps
        with one fixed eps (RePaint for rectified flow), so the new frames are generated knowing them; at the end
        the kept frames are exactly the originals.
        """
        s = sampler or self.config.sem_sampler
        model = self.sem_generator
        z_known = z_known.to(self.device, torch.float32)  # samplers work in float32; the generators cast
        keep = torch.as_tensor(keep, dtype=torch.bool, device=self.device)
        if keep.shape != z_known.shape[2:3]:
            raise ValueError(f"keep must be [T_s={z_known.shape[2]}] booleans, got {tuple(keep.shape)}")
        ctx, extra = self.text_args(ctx, starts, plan_frame_times(z_known.shape[2], self.config.semantic))
        if ctx.shape[0] != z_known.shape[0]:
            raise ValueError(f"ctx has batch {ctx.shape[0]}, the plan {z_known.shape[0]}")
        x = flow.randn(z_known.shape, generator, self.device)
        eps = flow.randn(z_known.shape, generator, self.device)
        mask = keep[None, None, :, None, None]
        base = guided(model, ctx, uncond, s.cfg)

        def fn(x, t, **kw):  # pin the kept frames to their noised originals at this step's t
            return base(torch.where(mask, flow.interpolate(z_known, eps, t), x), t, **kw)

        cb = _tagged(callback, "plan")
        with torch.no_grad(), attention_backend(self.config.attention):
            out = sample_euler(fn, x, flow.schedule(s.steps, s.shift, self.device), extra_args=extra, callback=cb)
        return torch.where(mask, z_known, out)

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
        starts: list[float] | None = None,
        parts=None,
    ) -> torch.Tensor:
        """Stage B: sample normalised VAE latents [B, C, T, H, W] with the (noised) plan in context.

        ctx: [B, S, D], or [B, G, S, D] with `starts` (seconds): each latent frame (and each plan frame, by the
        latent frame at its centre) reads the text of its own segment; a window across a cut holds both.
        parts: a composed prompt's other parts (compose.encode_parts), guided with it here only: stage A plans from
        the first part (composing both stages drew held-out pairs' shapes less often; README, "Prompt composition").
        """
        s = sampler or self.config.lat_sampler
        model = self.lat_generator
        ctx, extra = self.text_args(ctx, starts, latent_frame_times(latent_shape[1], self.config.video))
        if z_sem.shape[1] != model.config.sem_channels:
            check_plan_compatible(z_sem.shape[1], "", model.config.sem_channels, "", "stage B: ")
        noise = self.config.plan_noise if plan_noise is None else plan_noise
        checks.sampler(s.steps, s.cfg, s.shift)
        checks.plan_noise(noise)
        batch = ctx.shape[0] * _forwards(uncond, s.cfg, parts)
        checks.memory(model.config, latent_shape, batch, self.dtype, self.device, "stage B: latents of shape")
        z_sem = z_sem.to(self.device, torch.float32)  # whatever the noise: a CPU plan meets a CUDA model here
        z_sem = add_plan_noise(z_sem, noise, generator) if noise > 0 else z_sem
        x = flow.randn((ctx.shape[0], *latent_shape), generator, self.device)  # float32
        fn = guided(model, ctx, uncond, s.cfg, parts)
        cb = _tagged(callback, "latent")
        with torch.no_grad(), attention_backend(self.config.attention):
            ts = flow.schedule(s.steps, s.shift, self.device)
            extra.update(sem=z_sem.expand(ctx.shape[0], -1, -1, -1, -1), window=window)
            return sample_euler(fn, x, ts, extra_args=extra, callback=cb)

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
        prompt: str | list[str] | PromptSchedule,
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
        replan: float | None = None,
    ):
        """Generate videos. Returns uint8 frames [B, F, H, W, 3] (or normalised latents with return_latents).

        prompt: one prompt, a batch of prompts, or a prompt schedule [(start_seconds, prompt), ...] (one video whose
        frames follow the prompt of their time span; see schedule.py). "A AND B [:w]" composes prompts (compose.py).
        replan (with a reference; None: config.transfer_replan): > 0 has stage A re-sample the reference's plan with
        the prompt, starting at that flow time (generate_plan's init): the prompt replaces what the noise drowns.
        """
        if replan is not None:
            checks.number("replan", replan, 0.0, 1.0)
        schedule = prompt if not isinstance(prompt, str) and all(isinstance(p, tuple) for p in prompt) else None
        prompts = [prompt] if isinstance(prompt, str) else [p for _, p in prompt] if schedule else list(prompt)
        split = [split_prompt(p) for p in prompts]
        if schedule is not None and any(parts for _, parts in split):
            raise ValueError("a prompt schedule's segments take plain prompts: compose (A AND B) one prompt per video")
        prompts = [p for p, _ in split]
        generator = checks.generator(seed)
        checks.seconds(seconds)
        checks.size(height, width)
        cfg = self.config

        # 1. Encode text (a schedule: one context per segment, [1, G, S, D])
        starts = None
        if schedule is not None:
            check_schedule(schedule, seconds, "prompt schedule")
            ctx, uncond, starts = self.encode_schedule(schedule, negative_prompt)
            prompts = prompts[:1]
        else:
            ctx, uncond = self.encode_text(prompts, negative_prompt)
        parts = encode_parts(lambda texts: self.encode_text(texts)[0], [p for _, p in split])

        # 2. Semantic plan: generated (stage A) or taken from a reference video
        if reference is not None:
            z_sem = self.plan_from_video(reference).expand(len(prompts), -1, -1, -1, -1)
            replan = cfg.transfer_replan if replan is None else replan
            if replan > 0:  # stage A re-samples the reference's plan with the prompt from flow time `replan`
                z_sem = self.generate_plan(ctx, uncond, tuple(z_sem.shape[2:]), cfg.replan_sampler, generator,
                                           callback, starts, init=z_sem, replan=replan)  # fmt: skip
        else:
            grid = self.plan_grid(seconds, height, width)
            z_sem = self.generate_plan(ctx, uncond, grid, None, generator, callback, starts)

        # 3.-4. Plan noise (RAE-style), then VAE latents conditioned on the plan (stage B)
        latent_shape = cfg.video.latent_shape(seconds, height, width)
        window = cfg.window if window is None else window
        sampler = cfg.transfer_sampler if reference is not None else None  # None: cfg.lat_sampler
        z = self.generate_latents(
            z_sem, ctx, uncond, latent_shape, sampler, plan_noise, window, generator, callback, starts, parts
        )
        if return_latents:
            return z

        # 5. Decode
        return self.decode(z)


def _forwards(uncond, cfg: float, parts) -> int:
    """Model forwards per sample and step: 1 unguided, 2 with CFG, K + 2 with K composed parts."""
    if parts is not None:
        return parts[0].shape[1] + 2
    return 1 if uncond is None or cfg == 1 else 2


def warn_long_prompts(text_encoder, prompts: list[str]) -> None:
    """Warn (UserWarning) for each prompt past the encoder's max_length tokens: the encoder sees only the start."""
    counts = text_encoder.token_counts(prompts) if hasattr(text_encoder, "token_counts") else []
    for prompt, n in zip(prompts, counts):
        if n > text_encoder.max_length:
            words = prompt.split()
            warnings.warn(
                f"the prompt {' '.join(words[:6])!r}... has {n} tokens; the text encoder reads the first "
                f"{text_encoder.max_length} and ignores the rest: shorten it to keep every word",
                UserWarning,
                stacklevel=3,
            )


def _tagged(callback, stage: str):
    """Wrap a step callback so that its info dict also names the stage ('plan' or 'latent')."""
    if callback is None:
        return None
    return lambda info: callback({**info, "stage": stage})
