"""Semantic encoders (paper Sec. 3.2): frozen video tokenizers whose features SemanticGen generates.

    enc = load_semantic_encoder("qwen2_5_vl", "/models/Qwen2.5-VL-7B-Instruct", dtype=torch.bfloat16, device="cuda")
    feats = enc.encode(frames_at_1_6_fps)  # uint8 [T, H, W, 3] -> [1, d, T_s, H_s, W_s]

Registered kinds: `qwen2_5_vl` (the paper's choice) and `vjepa2`. transformers is imported only when a model is
built, so importing this package is cheap.
"""

from __future__ import annotations

import torch

from .base import ENCODERS, SemanticEncoder, register_encoder
from .qwen2_5_vl import Qwen25VLEncoder
from .vjepa2 import VJEPA2SemanticEncoder

__all__ = [
    "ENCODERS",
    "Qwen25VLEncoder",
    "SemanticEncoder",
    "VJEPA2SemanticEncoder",
    "load_semantic_encoder",
    "register_encoder",
]


def load_semantic_encoder(kind: str, path, dtype=torch.float32, device="cpu", **kw) -> SemanticEncoder:
    """Load a registered encoder from a checkpoint folder or file; `kw` goes to the wrapper (e.g. min_pixels)."""
    if kind not in ENCODERS:
        raise ValueError(f"unknown semantic encoder kind {kind!r}; known kinds: {sorted(ENCODERS)}")
    return ENCODERS[kind].from_pretrained(path, dtype=dtype, device=device, **kw)
