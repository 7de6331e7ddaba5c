"""Trained SemanticGen models on disk: the stage-1 bundle and the stage-2 semantic generator.

Stage 1 writes a bundle: tensors `lat_generator.*` and `compressor.*`; metadata `lat_generator` (DiTConfig),
`compressor` (SemanticCompressor config), `semantic` (SemanticSpec of the encoder it was trained on), `video`
(VideoSpec of the training data) and `train` (stage, step). Stage 2 writes a `semantic_generator`: its DiTConfig as
`config` and the same `semantic` spec. The loaders rebuild the modules and check that the parts fit, naming both
sides. Training (`train/`), the CLI and the ComfyUI nodes all load through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from .checkpoint import (
    CheckpointError,
    check_plan_compatible,
    load_into,
    read_header,
    save_checkpoint,
    split_prefix,
    tensor_index,
)
from .compressor import SemanticCompressor
from .config import DiTConfig, PipelineConfig, SamplerConfig, SemanticSpec, VideoSpec
from .dit import SemanticGenDiT
from .pipeline import SemanticGenPipeline
from .precision import resolve_dtype


class Stage1Export(NamedTuple):
    """A loaded stage-1 bundle."""

    lat_generator: SemanticGenDiT
    compressor: SemanticCompressor
    semantic: SemanticSpec
    video: VideoSpec
    path: Path


class Stage2Export(NamedTuple):
    """A loaded stage-2 semantic generator."""

    sem_generator: SemanticGenDiT
    semantic: SemanticSpec
    path: Path


# ----------------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------------


def save_stage1(path, state: dict, lat_config: DiTConfig, compressor_config: dict, semantic: SemanticSpec,
                video: VideoSpec, dtype: str | None = None, **meta) -> None:  # fmt: skip
    """Bundle of `lat_generator.*` and `compressor.*` tensors from a full (EMA) state dict of the stage-1 model."""
    tensors = {k: v for k, v in state.items() if k.startswith(("lat_generator.", "compressor."))}
    save_checkpoint(
        path, tensors, "bundle", None, dtype,
        lat_generator=lat_config.to_dict(), compressor=compressor_config, semantic=semantic.to_dict(),
        video=video.to_dict(), **meta,
    )  # fmt: skip


def save_stage2(path, state: dict, sem_config: DiTConfig, semantic: SemanticSpec, dtype: str | None = None, **meta):
    """semantic_generator checkpoint from a full (EMA) state dict of the stage-2 model (`sem_generator.*`)."""
    tensors = split_prefix(state, "sem_generator")
    save_checkpoint(
        path, tensors, "semantic_generator", sem_config.to_dict(), dtype, semantic=semantic.to_dict(), **meta
    )


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def _header(path, role: str) -> dict:
    header = read_header(path)
    if header["role"] != role:
        raise CheckpointError(f"{path}: holds a {header['role']}, but a {role} was expected")
    return header


def load_stage1(path, device: str | torch.device = "cpu", dtype=torch.float32) -> Stage1Export:
    """(lat_generator, compressor, semantic spec, video spec) of a stage-1 bundle, checked to fit together.

    Both parts are built on the meta device and take the file's tensors, cast to `dtype` ('auto': the file's).
    """
    header = _header(path, "bundle")
    if "lat_generator" not in header or "compressor" not in header:
        raise CheckpointError(f"{path}: not a stage-1 bundle (no lat_generator/compressor in its metadata)")
    semantic = SemanticSpec.from_dict(header["semantic"])
    with torch.device("meta"):
        lat = SemanticGenDiT(DiTConfig.from_dict(header["lat_generator"]))
        comp = SemanticCompressor(**header["compressor"])
    k_lat, k_comp = lat.config.sem_channels, comp.out_dim
    if k_lat != k_comp or k_comp != semantic.compressed_dim:
        raise CheckpointError(
            f"{path}: latent generator takes plans of dim {k_lat}, but the compressor makes plans of dim {k_comp} "
            f"(semantic spec says {semantic.compressed_dim})"
        )
    check_plan_compatible(semantic.dim, semantic.kind, comp.in_dim, semantic.kind, f"{path}: compressor: ")
    index, dtype = tensor_index([Path(path)]), _dtype(path, dtype)
    load_into(lat, split_prefix(index, "lat_generator"), dtype, device, f"{path}: lat_generator")
    load_into(comp, split_prefix(index, "compressor"), dtype, device, f"{path}: compressor")
    video = VideoSpec.from_dict(header.get("video", {}))
    return Stage1Export(lat.eval(), comp.eval(), semantic, video, Path(path))


def load_stage2(path, stage1: Stage1Export | str | Path | None = None, device="cpu", dtype=torch.float32):
    """The semantic generator of a stage-2 export (built on the meta device, weights cast to `dtype`); with
    `stage1`, checks that it makes the plans stage 1 takes."""
    header = _header(path, "semantic_generator")
    semantic = SemanticSpec.from_dict(header["semantic"])
    with torch.device("meta"):
        gen = SemanticGenDiT(DiTConfig.from_dict(header["config"]))
    check_plan_compatible(gen.config.in_channels, semantic.kind, semantic.compressed_dim, semantic.kind, f"{path}: ")
    load_into(gen, tensor_index([Path(path)]), _dtype(path, dtype), device, f"{path}: semantic_generator")
    if stage1 is not None:
        s1 = stage1 if isinstance(stage1, Stage1Export) else load_stage1(stage1, device, dtype)
        check_plan_compatible(
            gen.config.in_channels, semantic.kind, s1.compressor.out_dim, s1.semantic.kind,
            f"stage 2 ({path}) vs stage 1 ({s1.path}): ",
        )  # fmt: skip
    return Stage2Export(gen.eval(), semantic, Path(path))


def _dtype(path, dtype) -> torch.dtype:
    """`dtype` resolved; 'auto' is the dtype of the file's largest tensor."""
    stored = max(tensor_index([Path(path)]).values(), key=lambda v: v[2].numel())[2].dtype
    return resolve_dtype(dtype, stored)


def build_pipeline(
    stage1: str | Path,
    stage2: str | Path | None,
    vae,
    text_encoder,
    semantic_encoder=None,
    sampler: SamplerConfig | None = None,
    plan_noise: float = 0.1,
    device="cpu",
    dtype=torch.float32,
    plan_sampler: SamplerConfig | None = None,
    transfer_sampler: SamplerConfig | None = None,
    transfer_replan: float = 0.0,
    replan_sampler: SamplerConfig | None = None,
) -> SemanticGenPipeline:
    """A pipeline from stage exports plus loaded VAE / text / semantic encoder (checked to fit together).

    sampler: default sampling of stage B, and of stage A unless `plan_sampler` gives stage A its own; stage B on a
    reference video's plan samples with `transfer_sampler` when given; `transfer_replan` > 0 has stage A re-sample a
    reference's plan with the prompt from that flow time (with `replan_sampler`, else stage A's)."""
    s1 = load_stage1(stage1, device, dtype)
    s2 = load_stage2(stage2, s1, device, dtype) if stage2 is not None else None
    if semantic_encoder is not None and semantic_encoder.kind != s1.semantic.kind:
        raise ValueError(
            f"semantic encoder is {semantic_encoder.kind}, but {stage1} was trained on {s1.semantic.kind} plans"
        )
    sampler = sampler or SamplerConfig()
    config = PipelineConfig(
        video=s1.video, semantic=s1.semantic, sem_sampler=plan_sampler or sampler, lat_sampler=sampler,
        transfer_sampler=transfer_sampler, plan_noise=plan_noise, transfer_replan=transfer_replan,
        replan_sampler=replan_sampler,
    )  # fmt: skip
    sem_gen = s2.sem_generator if s2 is not None else None
    return SemanticGenPipeline(sem_gen, s1.lat_generator, s1.compressor, vae, text_encoder, semantic_encoder, config)
