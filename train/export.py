"""Training-time samples; the inference exports themselves live in `semanticgen_core.models` (re-exported here).

Stage 1 exports a bundle (lat_generator + compressor), stage 2 a semantic_generator; see semanticgen_core.models.
"""

from __future__ import annotations

from pathlib import Path

import torch

from semanticgen_core.checkpoint import atomic_save_file
from semanticgen_core.config import PipelineConfig, SamplerConfig
from semanticgen_core.models import Stage1Export, Stage2Export, load_stage1, load_stage2, save_stage1, save_stage2
from semanticgen_core.pipeline import SemanticGenPipeline

__all__ = ["Stage1Export", "Stage2Export", "load_stage1", "load_stage2", "save_stage1", "save_stage2", "write_sample"]


# ----------------------------------------------------------------------------------------------------------------
# Samples
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def write_sample(out_stem: Path, stage1: Stage1Export, item: dict, null_ctx: torch.Tensor,
                 stage2: Stage2Export | None = None, vae=None, steps: int = 20, cfg_scale: float = 5.0,
                 seed: int = 0) -> Path:  # fmt: skip
    """Sample for one cached item through SemanticGenPipeline; returns the file written.

    With stage 2, the plan is generated from the item's caption; without, it is the item's own plan (reference
    transfer: the latent generator should redraw the item's video). With a VAE an mp4 is written, else the latents
    and the plan as safetensors. item: latents [C, T, H, W], sem_feats [d, T_s, H_s, W_s], ctx [S, D].
    """
    sampler = SamplerConfig(steps=steps, cfg=cfg_scale, shift=3.0)
    config = PipelineConfig(video=stage1.video, semantic=stage1.semantic, sem_sampler=sampler, lat_sampler=sampler)
    sem_gen = stage2.sem_generator if stage2 is not None else None
    pipe = SemanticGenPipeline(sem_gen, stage1.lat_generator, stage1.compressor, vae, None, None, config)
    ctx, uncond = item["ctx"][None].to(pipe.device, pipe.dtype), null_ctx[None].to(pipe.device, pipe.dtype)
    generator = torch.Generator().manual_seed(seed)
    starts = item["ctx_starts"].tolist() if "ctx_starts" in item else None  # per-segment captions
    if stage2 is not None:
        grid = tuple(item["sem_feats"].shape[1:])
        z_sem = pipe.generate_plan(ctx, uncond, grid, generator=generator, starts=starts)
    else:
        z_sem = stage1.compressor(item["sem_feats"][None].to(pipe.device, pipe.dtype)).mode()
    z = pipe.generate_latents(z_sem, ctx, uncond, tuple(item["latents"].shape), generator=generator, starts=starts)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    if vae is None:
        path = out_stem.with_suffix(".safetensors")
        atomic_save_file({"latents": z.float(), "plan": z_sem.float()}, path, {"caption": str(item.get("caption", ""))})
        return path
    from semanticgen_core.video_io import write_video

    path = out_stem.with_suffix(".mp4")
    write_video(path, pipe.decode(z)[0], fps=stage1.video.fps)
    return path
