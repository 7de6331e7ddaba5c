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

from .checkpoint import CheckpointError, check_plan_compatible, load_checkpoint, save_checkpoint, split_prefix
from .compressor import SemanticCompressor
from .config import DiTConfig, PipelineConfig, SamplerConfig, SemanticSpec, VideoSpec
from .dit import SemanticGenDiT
from .pipeline import SemanticGenPipeline


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


def _load_strict(module: torch.nn.Module, tensors: dict, what: str) -> None:
    """load_state_dict(strict=True), with a CheckpointError naming the part and the keys."""
    missing, unexpected = module.state_dict().keys() - tensors.keys(), tensors.keys() - module.state_dict().keys()
    if missing or unexpected:
        raise CheckpointError(f"{what}: missing keys {sorted(missing)[:5]}, unexpected keys {sorted(unexpected)[:5]}")
    module.load_state_dict({k: v.float() for k, v in tensors.items()})


def load_stage1(path, device: str | torch.device = "cpu") -> Stage1Export:
    """(lat_generator, compressor, semantic spec, video spec) of a stage-1 bundle, checked to fit together."""
    tensors, header = load_checkpoint(path, "bundle", device)
    if header["role"] != "bundle" or "lat_generator" not in header or "compressor" not in header:
        raise CheckpointError(f"{path}: not a stage-1 bundle (role {header['role']}, no lat_generator/compressor)")
    semantic = SemanticSpec.from_dict(header["semantic"])
    lat = SemanticGenDiT(DiTConfig.from_dict(header["lat_generator"]))
    comp = SemanticCompressor(**header["compressor"])
    k_lat, k_comp = lat.config.sem_channels, comp.out_dim
    if k_lat != k_comp or k_comp != semantic.compressed_dim:
        raise CheckpointError(
            f"{path}: latent generator takes plans of dim {k_lat}, but the compressor makes plans of dim {k_comp} "
            f"(semantic spec says {semantic.compressed_dim})"
        )
    check_plan_compatible(semantic.dim, semantic.kind, comp.in_dim, semantic.kind, f"{path}: compressor: ")
    _load_strict(lat, split_prefix(tensors, "lat_generator"), f"{path}: lat_generator")
    _load_strict(comp, split_prefix(tensors, "compressor"), f"{path}: compressor")
    video = VideoSpec.from_dict(header.get("video", {}))
    return Stage1Export(lat.eval().to(device), comp.eval().to(device), semantic, video, Path(path))


def load_stage2(path, stage1: Stage1Export | str | Path | None = None, device="cpu") -> Stage2Export:
    """The semantic generator of a stage-2 export; with `stage1`, checks that it makes the plans stage 1 takes."""
    tensors, header = load_checkpoint(path, "semantic_generator", device)
    if header["role"] != "semantic_generator":
        raise CheckpointError(f"{path}: holds a {header['role']}, but a stage-2 semantic_generator was expected")
    semantic = SemanticSpec.from_dict(header["semantic"])
    gen = SemanticGenDiT(DiTConfig.from_dict(header["config"]))
    check_plan_compatible(gen.config.in_channels, semantic.kind, semantic.compressed_dim, semantic.kind, f"{path}: ")
    _load_strict(gen, tensors, f"{path}: semantic_generator")
    if stage1 is not None:
        s1 = stage1 if isinstance(stage1, Stage1Export) else load_stage1(stage1, device)
        check_plan_compatible(
            gen.config.in_channels, semantic.kind, s1.compressor.out_dim, s1.semantic.kind,
            f"stage 2 ({path}) vs stage 1 ({s1.path}): ",
        )  # fmt: skip
    return Stage2Export(gen.eval().to(device), semantic, Path(path))


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
) -> SemanticGenPipeline:
    """A pipeline from stage exports plus loaded VAE / text / semantic encoder (checked to fit together)."""
    s1 = load_stage1(stage1, device)
    s2 = load_stage2(stage2, s1, device) if stage2 is not None else None
    if semantic_encoder is not None and semantic_encoder.kind != s1.semantic.kind:
        raise ValueError(
            f"semantic encoder is {semantic_encoder.kind}, but {stage1} was trained on {s1.semantic.kind} plans"
        )
    sampler = sampler or SamplerConfig()
    config = PipelineConfig(
        video=s1.video, semantic=s1.semantic, sem_sampler=sampler, lat_sampler=sampler, plan_noise=plan_noise
    )
    sem_gen = s2.sem_generator.to(dtype) if s2 is not None else None
    return SemanticGenPipeline(sem_gen, s1.lat_generator.to(dtype), s1.compressor.to(dtype), vae, text_encoder,
                               semantic_encoder, config)  # fmt: skip
