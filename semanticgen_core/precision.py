"""Precision: the one place that decides dtypes, which weights stay float32, and fp8 weight storage.

- `resolve_dtype`: a torch dtype from a dtype, a name ('bf16', 'float16', ...) or 'auto'.
- `auto_dtype(device)`: float32 on a CPU, bfloat16 on an accelerator that supports it, else float16.
- `cast_module(module, dtype)`: floating weights to `dtype`, except the parameters the module lists in `keep_fp32`
  (as Wan and diffusers keep the time embedding, the modulation tables and the affine norms in float32) and fp8
  weights (they stay fp8 and are upcast per layer, see `FP8Linear`).
- `FP8Linear`: an `nn.Linear` whose weight is stored as float8 (ComfyUI's `*_fp8_e4m3fn*.safetensors`), optionally
  with a per-tensor `scale_weight` (ComfyUI's "scaled fp8": w = w_fp8 * scale), upcast to the input's dtype at each
  call. The upcast is exact (every e4m3 / e5m2 value is a bfloat16 and a float16 value); only the weights' storage
  is 8-bit, the matmul runs in the compute dtype.

The compute policy itself lives with the model (dit.py): norms, modulation, RoPE and the time embedding are computed
in float32 whatever the weights' dtype; matmuls and attention run in the weights' dtype (or autocast's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DTYPE_NAMES = {**DTYPES, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
COMPUTE_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def resolve_dtype(dtype, config_dtype=None) -> torch.dtype:
    """A torch dtype from a dtype, a name ('bf16', 'float32', ...) or 'auto' (the checkpoint's own, else fp32).

    An fp8 checkpoint dtype resolves to bfloat16 under 'auto': fp8 is a storage format, not a compute dtype.
    """
    if dtype == "auto" or dtype is None:
        dtype = config_dtype or torch.float32
        if isinstance(dtype, torch.dtype) and dtype in FP8_DTYPES:
            dtype = torch.bfloat16
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name not in _DTYPE_NAMES:
            raise ValueError(f"unknown dtype {dtype!r}; one of {sorted(_DTYPE_NAMES)} or 'auto'")
        dtype = _DTYPE_NAMES[name]
    if not isinstance(dtype, torch.dtype) or dtype not in COMPUTE_DTYPES:
        raise ValueError(f"dtype must be float32, bfloat16 or float16 (a torch dtype, a name or 'auto'); got {dtype!r}")
    return dtype


def auto_dtype(device) -> torch.dtype:
    """float32 on a CPU; bfloat16 on a CUDA device that supports it, else float16; bfloat16 elsewhere."""
    device = torch.device(device)
    if device.type == "cpu":
        return torch.float32
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def keeps_fp32(module: nn.Module, name: str) -> bool:
    """Whether parameter `name` of `module` is one it keeps in float32 (any dotted part listed in `keep_fp32`)."""
    keep = getattr(module, "keep_fp32", ())
    return any(part in keep for part in name.split("."))


def cast_module(module: nn.Module, dtype, device=None) -> nn.Module:
    """Cast floating parameters to `dtype` in place (float32 for `module.keep_fp32`, fp8 untouched); buffers only
    move to `device`: they hold statistics and tables kept in float32 on purpose (VAE latent statistics, rotary
    inverse frequencies, fp8 scales).

    Submodules with their own `keep_fp32` (a DiT inside a pipeline part) are handled by their own rule.
    """
    dtype = resolve_dtype(dtype)
    owners = [(prefix, m) for prefix, m in module.named_modules() if getattr(m, "keep_fp32", None)]

    def target(name: str, t: torch.Tensor) -> torch.dtype:
        if not t.is_floating_point() or t.dtype in FP8_DTYPES:
            return t.dtype
        for prefix, owner in owners:
            if (not prefix or name.startswith(prefix + ".")) and keeps_fp32(owner, name[len(prefix) :].lstrip(".")):
                return torch.float32
        return dtype

    with torch.no_grad():
        for name, t in module.named_parameters():
            new = t.to(device=device if device is not None else t.device, dtype=target(name, t))
            if new is not t:
                t.data = new
    return module.to(device) if device is not None else module


# ----------------------------------------------------------------------------------------------------------------
# fp8 weights
# ----------------------------------------------------------------------------------------------------------------


class FP8Linear(nn.Linear):
    """nn.Linear with a float8 weight (times a per-tensor `scale_weight`), upcast to the input's dtype per call."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.register_buffer("scale_weight", torch.ones((), device=device, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [..., in_features] -> [..., out_features] in x's dtype (or autocast's)."""
        # dequantise in float32, then round once to the compute dtype (a bf16 scale would be off by up to 0.4 %)
        bias = self.bias.to(x.dtype) if self.bias is not None else None
        return F.linear(x, self.dequantized_weight(x.dtype), bias)

    def dequantized_weight(self, dtype=torch.float32) -> torch.Tensor:
        """The weight the layer computes with, [out, in] in `dtype`."""
        return (self.weight.float() * self.scale_weight.float()).to(dtype)


def fp8_linear_names(module: nn.Module, fp8_weights: set[str]) -> list[str]:
    """Names of the nn.Linear submodules whose `weight` is in `fp8_weights` and not kept in float32."""
    return [
        name
        for name, m in module.named_modules()
        if type(m) is nn.Linear and f"{name}.weight" in fp8_weights and not keeps_fp32(module, f"{name}.weight")
    ]


def use_fp8_linears(module: nn.Module, names: list[str]) -> None:
    """Replace the named nn.Linear submodules by FP8Linear ones of the same shape (on the meta device when built
    there), so that a loader can assign fp8 weights and their scales to them."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        old = getattr(parent, child)
        new = FP8Linear(old.in_features, old.out_features, old.bias is not None, device=old.weight.device)
        new.weight.requires_grad_(False)  # storage only: fp8 weights are not trained
        setattr(parent, child, new)
