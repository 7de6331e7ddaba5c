"""Checkpoints: one self-describing safetensors format, and Wan2.1 weight conversion.

Every model this project saves is a `.safetensors` file whose metadata holds:
- `semanticgen_format`: format version
- `role`: semantic_generator | latent_generator | compressor | semantic_encoder | vae | text_encoder | bundle
- `config`: the JSON of the model's dataclass config
- any other JSON fields the role needs (e.g. `semantic`: the SemanticSpec of the encoder a model was trained on)

A bundle stores several parts in one file under key prefixes (`lat_generator.`, `compressor.`, ...).
Loading never unpickles: safetensors only.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .config import DiTConfig

FORMAT_VERSION = 1
ROLES = ("semantic_generator", "latent_generator", "compressor", "semantic_encoder", "vae", "text_encoder", "bundle")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_DTYPE_NAMES = {**DTYPES, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of the wrong role, or incompatible with its partner."""


def resolve_dtype(dtype, config_dtype=None) -> torch.dtype:
    """A torch dtype from a dtype, a name ('bf16', 'float32', ...) or 'auto' (the checkpoint's own, else fp32)."""
    if dtype == "auto" or dtype is None:
        dtype = config_dtype or torch.float32
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name not in _DTYPE_NAMES:
            raise ValueError(f"unknown dtype {dtype!r}; one of {sorted(_DTYPE_NAMES)} or 'auto'")
        dtype = _DTYPE_NAMES[name]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype, a name or 'auto'; got {dtype!r}")
    return dtype


# ----------------------------------------------------------------------------------------------------------------
# Our format
# ----------------------------------------------------------------------------------------------------------------


def atomic_save_file(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, str]) -> None:
    """safetensors save through a temp file in the same folder + rename: a crash never leaves half a file."""
    path = Path(path)
    bad = [k for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise TypeError(f"{path}: only tensors can be saved, but {bad[:5]} are not tensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(
    path: str | Path,
    tensors: dict[str, torch.Tensor],
    role: str,
    config: dict | None = None,
    dtype: str | None = None,
    **meta,
) -> None:
    """Write a self-describing checkpoint. dtype: 'fp32' | 'bf16' | 'fp16' casts floating tensors for storage."""
    if role not in ROLES:
        raise ValueError(f"unknown checkpoint role {role!r}; one of {ROLES}")
    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"unknown storage dtype {dtype!r}; one of {sorted(DTYPES)}")
        tensors = {k: v.to(DTYPES[dtype]) if v.is_floating_point() else v for k, v in tensors.items()}
    metadata = {"semanticgen_format": str(FORMAT_VERSION), "role": role, "config": json.dumps(config or {})}
    metadata.update({k: json.dumps(v) for k, v in meta.items()})
    atomic_save_file(tensors, path, metadata)


def read_header(path: str | Path) -> dict:
    """Metadata of one of our checkpoints, JSON fields decoded. Raises CheckpointError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except Exception as err:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    if "semanticgen_format" not in raw:
        raise CheckpointError(f"{path}: a safetensors file, but not a SemanticGen checkpoint (no 'semanticgen_format')")
    if int(raw["semanticgen_format"]) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: format version {raw['semanticgen_format']} is newer than this code ({FORMAT_VERSION}); update"
        )
    out = {"semanticgen_format": int(raw["semanticgen_format"]), "role": raw.get("role")}
    out.update({k: json.loads(v) for k, v in raw.items() if k not in out})
    return out


def load_checkpoint(
    path: str | Path, role: str | None = None, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, header) of one of our checkpoints; checks the role when given."""
    header = read_header(path)
    if role is not None and header["role"] not in (role, "bundle"):
        raise CheckpointError(f"{path}: holds a {header['role']}, but a {role} was expected")
    tensors = load_file(str(path), device=str(device))
    if dtype is not None:
        tensors = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    return tensors, header


def split_prefix(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under `prefix.` with the prefix removed (one part of a bundle)."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)}


def check_plan_compatible(plan_dim: int, plan_kind: str, model_dim: int, model_kind: str, what: str = "") -> None:
    """A semantic plan must have the dim and encoder kind the consuming model was trained on."""
    if plan_dim != model_dim or (plan_kind and model_kind and plan_kind != model_kind):
        raise CheckpointError(
            f"{what}semantic plan is {plan_kind or '?'} features of dim {plan_dim}, but the model was trained on "
            f"{model_kind or '?'} plans of dim {model_dim}; use the compressor and generators of one training run"
        )


# ----------------------------------------------------------------------------------------------------------------
# Wan2.1 weights (original release, ComfyUI single files, diffusers folders)
# ----------------------------------------------------------------------------------------------------------------

_DIFFUSERS_TO_WAN = [
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"\.attn1\.to_q\.", ".self_attn.q."),
    (r"\.attn1\.to_k\.", ".self_attn.k."),
    (r"\.attn1\.to_v\.", ".self_attn.v."),
    (r"\.attn1\.to_out\.0\.", ".self_attn.o."),
    (r"\.attn1\.norm_", ".self_attn.norm_"),
    (r"\.attn2\.to_q\.", ".cross_attn.q."),
    (r"\.attn2\.to_k\.", ".cross_attn.k."),
    (r"\.attn2\.to_v\.", ".cross_attn.v."),
    (r"\.attn2\.to_out\.0\.", ".cross_attn.o."),
    (r"\.attn2\.norm_", ".cross_attn.norm_"),
    (r"^(blocks\.\d+)\.norm2\.", r"\1.norm3."),  # diffusers' norm2 is Wan's affine cross-attention norm (norm3)
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    (r"^(blocks\.\d+)\.scale_shift_table$", r"\1.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"^scale_shift_table$", "head.modulation"),
]
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.")


def diffusers_to_wan(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename diffusers `WanTransformer3DModel` keys to the original Wan2.1 (= our) names."""
    out = {}
    for key, value in state.items():
        new = key
        for pattern, repl in _DIFFUSERS_TO_WAN:
            new = re.sub(pattern, repl, new)
        out[new] = value
    return out


def wan_to_diffusers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of `diffusers_to_wan` (for exporting to diffusers)."""
    back = diffusers_to_wan({k: k for k in _diffusers_key_template(state)})  # our name -> diffusers name
    missing = sorted(set(state) - set(back))
    if missing:
        raise CheckpointError(f"cannot export keys to diffusers layout: {missing[:8]}")
    return {back[k]: v for k, v in state.items()}


def _diffusers_key_template(state: dict[str, torch.Tensor]) -> list[str]:
    n = 1 + max((int(k.split(".")[1]) for k in state if k.startswith("blocks.")), default=-1)
    keys = ["patch_embedding.weight", "patch_embedding.bias", "scale_shift_table", "proj_out.weight", "proj_out.bias"]
    for lin in (
        "time_embedder.linear_1",
        "time_embedder.linear_2",
        "time_proj",
        "text_embedder.linear_1",
        "text_embedder.linear_2",
    ):
        keys += [f"condition_embedder.{lin}.weight", f"condition_embedder.{lin}.bias"]
    for i in range(n):
        b = f"blocks.{i}"
        for a in ("attn1", "attn2"):
            for lin in ("to_q", "to_k", "to_v", "to_out.0"):
                keys += [f"{b}.{a}.{lin}.weight", f"{b}.{a}.{lin}.bias"]
            keys += [f"{b}.{a}.norm_q.weight", f"{b}.{a}.norm_k.weight"]
        keys += [f"{b}.norm2.weight", f"{b}.norm2.bias", f"{b}.scale_shift_table"]
        keys += [
            f"{b}.ffn.net.0.proj.weight",
            f"{b}.ffn.net.0.proj.bias",
            f"{b}.ffn.net.2.weight",
            f"{b}.ffn.net.2.bias",
        ]
    return keys


def normalise_wan_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip ComfyUI / checkpoint prefixes and convert diffusers names, giving original Wan2.1 names."""
    for prefix in _PREFIXES:
        if any(k.startswith(prefix + "blocks.") for k in state):
            state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
            break
    if any(k.startswith("condition_embedder.") or ".attn1." in k for k in state):
        state = diffusers_to_wan(state)
    return state


def infer_wan_config(state: dict[str, torch.Tensor], head_dim: int = 128) -> DiTConfig:
    """A DiTConfig from the shapes of Wan-named weights (heads from head_dim: 128 for every Wan2.1 model)."""
    try:
        pe = state["patch_embedding.weight"]  # [D, C, pt, ph, pw]
        dim, patch = pe.shape[0], tuple(pe.shape[2:])
        n_layers = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("blocks."))
        return DiTConfig(
            in_channels=pe.shape[1],
            out_channels=state["head.head.weight"].shape[0] // (patch[0] * patch[1] * patch[2]),
            dim=dim,
            ffn_dim=state["blocks.0.ffn.0.weight"].shape[0],
            freq_dim=state["time_embedding.0.weight"].shape[1],
            text_dim=state["text_embedding.0.weight"].shape[1],
            num_heads=max(1, dim // head_dim),
            num_layers=n_layers,
            patch_size=patch,
            cross_attn_norm="blocks.0.norm3.weight" in state,
        )
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"not a Wan2.1 text-to-video transformer state dict: {err}") from err


def _config_from_json(cfg: dict) -> dict:
    """DiTConfig fields from a diffusers or original-Wan config.json."""
    if "num_attention_heads" in cfg:  # diffusers
        return dict(
            in_channels=cfg["in_channels"],
            out_channels=cfg.get("out_channels") or cfg["in_channels"],
            dim=cfg["num_attention_heads"] * cfg["attention_head_dim"],
            ffn_dim=cfg["ffn_dim"],
            freq_dim=cfg.get("freq_dim", 256),
            text_dim=cfg.get("text_dim", 4096),
            num_heads=cfg["num_attention_heads"],
            num_layers=cfg["num_layers"],
            patch_size=tuple(cfg.get("patch_size", (1, 2, 2))),
            eps=cfg.get("eps", 1e-6),
            cross_attn_norm=cfg.get("cross_attn_norm", True),
        )
    return dict(  # original Wan2.1 config.json
        in_channels=cfg.get("in_dim", 16),
        out_channels=cfg.get("out_dim", 16),
        dim=cfg["dim"],
        ffn_dim=cfg["ffn_dim"],
        freq_dim=cfg.get("freq_dim", 256),
        text_dim=cfg.get("text_dim", 4096),
        num_heads=cfg["num_heads"],
        num_layers=cfg["num_layers"],
        patch_size=tuple(cfg.get("patch_size", (1, 2, 2))),
        eps=cfg.get("eps", 1e-6),
        cross_attn_norm=cfg.get("cross_attn_norm", True),
    )


def _read_safetensors(files: list[Path]) -> dict[str, torch.Tensor]:
    state = {}
    for f in files:
        try:
            state.update(load_file(str(f)))
        except Exception as err:
            raise CheckpointError(f"{f}: not a readable safetensors file ({err})") from err
    return state


def load_wan_weights(path: str | Path, head_dim: int = 128) -> tuple[DiTConfig, dict[str, torch.Tensor]]:
    """(config, Wan-named state dict) from a diffusers folder, an original Wan2.1 folder, or a single file."""
    path = Path(path)
    if path.is_dir() and (path / "transformer").is_dir():  # a whole diffusers pipeline folder
        path = path / "transformer"
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{path}: no .safetensors files in this folder")
        state = normalise_wan_keys(_read_safetensors(files))
        cfg_file = path / "config.json"
        if cfg_file.is_file():
            cfg = DiTConfig(**_config_from_json(json.loads(cfg_file.read_text())))
        else:
            cfg = infer_wan_config(state, head_dim)
        return cfg, state
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or folder")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: only .safetensors weights are loaded (no pickles); convert the file first")
    state = normalise_wan_keys(_read_safetensors([path]))
    return infer_wan_config(state, head_dim), state
