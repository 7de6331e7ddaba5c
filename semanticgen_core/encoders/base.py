"""The semantic-encoder interface, its registry, and helpers shared by the encoder wrappers.

A semantic encoder turns RGB frames (already sampled at the semantic fps, 1.6 in the paper) into a feature grid
[B, d, T_s, H_s, W_s] in raster order. Wrappers subclass `SemanticEncoder`, implement `grid`, `preprocess` and
`_encode_frames`, and register themselves with `@register_encoder(kind)`.

The weight helpers read Hugging Face folders (config.json + model.safetensors or shards + index) while opening only
the shards that hold the wanted keys, and load them strictly into a module built on the meta device, so no random
initialisation is paid for and no key can silently stay random.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch import nn

from ..checkpoint import CheckpointError, read_tensor
from ..config import SemanticSpec

PAPER_SEMANTIC_FPS = 1.6  # paper, Sec. 4: frames fed to the semantic encoder per second
VIDEO_SHAPE = "uint8 frames [T, H, W, 3] or [B, T, H, W, 3] (or floats in [0, 1]), numpy or torch"

ENCODERS: dict[str, type[SemanticEncoder]] = {}


def register_encoder(kind: str) -> Callable[[type], type]:
    """Class decorator: make an encoder loadable as `load_semantic_encoder(kind, path)`."""

    def deco(cls: type) -> type:
        if kind in ENCODERS and ENCODERS[kind] is not cls:
            raise ValueError(f"semantic encoder kind {kind!r} is already registered by {ENCODERS[kind].__name__}")
        cls.kind = kind
        ENCODERS[kind] = cls
        return cls

    return deco


# ----------------------------------------------------------------------------------------------------------------
# Input and pixel helpers
# ----------------------------------------------------------------------------------------------------------------


def as_video(video) -> tuple[torch.Tensor, bool]:
    """Validate frames and return ([B, T, H, W, 3] tensor, is_uint8); raise ValueError naming the expected shape."""
    if isinstance(video, np.ndarray):
        video = torch.from_numpy(np.ascontiguousarray(video))
    if not isinstance(video, torch.Tensor):
        raise ValueError(f"expected {VIDEO_SHAPE}; got {type(video).__name__}")
    if video.ndim == 4:
        video = video.unsqueeze(0)
    if video.ndim != 5 or video.shape[-1] != 3 or min(video.shape[:4]) < 1:
        raise ValueError(f"expected {VIDEO_SHAPE}; got shape {tuple(video.shape)}")
    if video.dtype == torch.uint8:
        return video, True
    if not video.is_floating_point():
        raise ValueError(f"expected {VIDEO_SHAPE}; got dtype {video.dtype}")
    lo, hi = float(video.min()), float(video.max())
    if lo < 0.0 or hi > 1.0 or math.isnan(lo + hi):
        raise ValueError(f"expected {VIDEO_SHAPE}; got float frames with values in [{lo:.3g}, {hi:.3g}], not [0, 1]")
    return video, False


def to_pixels(frames: torch.Tensor, is_uint8: bool, device, size: tuple[int, int], mode: str) -> torch.Tensor:
    """[N, H, W, 3] frames -> [N, 3, h, w] float32 on `device` in [0, 255], antialiased resize to `size`.

    uint8 frames are rounded back to integers after resizing, as torchvision does for uint8 videos (the path
    Hugging Face video processors take); float frames stay unrounded.
    """
    x = frames.to(device).permute(0, 3, 1, 2).float()
    if not is_uint8:
        x = x * 255.0
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode=mode, antialias=True, align_corners=False)
        if is_uint8:
            x = x.clamp_(0, 255).round_()
    return x


def normalize(x: torch.Tensor, mean: Iterable[float], std: Iterable[float]) -> torch.Tensor:
    """[N, 3, H, W] pixels in [0, 255] -> (x / 255 - mean) / std."""
    mean_t = torch.tensor(list(mean), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std_t = torch.tensor(list(std), dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x / 255.0 - mean_t) / std_t


def pad_frames(x: torch.Tensor, multiple: int, dim: int = 1) -> torch.Tensor:
    """Repeat the last frame along `dim` until its length is a multiple of `multiple`."""
    pad = -x.shape[dim] % multiple
    if pad == 0:
        return x
    last = x.narrow(dim, x.shape[dim] - 1, 1)
    return torch.cat([x, *([last] * pad)], dim=dim)


# ----------------------------------------------------------------------------------------------------------------
# Weight helpers
# ----------------------------------------------------------------------------------------------------------------


def hf_weight_map(folder: Path) -> dict[str, Path]:
    """key -> safetensors file of a Hugging Face folder: the index's weight_map, or the keys of model.safetensors."""
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text())["weight_map"]
        return {k: folder / f for k, f in weight_map.items()}
    single = folder / "model.safetensors"
    if not single.is_file():
        raise CheckpointError(f"{folder}: neither model.safetensors.index.json nor model.safetensors found")
    return file_weight_map(single)


def file_weight_map(path: Path) -> dict[str, Path]:
    """key -> file for one safetensors file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict.fromkeys(f.keys(), path)
    except Exception as err:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err


def read_tensors(weight_map: dict[str, Path], renames: dict[str, str], dtype=None, device=None) -> dict:
    """Read only the keys in `renames` (checkpoint key -> module key), one tensor at a time (checkpoint.read_tensor),
    each cast to `dtype` (floating tensors) and moved to `device` as it is read: no second copy of the weights."""
    out = {}
    for key in sorted(renames, key=lambda k: str(weight_map[k])):
        file = weight_map[key]
        if not file.is_file():
            raise CheckpointError(f"{file}: shard listed in the index is missing")
        t = read_tensor(file, key)
        out[renames[key]] = t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else None)
    return out


def load_strict(
    build: Callable[[], nn.Module], state: dict[str, torch.Tensor], dtype: torch.dtype, device, source
) -> nn.Module:
    """Build a module on the meta device and fill it from `state`; any missing or unexpected key raises.

    Non-persistent buffers stay on meta: the caller rebuilds them (see each wrapper's `_rebuild_buffers`).
    """
    with torch.device("meta"):
        module = build()
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not match the config: missing keys {missing[:20]}"
            f"{' ...' if len(missing) > 20 else ''}, unexpected keys {unexpected[:20]}"
            f"{' ...' if len(unexpected) > 20 else ''}"
        )
    state = {k: v.to(device=device, dtype=dtype if v.is_floating_point() else v.dtype) for k, v in state.items()}
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as err:  # size mismatches
        raise CheckpointError(f"{source}: weights do not match the config: {err}") from err
    return module


def check_materialized(module: nn.Module, source) -> None:
    """Raise if a parameter or buffer is still on the meta device (was never loaded)."""
    left = [n for n, t in [*module.named_parameters(), *module.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{source}: tensors left uninitialised after loading: {left[:20]}")


# ----------------------------------------------------------------------------------------------------------------
# Interface
# ----------------------------------------------------------------------------------------------------------------


class SemanticEncoder(nn.Module):
    """Frozen video encoder: uint8 frames at the semantic fps -> features [B, d, T_s, H_s, W_s] (raster order)."""

    kind: str = ""

    def __init__(self, model: nn.Module, dim: int, temporal_patch: int, spatial_patch: int, fps: float):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.dim, self.temporal_patch, self.spatial_patch, self.fps = dim, temporal_patch, spatial_patch, fps

    @property
    def spec(self) -> SemanticSpec:
        """The SemanticSpec of this encoder (compressed_dim = dim: no compressor yet)."""
        return SemanticSpec(
            self.kind,
            self.dim,
            self.dim,
            self.fps,
            self.temporal_patch,
            self.spatial_patch,
            min_pixels=getattr(self, "min_pixels", 0),
            max_pixels=getattr(self, "max_pixels", 0),
            crop=getattr(self, "crop_size", 0),
        )

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the weights."""
        return next(self.model.parameters()).dtype

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(T_s, H_s, W_s) of the features for a clip of `num_frames` frames of `height` x `width` pixels."""
        raise NotImplementedError

    def preprocess(self, video):
        """Frames -> the tower's input tensors (wrapper specific)."""
        raise NotImplementedError

    def _encode_frames(self, video: torch.Tensor, is_uint8: bool) -> torch.Tensor:
        """[B, t, H, W, 3] validated frames -> [B, d, t_s, H_s, W_s]."""
        raise NotImplementedError

    def chunk_step(self, chunk_frames: int | None, num_frames: int) -> int:
        """Frames per chunk: `chunk_frames` rounded down to a multiple of the temporal patch (None: all)."""
        if chunk_frames is None:
            return num_frames
        if chunk_frames < self.temporal_patch:
            raise ValueError(f"chunk_frames={chunk_frames} must be >= the temporal patch ({self.temporal_patch})")
        return chunk_frames - chunk_frames % self.temporal_patch

    @torch.no_grad()
    def encode(self, video, chunk_frames: int | None = None) -> torch.Tensor:
        """Features [B, d, T_s, H_s, W_s] (float32) of frames [T, H, W, 3] or [B, T, H, W, 3] at the semantic fps.

        chunk_frames: encode this many frames at a time (rounded down to a multiple of the temporal patch) and
        concatenate along time, bounding peak memory by the chunk.
        """
        video, is_uint8 = as_video(video)
        step = self.chunk_step(chunk_frames, video.shape[1])
        outs = [self._encode_frames(video[:, s : s + step], is_uint8) for s in range(0, video.shape[1], step)]
        return torch.cat(outs, dim=2).float()
