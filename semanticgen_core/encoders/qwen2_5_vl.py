"""Qwen2.5-VL vision tower as the semantic encoder (paper Sec. 3.2).

Frames are resized (bicubic, antialiased) to multiples of 28 by Qwen's `smart_resize` rule with the video
processor's pixel bounds, normalised with the CLIP mean/std, padded to an even count by repeating the last frame,
and cut into 2x14x14 patches in the 2x2 merge order of transformers' Qwen2-VL video processor. The tower returns
one merged token per 2 frames x 28 x 28 pixels, so features are [B, d, ceil(T/2), H'/28, W'/28] with d =
`out_hidden_size` (3B: 2048, 7B: 3584, 72B: 8192).

Every attention segment of the tower (full attention: cu_seqlens; window attention: windows) lies inside one
2-frame temporal slice, so slices are independent and long videos can be encoded a chunk of frames at a time with
identical results.

Weights: a full Qwen2.5-VL folder (only the `visual.` / `model.visual.` tensors are read, only from the shards
holding them; the language model is never built) or our own checkpoint (role semantic_encoder).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_checkpoint, read_header, save_checkpoint
from ..config import smart_resize
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

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
VIDEO_MIN_PIXELS = 128 * 28 * 28  # transformers' Qwen2VLVideoProcessor size["shortest_edge"]
VIDEO_MAX_PIXELS = 768 * 28 * 28  # transformers' Qwen2VLVideoProcessor size["longest_edge"]
VISUAL_PREFIXES = ("model.visual.", "visual.")  # transformers >= 4.52 saves model.visual.; the Hub release visual.
ENCODER_FILE = "semantic_encoder.safetensors"  # file name used by `save` when given a folder


def _hf():
    """transformers' Qwen2.5-VL classes (imported lazily: importing this package stays cheap)."""
    from transformers import Qwen2_5_VLConfig
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
        Qwen2_5_VLVisionRotaryEmbedding,
    )

    return (
        Qwen2_5_VLConfig,
        Qwen2_5_VLVisionConfig,
        Qwen2_5_VisionTransformerPretrainedModel,
        Qwen2_5_VLVisionRotaryEmbedding,
    )


def _vision_config(config):
    """A Qwen2_5_VLVisionConfig from a config object or dict (fields unknown to this transformers are kept)."""
    vision_config_cls = _hf()[1]
    if isinstance(config, vision_config_cls):
        return config
    return vision_config_cls.from_dict(dict(config))


def _config_dict(config) -> dict:
    """The declared fields of a vision config as plain JSON values (what `save` stores)."""
    d = {k: getattr(config, k) for k in type(config).__annotations__ if hasattr(config, k)}
    return json.loads(json.dumps(d, default=list))


def _is_ours(path: Path) -> bool:
    """True if `path` is one of our self-describing checkpoints."""
    try:
        read_header(path)
    except CheckpointError:
        return False
    return True


def _visual_renames(weight_map: dict[str, Path], source) -> dict[str, str]:
    """checkpoint key -> tower key for every vision tensor (prefix `model.visual.` or `visual.` stripped)."""
    for prefix in VISUAL_PREFIXES:
        renames = {k: k[len(prefix) :] for k in weight_map if k.startswith(prefix)}
        if renames:
            return renames
    raise CheckpointError(f"{source}: no vision-tower tensors (keys starting with {' or '.join(VISUAL_PREFIXES)})")


@register_encoder("qwen2_5_vl")
class Qwen25VLEncoder(SemanticEncoder):
    """Qwen2.5-VL vision tower (patch embed, windowed ViT, 2x2 merger): d = out_hidden_size, 28 px, 2 frames."""

    def __init__(
        self,
        model: torch.nn.Module,
        min_pixels: int = VIDEO_MIN_PIXELS,
        max_pixels: int = VIDEO_MAX_PIXELS,
        fps: float = PAPER_SEMANTIC_FPS,
    ):
        cfg = model.config
        patch, merge = int(cfg.patch_size), int(cfg.spatial_merge_size)
        super().__init__(model, int(cfg.out_hidden_size), int(cfg.temporal_patch_size), patch * merge, fps)
        self.patch_size, self.merge_size = patch, merge
        self.min_pixels, self.max_pixels = int(min_pixels), int(max_pixels)

    # -- construction --------------------------------------------------------------------------------------------

    @classmethod
    def from_config(cls, vision_config, dtype=torch.float32, device="cpu", **kw) -> Qwen25VLEncoder:
        """A randomly initialised tower from a vision config (dict or Qwen2_5_VLVisionConfig)."""
        _, _, tower_cls, rotary_cls = _hf()
        model = tower_cls(_vision_config(vision_config)).to(device=device, dtype=resolve_dtype(dtype))
        model.rotary_pos_emb = rotary_cls(model.config).to(device)  # inv_freq stays float32 under bf16 weights
        return cls(model, **kw)

    @classmethod
    def from_pretrained(cls, path, dtype=torch.float32, device="cpu", **kw) -> Qwen25VLEncoder:
        """Load a full Qwen2.5-VL folder / model.safetensors (vision weights only), or our own checkpoint."""
        path = Path(path)
        if path.is_file() and _is_ours(path):
            return cls._from_ours(path, dtype, device, **kw)
        folder = path if path.is_dir() else path.parent
        if path.is_dir() and not (folder / "config.json").is_file():
            ours = sorted(f for f in folder.glob("*.safetensors") if _is_ours(f))
            if len(ours) != 1:
                raise CheckpointError(
                    f"{path}: no config.json (not a Qwen2.5-VL folder) and {len(ours)} SemanticGen encoder "
                    "checkpoints in it (need exactly one)"
                )
            return cls._from_ours(ours[0], dtype, device, **kw)
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{path}: no such Qwen2.5-VL folder (config.json + safetensors) or checkpoint file")
        raw = json.loads((folder / "config.json").read_text())
        weight_map = hf_weight_map(folder) if path.is_dir() else file_weight_map(path)
        if "vision_config" in raw:  # a full Qwen2.5-VL checkpoint: vision tensors under a prefix
            config = _hf()[0].from_dict(raw)
            vision_config, config_dtype, renames = config.vision_config, config.dtype, _visual_renames(weight_map, path)
        else:  # a vision tower saved on its own with save_pretrained: unprefixed keys
            vision_config = _vision_config(raw)
            config_dtype, renames = vision_config.dtype, {k: k for k in weight_map}
        dtype = resolve_dtype(dtype, config_dtype)
        state = read_tensors(weight_map, renames, dtype, device)
        return cls._from_state(vision_config, state, dtype, device, path, **kw)

    @classmethod
    def _from_ours(cls, path: Path, dtype, device, **kw) -> Qwen25VLEncoder:
        """Load a checkpoint written by `save`."""
        state, header = load_checkpoint(path, role="semantic_encoder")
        if header.get("kind", cls.kind) != cls.kind:
            raise CheckpointError(f"{path}: holds a {header['kind']!r} encoder, not {cls.kind!r}")
        stored_dtype = next((v.dtype for v in state.values() if v.is_floating_point()), None)
        kw = {**header.get("preprocess", {}), **kw}
        vision_config = _vision_config(header["config"])
        return cls._from_state(vision_config, state, resolve_dtype(dtype, stored_dtype), device, path, **kw)

    @classmethod
    def _from_state(cls, vision_config, state, dtype, device, source, **kw) -> Qwen25VLEncoder:
        """Strictly load `state` into a tower built on the meta device, then rebuild its rotary buffers."""
        _, _, tower_cls, rotary_cls = _hf()
        model = load_strict(lambda: tower_cls(vision_config), state, dtype, device, source)
        model.rotary_pos_emb = rotary_cls(model.config).to(device)  # non-persistent inv_freq, kept in float32
        check_materialized(model, source)
        return cls(model, **kw)

    def save(self, path) -> Path:
        """Write our checkpoint (role semantic_encoder); a path without .safetensors is a folder. Returns the file."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / ENCODER_FILE
        save_checkpoint(
            path,
            self.model.state_dict(),
            role="semantic_encoder",
            config=_config_dict(self.model.config),
            kind=self.kind,
            semantic=self.spec.to_dict(),
            preprocess={"min_pixels": self.min_pixels, "max_pixels": self.max_pixels, "fps": self.fps},
        )
        return path

    # -- geometry and preprocessing ------------------------------------------------------------------------------

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """Frame size (H', W') after `smart_resize`."""
        return smart_resize(height, width, self.spatial_patch, self.min_pixels, self.max_pixels)

    def grid(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        """(ceil(T / 2), H' / 28, W' / 28)."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        h, w = self.resized(height, width)
        return -(-num_frames // self.temporal_patch), h // self.spatial_patch, w // self.spatial_patch

    def preprocess(self, video, is_uint8: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames [T, H, W, 3] / [B, T, H, W, 3] -> (pixel_values [B*gt*gh*gw, 3*2*14*14] float32, grid_thw [B, 3]).

        Same layout as transformers' Qwen2VLVideoProcessor: rows ordered (b, t, h/2, w/2, 2, 2), columns (C, 2, 14,
        14); grid_thw rows [gt, gh, gw] in 14-pixel patches.
        """
        if is_uint8 is None:
            video, is_uint8 = as_video(video)
        b, t, height, width, _ = video.shape
        h, w = self.resized(height, width)
        x = to_pixels(video.reshape(b * t, height, width, 3), is_uint8, self.device, (h, w), "bicubic")
        x = normalize(x, CLIP_MEAN, CLIP_STD).reshape(b, t, 3, h, w)
        x = pad_frames(x, self.temporal_patch, dim=1)
        tp, p, m = self.temporal_patch, self.patch_size, self.merge_size
        gt, gh, gw = x.shape[1] // tp, h // p, w // p
        x = x.reshape(b, gt, tp, 3, gh // m, m, p, gw // m, m, p)
        x = x.permute(0, 1, 4, 7, 5, 8, 3, 2, 6, 9)
        pixel_values = x.reshape(b * gt * gh * gw, 3 * tp * p * p)
        grid_thw = torch.tensor([[gt, gh, gw]] * b, dtype=torch.long, device=pixel_values.device)
        return pixel_values, grid_thw

    # -- encoding -------------------------------------------------------------------------------------------------

    def tower(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor) -> torch.Tensor:
        """Merged tokens [sum(gt*gh*gw) / 4, d] of the vision tower (handles tensor or ModelOutput returns)."""
        out = self.model(pixel_values.to(self.dtype), grid_thw=grid_thw)
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def _encode_frames(self, video: torch.Tensor, is_uint8: bool) -> torch.Tensor:
        """[B, t, H, W, 3] -> [B, d, ceil(t/2), H'/28, W'/28]: merged tokens are (b, t, h/2, w/2) raster order."""
        pixel_values, grid_thw = self.preprocess(video, is_uint8)
        tokens = self.tower(pixel_values, grid_thw)
        b, (gt, gh, gw) = video.shape[0], grid_thw[0].tolist()
        tokens = tokens.reshape(b, gt, gh // self.merge_size, gw // self.merge_size, self.dim)
        return tokens.permute(0, 4, 1, 2, 3)
