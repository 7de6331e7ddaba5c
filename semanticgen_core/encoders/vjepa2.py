"""V-JEPA 2 video encoder as an alternative semantic encoder (paper Sec. 3.2 lists it as compatible).

Preprocessing follows transformers' VJEPA2VideoProcessor: resize the shorter side to int(crop * 256 / 224)
(bilinear, antialiased), center-crop to `crop_size` (the model's RoPE grid is tied to it), rescale, normalise with
the ImageNet mean/std. An odd frame count is padded by repeating the last frame (tubelets are 2 frames). Output:
`last_hidden_state` [B, T/2 * (crop/16)^2, hidden] reshaped to [B, hidden, T/2, crop/16, crop/16].

Attention spans the whole clip, so `encode(..., chunk_frames=N)` encodes independent N-frame clips (as V-JEPA 2
itself is used on 64-frame clips); unlike Qwen2.5-VL this changes the features.

Weights: a Hugging Face folder (config.json + model.safetensors or shards + index) of `VJEPA2Model` (keys
`encoder.`) or `VJEPA2ForVideoClassification` (keys `vjepa2.encoder.`). Only the encoder is built; predictor,
pooler and classifier tensors are skipped; any other key, or a missing encoder key, raises.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import CheckpointError
from ..precision import resolve_dtype
from .base import (
    PAPER_SEMANTIC_FPS,
    SemanticEncoder,
    as_video,
    check_materialized,
    file_weight_map,
    hf_weight_map,
    load_strict,
    normalize,
    pad_frames,
    read_tensors,
    register_encoder,
    to_pixels,
)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODER_PREFIXES = ("encoder.", "vjepa2.encoder.")  # VJEPA2Model, VJEPA2ForVideoClassification
SKIPPED_PREFIXES = ("predictor.", "vjepa2.predictor.", "pooler.", "classifier.")


def _hf():
    """transformers' V-JEPA 2 classes (imported lazily)."""
    from transformers import VJEPA2Config
    from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Encoder

    return VJEPA2Config, VJEPA2Encoder


def resize_shorter(height: int, width: int, short: int) -> tuple[int, int]:
    """(h, w) with the shorter side `short` and the longer scaled by int() as transformers does."""
    if width <= height:
        return int(short * height / width), short
    return short, int(short * width / height)


def _encoder_renames(weight_map: dict, source) -> dict[str, str]:
    """checkpoint key -> VJEPA2Encoder key; raise on keys that belong to no known part."""
    renames, unknown = {}, []
    prefix = next((p for p in ENCODER_PREFIXES if any(k.startswith(p) for k in weight_map)), None)
    if prefix is None:
        raise CheckpointError(f"{source}: no V-JEPA 2 encoder tensors (keys starting with {ENCODER_PREFIXES})")
    for key in weight_map:
        if key.startswith(prefix):
            renames[key] = key[len(prefix) :]
        elif not key.startswith(SKIPPED_PREFIXES):
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: unexpected keys {sorted(unknown)[:20]}")
    return renames


@register_encoder("vjepa2")
class VJEPA2SemanticEncoder(SemanticEncoder):
    """V-JEPA 2 ViT encoder: d = hidden_size, tubelet 2 frames x 16 x 16 px, square crop of crop_size."""

    def __init__(self, model: torch.nn.Module, fps: float = PAPER_SEMANTIC_FPS):
        cfg = model.config
        super().__init__(model, int(cfg.hidden_size), int(cfg.tubelet_size), int(cfg.patch_size), fps)
        self.crop_size, self.patch_size = int(cfg.crop_size), int(cfg.patch_size)

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32, device="cpu", **kw) -> VJEPA2SemanticEncoder:
        """Load the encoder of a Hugging Face V-JEPA 2 folder (or its model.safetensors) strictly."""
        path = Path(path)
        folder = path if path.is_dir() else path.parent
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{path}: not a V-JEPA 2 folder (config.json + safetensors)")
        config = _hf()[0].from_dict(json.loads((folder / "config.json").read_text()))
        if getattr(config, "_attn_implementation", None) is None:
            config._attn_implementation = "sdpa"
        weight_map = hf_weight_map(folder) if path.is_dir() else file_weight_map(path)
        dtype = resolve_dtype(dtype, config.dtype)
        state = read_tensors(weight_map, _encoder_renames(weight_map, path), dtype, device)
        model = load_strict(lambda: _hf()[1](config), state, dtype, device, path)
        check_materialized(model, path)
        return cls(model, **kw)

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(ceil(T / 2), crop / 16, crop / 16): every clip is center-cropped to the model's square crop."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        side = self.crop_size // self.patch_size
        return -(-num_frames // self.temporal_patch), side, side

    def preprocess(self, video, is_uint8: bool | None = None) -> torch.Tensor:
        """Frames [T, H, W, 3] / [B, T, H, W, 3] -> pixel_values_videos [B, T', 3, crop, crop] (T' even)."""
        if is_uint8 is None:
            video, is_uint8 = as_video(video)
        b, t, height, width, _ = video.shape
        h, w = resize_shorter(height, width, int(self.crop_size * 256 / 224))
        x = to_pixels(video.reshape(b * t, height, width, 3), is_uint8, self.device, (h, w), "bilinear")
        top, left = int((h - self.crop_size) / 2.0), int((w - self.crop_size) / 2.0)
        x = x[:, :, top : top + self.crop_size, left : left + self.crop_size]
        x = normalize(x, IMAGENET_MEAN, IMAGENET_STD).reshape(b, t, 3, self.crop_size, self.crop_size)
        return pad_frames(x, self.temporal_patch, dim=1)

    def _encode_frames(self, video: torch.Tensor, is_uint8: bool) -> torch.Tensor:
        """[B, t, H, W, 3] -> [B, d, ceil(t/2), crop/16, crop/16]: tokens are (t, h, w) raster order."""
        pixel_values = self.preprocess(video, is_uint8)
        tokens = self.model(pixel_values.to(self.dtype)).last_hidden_state
        b, side = video.shape[0], self.crop_size // self.patch_size
        return tokens.reshape(b, pixel_values.shape[1] // self.temporal_patch, side, side, self.dim).permute(
            0, 4, 1, 2, 3
        )
