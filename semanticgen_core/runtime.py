"""Running the generators within a GPU budget: LoRA, block offloading, torch.compile and the attention backend.

One settings object (`RuntimeConfig`) and one function (`configure_pipeline`) that the CLI and the loader node share.
Order matters and is fixed here: LoRA first (merged into the weights, or adapters that then stream with their
block), then offloading (which decides where every tensor lives), then compilation (which must see the final
modules). The attention backend is recorded in the pipeline config and selected around each sampling call.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from .attention import check_backend
from .lora import apply_lora, load_lora
from .offload import attach_offload, compile_blocks


@dataclass
class RuntimeConfig:
    """How the generators run; only `loras` changes what they compute."""

    attention: str = "auto"  # auto | sdpa | flash | sage (see attention.attention_backend)
    blocks_on_device: int | None = None  # transformer blocks kept on the device, the rest streamed (None: all)
    prefetch: int = 1  # streamed blocks copied ahead while the current one computes
    compile: bool = False  # torch.compile each transformer block
    loras: list[tuple[str, float]] = field(default_factory=list)  # (file, strength), applied to the latent generator
    lora_mode: str = "runtime"  # merge (into the weights: no extra compute) | runtime (adapters: weights untouched)

    def check(self, device) -> None:
        """Raise a ValueError naming the setting before any weights are touched."""
        check_backend(self.attention, device)
        if self.blocks_on_device is not None and self.blocks_on_device < 0:
            raise ValueError(f"blocks_on_device must be >= 0 (or None for all), got {self.blocks_on_device}")
        if self.lora_mode not in ("merge", "runtime"):
            raise ValueError(f"lora_mode must be 'merge' or 'runtime', got {self.lora_mode!r}")


def parse_lora_arg(text: str) -> tuple[str, float]:
    """'path.safetensors' or 'path.safetensors:0.8' -> (path, strength)."""
    path, sep, strength = text.rpartition(":")
    if sep and path and not strength.startswith(("/", "\\")):
        try:
            return path, float(strength)
        except ValueError:
            pass
    return text, 1.0


def configure_model(model: nn.Module, rt: RuntimeConfig, device, loras: bool = True) -> dict:
    """LoRA (when `loras`), offloading and compilation of one SemanticGenDiT; returns what was done."""
    done = {"lora": [], "offloaded_blocks": 0, "compiled": 0}
    if loras:
        for path, strength in rt.loras:
            done["lora"].append(apply_lora(model, load_lora(path, model), strength, rt.lora_mode))
    off = attach_offload(model, device, rt.blocks_on_device, rt.prefetch)
    done["offloaded_blocks"] = len(off.streamed) if off is not None else 0
    if rt.compile:
        done["compiled"] = compile_blocks(model)
    return done


def configure_pipeline(pipe, rt: RuntimeConfig, device) -> dict:
    """Apply `rt` to a SemanticGenPipeline's generators (LoRAs: the latent generator, the Wan-based video model)."""
    rt.check(device)
    pipe.config.attention = rt.attention
    done = {"lat_generator": configure_model(pipe.lat_generator, rt, device)}
    if pipe.sem_generator is not None:
        done["sem_generator"] = configure_model(pipe.sem_generator, rt, device, loras=False)
    if pipe.compressor is not None:
        pipe.compressor.to(device)
    return done


def parameter_bytes(model: nn.Module, device: str | torch.device) -> int:
    """Bytes of `model`'s parameters and buffers that live on `device`."""
    device = torch.device(device)
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values() if t.device.type == device.type)
