"""Fine-tuning: a stage started from an earlier export of itself (`--init`), and LoRA mode for the Wan base of a generator: the base frozen (optionally stored in bf16), LoRA adapters on every
block's attention and FFN layers, the layers Wan lacks (semantic embedding, re-shaped input / output projections)
fully trained. Exports: the usual inference file with the adapters merged (every loader reads it unchanged) and the
adapters alone as a LoRA in the original / ComfyUI layout (`semanticgen_core.lora.load_lora` reads it back).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from semanticgen_core.lora import add_trainable_lora, export_lora, split_lora_state

BASE_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def apply_lora_mode(dit: nn.Module, rank: int, alpha: float, base_dtype: str, trained: list[str]) -> dict:
    """Freeze `dit` except the parameters under the `trained` prefixes, attach rank-`rank` adapters (float32) to the
    blocks, and store the frozen Linear / Conv weights in `base_dtype` (norms and modulation stay float32, as Wan
    computes them). Returns parameter counts {'trainable', 'frozen'}."""
    for name, p in dit.named_parameters():
        p.requires_grad_(any(name == t or name.startswith(t + ".") for t in trained))
    add_trainable_lora(dit, rank, alpha or None)
    dtype = BASE_DTYPES[base_dtype]
    for module in dit.modules():
        if isinstance(module, (nn.Linear, nn.Conv3d)):
            for p in module.parameters(recurse=False):
                if not p.requires_grad:
                    p.data = p.data.to(dtype)
    counts = {"trainable": 0, "frozen": 0}
    for p in dit.parameters():
        counts["trainable" if p.requires_grad else "frozen"] += p.numel()
    return counts


def new_layers(dit: nn.Module) -> list[str]:
    """Parameter prefixes Wan's weights did not provide: the semantic embedding and re-initialised layers."""
    names = ["sem_embedding"] if getattr(dit, "sem_embedding", None) is not None else []
    return names + [k.rsplit(".", 1)[0] for k in getattr(dit, "reinitialised", [])]


def export_with_lora(state: dict, lora_path: Path, dtype: str, **meta) -> dict:
    """Merge the adapters of a full (EMA) state dict into its weights, write them alone as a LoRA at `lora_path`,
    and return the merged state dict for the usual export. A state without adapters is returned as it is."""
    merged, lora = split_lora_state(state)
    if lora:
        export_lora(lora_path, lora, {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype],
                    **meta)  # fmt: skip
    return merged


def init_from(model: nn.Module, source: nn.Module, what: str) -> None:
    """Copy the weights of `source` (a module of an earlier export, e.g. the shipped model's) into `model`, the one
    about to be trained; refuse, before any training, when their configs or tensor shapes differ."""
    mine, theirs = (_config(m) for m in (model, source))
    if mine != theirs:
        diff = {k: (v, theirs.get(k)) for k, v in mine.items() if theirs.get(k) != v}
        raise SystemExit(f"{what}: its config differs from the model being trained (this run's, export's): {diff}; "
                         "give --config / --k of the run that made it")  # fmt: skip
    a, b = model.state_dict(), source.state_dict()
    bad = sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or a[k].shape != b[k].shape)
    if bad:
        raise SystemExit(f"{what}: {len(bad)} tensors missing or of another shape than the model being trained's "
                         f"(e.g. {bad[:3]}); give an export made with the same --config / --k")  # fmt: skip
    model.load_state_dict({k: v.float() for k, v in b.items()})


def _config(module: nn.Module) -> dict:
    """A module's config (a DiTConfig or the compressor's dict) as a dict; {} for a module without one."""
    config = getattr(module, "config", None) or {}
    return config.to_dict() if hasattr(config, "to_dict") else dict(config)
