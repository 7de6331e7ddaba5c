"""Dataclass configs and named presets.

`DiTConfig` describes one diffusion transformer (the latent generator of stage B or the semantic generator of
stage A: the same class, other sizes). `SemanticSpec` records which semantic encoder a model was trained on and
the geometry of its feature grid, so that a plan can be shaped without loading the encoder.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# ----------------------------------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------------------------------


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 128 * 28 * 28, max_pixels: int = 768 * 28 * 28
) -> tuple[int, int]:
    """Qwen2-VL's resize rule: sides multiples of `factor`, area within [min_pixels, max_pixels], aspect kept."""
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}"
        )
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


# ----------------------------------------------------------------------------------------------------------------
# Network config
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class DiTConfig:
    """Wan2.1-style DiT, optionally with in-context semantic tokens."""

    in_channels: int = 16  # channels of the generated tensor (VAE z_dim, or the compressed semantic dim k)
    out_channels: int = 16  # predicted velocity channels (= in_channels)
    dim: int = 1536  # hidden size D = num_heads * head_dim
    ffn_dim: int = 8960  # feed-forward inner size
    freq_dim: int = 256  # sinusoidal timestep embedding size
    text_dim: int = 4096  # text-encoder feature size (umT5-xxl: 4096)
    num_heads: int = 12  # attention heads N
    num_layers: int = 30  # transformer blocks
    patch_size: tuple[int, int, int] = (1, 2, 2)  # (pt, ph, pw) Conv3d patchify
    sem_channels: int = 0  # channels of in-context semantic tokens (0: no semantic input path)
    eps: float = 1e-6  # LayerNorm / RMSNorm epsilon
    rope_theta: float = 10000.0  # RoPE base
    cross_attn_norm: bool = True  # affine LayerNorm before text cross-attention (Wan: True)

    def __post_init__(self):
        self.patch_size = tuple(int(p) for p in self.patch_size)
        if self.dim % self.num_heads:
            raise ValueError(f"DiTConfig: dim={self.dim} is not divisible by num_heads={self.num_heads}")
        if self.head_dim % 2 or self.head_dim < 6:
            raise ValueError(f"DiTConfig: head_dim={self.head_dim} must be even and >= 6 for 3-D RoPE")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    def to_dict(self) -> dict:
        d = asdict(self)
        d["patch_size"] = list(self.patch_size)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DiTConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"DiTConfig: unknown fields {unknown}; known fields are {sorted(known)}")
        return cls(**d)


@dataclass
class SemanticSpec:
    """Which semantic encoder a plan comes from, and how its feature grid relates to the video."""

    kind: str = "qwen2_5_vl"  # encoder registry name
    dim: int = 1280  # raw feature size d (Qwen2.5-VL-3B/7B/72B vision tower output: 2048/3584/8192 after merger)
    compressed_dim: int = 8  # k after the compressor MLP (== dim when the compressor is a pass-through)
    fps: float = 1.6  # frames per second fed to the encoder (paper: 1.6)
    temporal_patch: int = 2  # encoder frames per semantic frame
    spatial_patch: int = 28  # pixels per semantic token side (Qwen: 14 * 2x2 merge = 28; V-JEPA 2: 16)
    min_pixels: int = 0  # Qwen resize rule: frame area lower bound after resizing (0: no bound)
    max_pixels: int = 0  # Qwen resize rule: frame area upper bound after resizing (0: no bound)
    crop: int = 0  # fixed square crop side in pixels (V-JEPA 2: crop_size; 0: frames keep their aspect)

    def grid(self, seconds: float, height: int, width: int) -> tuple[int, int, int]:
        """Semantic grid (T_s, H_s, W_s) the encoder gives for a clip of `seconds` at `height` x `width` pixels."""
        frames = max(1, math.ceil(seconds * self.fps - 1e-6))
        t_s = math.ceil(frames / self.temporal_patch)
        if self.crop:
            return t_s, self.crop // self.spatial_patch, self.crop // self.spatial_patch
        lo, hi = self.min_pixels or 1, self.max_pixels or 1 << 62
        h, w = smart_resize(height, width, self.spatial_patch, lo, hi)
        return t_s, max(1, h // self.spatial_patch), max(1, w // self.spatial_patch)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SemanticSpec:
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})


@dataclass
class VideoSpec:
    """Frame rate and the VAE's compression factors: how seconds and pixels map to latent frames and tokens."""

    fps: float = 16.0  # video frames per second (Wan2.1: 16; paper: 24)
    temporal_factor: int = 4  # causal VAE: F = 4 (T - 1) + 1 frames
    spatial_factor: int = 8  # VAE downsampling of height and width
    z_dim: int = 16  # VAE latent channels
    # per-channel statistics that normalise the VAE's latents (z - mean) / std: the latent space a model was trained
    # in (None: unknown, e.g. files written before they were recorded)
    latents_mean: list[float] | None = None
    latents_std: list[float] | None = None

    def num_frames(self, seconds: float) -> int:
        """Nearest valid frame count (4k + 1) for `seconds`."""
        k = max(0, round((seconds * self.fps - 1) / self.temporal_factor))
        return k * self.temporal_factor + 1

    def latent_shape(self, seconds: float, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, T, H, W) of the VAE latent for a clip; height and width must be multiples of the VAE factor."""
        for name, v in (("height", height), ("width", width)):
            if v % self.spatial_factor:
                raise ValueError(f"{name}={v} must be a multiple of {self.spatial_factor} (the VAE's spatial factor)")
        t = (self.num_frames(seconds) - 1) // self.temporal_factor + 1
        return self.z_dim, t, height // self.spatial_factor, width // self.spatial_factor

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VideoSpec:
        return cls(**{k: v for k, v in d.items() if k in {f.name for f in fields(cls)}})


@dataclass
class SamplerConfig:
    """Euler sampling settings for one stage."""

    steps: int = 30  # Euler steps
    cfg: float = 5.0  # classifier-free guidance scale (1: no guidance, one forward per step)
    shift: float = 5.0  # Wan timestep shift (1: uniform schedule)


@dataclass
class PipelineConfig:
    """Settings of the two-stage pipeline that are not weights."""

    video: VideoSpec = field(default_factory=VideoSpec)
    semantic: SemanticSpec = field(default_factory=SemanticSpec)
    sem_sampler: SamplerConfig = field(default_factory=SamplerConfig)  # stage A
    lat_sampler: SamplerConfig = field(default_factory=SamplerConfig)  # stage B
    transfer_sampler: SamplerConfig | None = None  # stage B on a reference video's plan (None: lat_sampler)
    transfer_replan: float = 0.0  # > 0: stage A re-samples a reference's plan with the prompt from this flow time
    replan_sampler: SamplerConfig | None = None  # stage A when it re-samples a plan (None: sem_sampler)
    plan_noise: float = 0.1  # std of the Gaussian added to z_sem before stage B (RAE-style augmentation)
    window: int | None = None  # stage-B attention window in latent frames (None: full attention)
    decode_chunk: int = 4  # latent frames decoded at a time
    attention: str = "auto"  # attention kernel while sampling: auto | sdpa | flash | sage (attention.py picks it)


# ----------------------------------------------------------------------------------------------------------------
# Presets
# ----------------------------------------------------------------------------------------------------------------

DIT_CONFIGS: dict[str, DiTConfig] = {
    # tests: runs in milliseconds on a CPU
    "tiny": DiTConfig(dim=32, ffn_dim=64, freq_dim=32, text_dim=24, num_heads=2, num_layers=2, sem_channels=8),
    # tests: the semantic generator of the tiny pipeline (compressed dim 8, one token per semantic cell)
    "tiny-sem": DiTConfig(
        in_channels=8,
        out_channels=8,
        dim=32,
        ffn_dim=64,
        freq_dim=32,
        text_dim=24,
        num_heads=2,
        num_layers=2,
        patch_size=(1, 1, 1),
    ),
    # Wan2.1-T2V-1.3B sizes (loadable with SemanticGenDiT.from_wan_pretrained)
    "wan2.1-t2v-1.3b": DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, text_dim=4096),
    # Wan2.1-T2V-14B sizes
    "wan2.1-t2v-14b": DiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, text_dim=4096),
}


def get_dit_config(name_or_path: str, **overrides) -> DiTConfig:
    """A preset by name, or a DiTConfig JSON file; keyword overrides replace fields."""
    if name_or_path in DIT_CONFIGS:
        d = DIT_CONFIGS[name_or_path].to_dict()
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise ValueError(
                f"unknown DiT config {name_or_path!r}: not a preset ({sorted(DIT_CONFIGS)}) nor a JSON file"
            )
        d = json.loads(p.read_text())
    d.update(overrides)
    return DiTConfig.from_dict(d)
