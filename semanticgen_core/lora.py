"""LoRA for the Wan2.1 base of the generators: read the layouts people ship, merge or apply at runtime, train, export.

A LoRA changes a weight W [out, in] by `strength * (alpha / rank) * up @ down` (down [r, in], up [out, r]; no alpha
means alpha = rank, i.e. scale 1, as diffusers and PEFT save it). Layouts read (one file may mix prefixes):
- diffusers / PEFT:  `transformer.blocks.0.attn1.to_q.lora_A.weight`, `lora_B.weight` (also `base_model.model.`)
- original / ComfyUI: `diffusion_model.blocks.0.self_attn.q.lora_down.weight`, `lora_up.weight`, `.alpha`
  (also `lora_A` / `lora_B` under Wan names, and full-weight differences `.diff` / bias differences `.diff_b`)
- kohya / musubi-tuner: `lora_unet_blocks_0_self_attn_q.lora_down.weight` (module path with underscores)

Runtime mode wraps each targeted `nn.Linear` in a `LoRALinear` (same `weight` / `bias` parameters and state-dict
names, plus `adapters.i.down/up/scale`): y = x W^T + b + sum_i scale_i (x down_i^T) up_i^T. The base weights stay
untouched (strength can change, `remove_lora` restores the plain layers). Merge mode adds the product to W once.
Differences and low-rank updates of parameters that are not `nn.Linear` weights (e.g. the patch Conv3d or norms)
are always merged. Training (`add_trainable_lora`) attaches fresh adapters; `export_lora` writes them in the
original / ComfyUI layout, which this module (and ComfyUI's LoRA loader) reads back.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

from .checkpoint import CheckpointError, atomic_save_file, diffusers_to_wan

# ----------------------------------------------------------------------------------------------------------------
# Reading files
# ----------------------------------------------------------------------------------------------------------------

_PREFIXES = ("base_model.model.", "model.diffusion_model.", "diffusion_model.", "transformer.", "model.", "lora_unet_")
_SUFFIXES = {  # key ending -> part of the LoRA
    ".lora_A.weight": "down",
    ".lora_A.default.weight": "down",
    ".lora_down.weight": "down",
    ".lora_B.weight": "up",
    ".lora_B.default.weight": "up",
    ".lora_up.weight": "up",
    ".alpha": "alpha",
    ".diff": "diff",
    ".diff_b": "diff_b",
}
UNSUPPORTED = (".lora_mid.weight", ".dora_scale", ".hada_w1_a", ".lokr_w1")  # LoCon/DoRA/LoHa/LoKr: refuse, not skip
# the Linear layers of a Wan block that trainable LoRA targets (attention projections and the FFN)
BLOCK_TARGETS = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o",
                 "cross_attn.q", "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")  # fmt: skip


@dataclass
class LoRAWeight:
    """The update of one parameter group (a module's weight and bias)."""

    down: torch.Tensor | None = None  # [r, in] (conv: [r, in, *kernel])
    up: torch.Tensor | None = None  # [out, r] (conv: [out, r, 1, 1, 1])
    alpha: float | None = None  # scale = alpha / r (None: 1)
    diff: torch.Tensor | None = None  # full weight difference, shaped like the weight
    diff_b: torch.Tensor | None = None  # bias difference [out]

    @property
    def scale(self) -> float:
        return 1.0 if self.alpha is None or self.down is None else self.alpha / self.down.shape[0]

    def delta(self, shape: torch.Size, strength: float = 1.0) -> torch.Tensor | None:
        """strength * (scale * up @ down + diff) in float32, shaped like the weight (None: nothing for the weight)."""
        out = None
        if self.down is not None:
            out = (self.up.flatten(1).float() @ self.down.flatten(1).float()) * (self.scale * strength)
            out = out.reshape(shape)
        if self.diff is not None:
            d = self.diff.float().reshape(shape) * strength
            out = d if out is None else out + d
        return out


def _split_key(key: str) -> tuple[str, str]:
    """'diffusion_model.blocks.0.self_attn.q.lora_down.weight' -> ('blocks.0.self_attn.q', 'down')."""
    for bad in UNSUPPORTED:
        if key.endswith(bad):
            raise CheckpointError(f"LoRA key {key!r}: {bad.strip('.')} (LoCon / DoRA / LyCORIS) is not supported")
    suffix = next((s for s in _SUFFIXES if key.endswith(s)), None)
    if suffix is None:
        raise CheckpointError(f"LoRA key {key!r} is not a LoRA tensor (expected lora_A/B, lora_down/up, alpha, diff)")
    module, part = key[: -len(suffix)], _SUFFIXES[suffix]
    for prefix in _PREFIXES:
        if module.startswith(prefix):
            module = module[len(prefix) :]
            break
    return module, part


def read_lora(path: str | Path) -> dict[str, LoRAWeight]:
    """{module path (as written in the file, prefixes stripped): LoRAWeight} of a LoRA .safetensors file."""
    path = Path(path)
    if path.suffix != ".safetensors" or not path.is_file():
        raise CheckpointError(f"{path}: LoRA weights must be an existing .safetensors file (no pickles)")
    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    out: dict[str, LoRAWeight] = {}
    for key, value in tensors.items():
        module, part = _split_key(key)
        w = out.setdefault(module, LoRAWeight())
        setattr(w, part, float(value) if part == "alpha" else value)
    broken = [m for m, w in out.items() if (w.down is None) != (w.up is None)]
    if broken:
        raise CheckpointError(f"{path}: LoRA modules with only one of down / up: {broken[:5]}")
    if not out:
        raise CheckpointError(f"{path}: holds no tensors")
    return out


def match_lora(lora: dict[str, LoRAWeight], model: nn.Module, what: str = "LoRA") -> dict[str, LoRAWeight]:
    """Map the file's module paths onto `model`'s module names (original Wan names), checking every shape.

    Accepts Wan names, diffusers names (converted) and kohya underscore paths. Every entry must find a module whose
    weight shape matches; otherwise a CheckpointError names the keys (a silently skipped LoRA would look applied).
    """
    modules = dict(model.named_modules())
    diffusers = any(re.search(r"(^|\.)(attn[12]|condition_embedder|ffn\.net|proj_out)(\.|$)", k) for k in lora)
    underscored = {name.replace(".", "_"): name for name in modules if name}
    out, unknown, bad = {}, [], []
    for raw, w in lora.items():
        name = raw
        if diffusers:  # the whole file is in diffusers names (its norm2 is Wan's norm3: convert every key)
            name = next(iter(diffusers_to_wan({raw + ".weight": None})))[: -len(".weight")]
        elif name not in modules:  # kohya / musubi-tuner: the module path with "_" for "."
            name = underscored.get(raw, name)
        module = modules.get(name)
        if module is None or getattr(module, "weight", None) is None:
            unknown.append(raw)
            continue
        shape = module.weight.shape
        if (
            w.down is not None and (w.up.shape[0] != shape[0] or w.down.flatten(1).shape[1] != math.prod(shape[1:]))
        ) or (w.diff is not None and w.diff.numel() != module.weight.numel()):
            bad.append(f"{raw} (weight {tuple(shape)})")
            continue
        out[name] = w
    if unknown or bad:
        raise CheckpointError(
            f"{what} does not fit this model: {len(unknown)} modules not found {unknown[:4]}, "
            f"{len(bad)} of another shape {bad[:4]} (a LoRA for another Wan size or variant?)"
        )
    return out


def load_lora(path: str | Path, model: nn.Module) -> dict[str, LoRAWeight]:
    """read_lora + match_lora: the file's updates keyed by `model`'s module names."""
    return match_lora(read_lora(path), model, f"LoRA {path}")


# ----------------------------------------------------------------------------------------------------------------
# Runtime layers
# ----------------------------------------------------------------------------------------------------------------


class LoRAAdapter(nn.Module):
    """One low-rank update: x -> scale * (x down^T) up^T (+ a full difference, for `.diff` files)."""

    def __init__(self, down: torch.Tensor, up: torch.Tensor, scale: float, trainable: bool = False):
        super().__init__()
        self.down = nn.Parameter(down.flatten(1).clone(), requires_grad=trainable)  # [r, in]
        self.up = nn.Parameter(up.flatten(1).clone(), requires_grad=trainable)  # [out, r]
        self.register_buffer("scale", torch.tensor(float(scale)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., in] -> [..., out] in x's dtype (the adapter's own weights may be float32)."""
        h = F.linear(F.linear(x.to(self.down.dtype), self.down), self.up)
        return (h * self.scale).to(x.dtype)


class LoRALinear(nn.Linear):
    """nn.Linear sharing the base layer's weight and bias, plus LoRA adapters added to its output."""

    def __init__(self, base: nn.Linear):
        super().__init__(base.in_features, base.out_features, bias=base.bias is not None, device="meta")
        self.weight, self.bias = base.weight, base.bias  # the same Parameters: names and storage unchanged
        self.adapters = nn.ModuleList()
        self.weight_diff: torch.Tensor | None = None  # scaled `.diff` / `.diff_b` of runtime LoRAs (rarely used)
        self.bias_diff: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., in] -> [..., out]."""
        y = F.linear(x, self.weight, self.bias)
        if self.weight_diff is not None:
            y = y + F.linear(x, self.weight_diff.to(x.dtype))
        if self.bias_diff is not None:
            y = y + self.bias_diff.to(x.dtype)
        for adapter in self.adapters:
            y = y + adapter(x)
        return y

    def to_linear(self) -> nn.Linear:
        """The plain layer (adapters dropped), sharing the weight and bias."""
        plain = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        plain.weight, plain.bias = self.weight, self.bias
        return plain


def _lora_linear(model: nn.Module, name: str) -> LoRALinear:
    """The module `name` as a LoRALinear, replacing a plain nn.Linear in its parent if needed."""
    module = model.get_submodule(name)
    if isinstance(module, LoRALinear):
        return module
    parent_name, _, child = name.rpartition(".")
    wrapped = LoRALinear(module)
    setattr(model.get_submodule(parent_name) if parent_name else model, child, wrapped)
    return wrapped


# ----------------------------------------------------------------------------------------------------------------
# Applying
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def merge_into(param: torch.Tensor, delta: torch.Tensor) -> None:
    """param += delta, added in float32 and rounded once to the parameter's dtype."""
    param.copy_((param.float() + delta.to(param.device)).to(param.dtype))


@torch.no_grad()
def apply_lora(model: nn.Module, lora: dict[str, LoRAWeight], strength: float = 1.0, mode: str = "runtime") -> dict:
    """Apply a matched LoRA (see `load_lora`) to `model`: mode 'merge' (into the weights) or 'runtime' (adapters).

    Returns counts {'runtime': n, 'merged': m}. Runtime adapters are stored in the layer's dtype and device.
    """
    if mode not in ("merge", "runtime"):
        raise ValueError(f"LoRA mode must be 'merge' or 'runtime', got {mode!r}")
    counts = {"runtime": 0, "merged": 0}
    for name, w in lora.items():
        module = model.get_submodule(name)
        runtime = mode == "runtime" and isinstance(module, nn.Linear)
        if runtime:
            layer = _lora_linear(model, name)
            dtype, device = layer.weight.dtype, layer.weight.device
            if w.down is not None:
                down, up = w.down.to(device, dtype), w.up.to(device, dtype)
                layer.adapters.append(LoRAAdapter(down, up, w.scale * strength).to(device))
            if w.diff is not None:
                d = w.diff.to(device, torch.float32).reshape(layer.weight.shape) * strength
                layer.weight_diff = d if layer.weight_diff is None else layer.weight_diff + d
            if w.diff_b is not None:
                d = w.diff_b.to(device, torch.float32) * strength
                layer.bias_diff = d if layer.bias_diff is None else layer.bias_diff + d
        else:
            delta = w.delta(module.weight.shape, strength)
            if delta is not None:
                merge_into(module.weight, delta)
            if w.diff_b is not None:
                merge_into(module.bias, w.diff_b.float() * strength)
        counts["runtime" if runtime else "merged"] += 1
    return counts


def remove_lora(model: nn.Module) -> int:
    """Replace every LoRALinear by its plain layer (runtime LoRAs removed, base weights as they were)."""
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, getattr(parent, child).to_linear())
    return len(names)


# ----------------------------------------------------------------------------------------------------------------
# Training and export
# ----------------------------------------------------------------------------------------------------------------


def add_trainable_lora(model: nn.Module, rank: int, alpha: float | None = None, targets=BLOCK_TARGETS) -> list[str]:
    """Attach a trainable adapter (float32; down: Kaiming uniform, up: zeros, so the model is unchanged at step 0)
    to every block Linear named `blocks.<i>.<target>`; returns their names."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    names = [n for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and re.fullmatch(r"blocks\.\d+\.(.+)", n) and n.split(".", 2)[2] in targets]  # fmt: skip
    for name in names:
        layer = _lora_linear(model, name)
        down = torch.empty(rank, layer.in_features, device=layer.weight.device)
        nn.init.kaiming_uniform_(down, a=math.sqrt(5))  # as nn.Linear (and PEFT) initialise lora_A
        up = torch.zeros(layer.out_features, rank, device=layer.weight.device)
        layer.adapters.append(LoRAAdapter(down, up, (alpha or rank) / rank, trainable=True))
    return names


_ADAPTER_KEY = re.compile(r"^(.*)\.adapters\.(\d+)\.(down|up|scale)$")


def split_lora_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(state with adapters merged into the base weights and their keys removed, LoRA tensors in the ComfyUI layout).

    state: a state dict of a model with LoRALinear layers (any prefix, e.g. `lat_generator.`). The LoRA tensors are
    keyed `diffusion_model.<module>.lora_down.weight` / `lora_up.weight` / `alpha` with module names relative to the
    DiT (the prefix before `blocks.` is dropped), as ComfyUI's Wan LoRAs are.
    """
    parts: dict[tuple[str, str], dict] = {}
    for key, value in state.items():
        m = _ADAPTER_KEY.match(key)
        if m:
            parts.setdefault((m[1], m[2]), {})[m[3]] = value
    merged = {k: v for k, v in state.items() if not _ADAPTER_KEY.match(k)}
    lora = {}
    for (module, _), p in sorted(parts.items()):
        scale, rank = float(p["scale"]), p["down"].shape[0]
        w = merged[module + ".weight"]
        merged[module + ".weight"] = (w.float() + scale * (p["up"].float() @ p["down"].float())).to(w.dtype)
        name = "diffusion_model." + module[module.index("blocks.") :] if "blocks." in module else module
        if name + ".lora_down.weight" in lora:
            raise ValueError(f"{module}: several adapters on one layer cannot be exported as one LoRA")
        lora[name + ".lora_down.weight"] = p["down"].float().contiguous()
        lora[name + ".lora_up.weight"] = p["up"].float().contiguous()
        lora[name + ".alpha"] = torch.tensor(scale * rank)
    return merged, lora


def export_lora(path: str | Path, lora: dict[str, torch.Tensor], dtype: torch.dtype = torch.float32, **meta) -> None:
    """Write LoRA tensors (from `split_lora_state`) as safetensors; metadata values are stored as strings."""
    tensors = {k: v.to(dtype) if k.endswith(".weight") else v for k, v in lora.items()}
    atomic_save_file(tensors, path, {"format": "semanticgen_lora", **{k: str(v) for k, v in meta.items()}})
