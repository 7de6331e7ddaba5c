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
from .precision import DTYPES, FP8_DTYPES, fp8_linear_names, keeps_fp32, resolve_dtype, use_fp8_linears

FORMAT_VERSION = 1
ROLES = ("semantic_generator", "latent_generator", "compressor", "semantic_encoder", "vae", "text_encoder", "bundle")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, of the wrong role, or incompatible with its partner."""


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
# Lean loading: build on the meta device, take each tensor from its file
# ----------------------------------------------------------------------------------------------------------------

_ST_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I64": torch.int64, "I32": torch.int32,
              "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}  # fmt: skip
FP8_EXTRAS = ("scaled_fp8", ".scale_input")  # ComfyUI scaled-fp8 marker and fp8-matmul input scales (unused here)


def tensor_index(files: list[Path]) -> dict[str, tuple[Path, str, torch.Tensor]]:
    """key -> (file, key, meta tensor of its shape and dtype) for safetensors files, reading headers only."""
    index = {}
    for f in files:
        try:
            with safe_open(str(f), framework="pt") as sf:
                for key in sf.keys():
                    sl = sf.get_slice(key)
                    dtype = _ST_DTYPES.get(sl.get_dtype(), torch.uint8)
                    index[key] = (Path(f), key, torch.empty(sl.get_shape(), dtype=dtype, device="meta"))
        except Exception as err:  # safetensors raises several types for a damaged file
            raise CheckpointError(f"{f}: not a readable safetensors file ({err})") from err
    return index


def read_tensor(file: Path, key: str) -> torch.Tensor:
    """One tensor of a safetensors file. The file is opened per tensor: its memory map (whose touched pages count
    as resident memory) is released as soon as the tensor is copied out, so reading a model never holds the whole
    file mapped next to the weights."""
    with safe_open(str(file), framework="pt") as f:
        return f.get_tensor(key)


def load_into(model: torch.nn.Module, index: dict, dtype, device="cpu", source="", reinit=()) -> torch.nn.Module:
    """Fill a module built on the meta device from `index` (module key -> (file, key, meta), see `tensor_index`).

    Each tensor is read, cast and moved on its own: floating weights to `dtype` (float32 for the names the module
    keeps in float32, see precision.py), fp8 weights of nn.Linear layers stay fp8 (the layer becomes an FP8Linear
    that upcasts per call; `<layer>.scale_weight` is its ComfyUI scale), other fp8 tensors are dequantised. Peak
    memory: the weights in their final dtype plus one tensor. `reinit`: keys to initialise freshly instead (their
    modules' `reset_parameters`, e.g. a patch embedding whose channel count changed). Any other missing or
    unexpected key raises a CheckpointError naming it.
    """
    dtype = resolve_dtype(dtype)
    index = {k: v for k, v in index.items() if not k.endswith(FP8_EXTRAS)}
    fp8 = {k for k, (_, _, m) in index.items() if m.dtype in FP8_DTYPES and k not in reinit}
    fp8_layers = fp8_linear_names(model, fp8)
    use_fp8_linears(model, fp8_layers)
    fp8 = {f"{name}.weight" for name in fp8_layers}  # the fp8 weights kept as they are
    own = model.state_dict(keep_vars=True)
    scales = {k for k in index if k.endswith(".scale_weight") and k not in own}  # folded into their weight below
    missing = sorted(k for k in own if k not in index and k not in reinit and not k.endswith(".scale_weight"))
    unexpected = sorted(k for k in index if k not in own and k not in scales)
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not fit the model: missing {missing[:8]}{' ...' * (len(missing) > 8)}, "
            f"unexpected {unexpected[:8]}{' ...' * (len(unexpected) > 8)}"
        )
    bad = [f"{k} {tuple(index[k][2].shape)} vs {tuple(own[k].shape)}" for k in own
           if k in index and k not in reinit and not k.endswith(".scale_weight") and index[k][2].shape != own[k].shape]  # fmt: skip
    if bad:
        raise CheckpointError(f"{source}: weight shapes do not fit the model: {bad[:8]}")

    state = {}
    for key, (file, file_key, _) in index.items():
        if key in reinit or key in scales:
            continue
        t = read_tensor(file, file_key)
        if t.dtype in FP8_DTYPES and key not in fp8:
            scale = f"{key.rpartition('.')[0]}.scale_weight"
            t = t.float() * (read_tensor(*index[scale][:2]).float() if scale in index else 1.0)
        if key.endswith(".scale_weight"):
            t = t.float().reshape(())
        elif t.is_floating_point() and key not in fp8:
            t = t.to(torch.float32 if keeps_fp32(model, key) else dtype)
        state[key] = t.to(device)
    model.load_state_dict(state, strict=False, assign=True)
    for key in own:  # unscaled fp8 layers: scale 1
        if key.endswith(".scale_weight") and key not in state:
            model.get_submodule(key.rpartition(".")[0]).scale_weight = torch.ones((), device=device)
    for name in sorted({k.rpartition(".")[0] for k in reinit if k in own}):
        layer = model.get_submodule(name)
        if not hasattr(layer, "reset_parameters"):
            raise CheckpointError(f"{source}: cannot re-initialise {name} ({type(layer).__name__})")
        loaded = {n: p.data for n, p in layer.named_parameters(recurse=False) if f"{name}.{n}" not in reinit}
        layer.to_empty(device=device, recurse=False)
        layer.reset_parameters()
        for pname, p in layer.named_parameters(recurse=False):
            keep = loaded.get(pname)  # e.g. a bias whose shape did not change: the file's
            p.data = (
                keep
                if keep is not None
                else p.data.to(torch.float32 if keeps_fp32(model, f"{name}.{pname}") else dtype)
            )
    for p in model.parameters():
        if p.dtype in FP8_DTYPES:
            p.requires_grad_(False)  # storage only: fp8 weights are not trained
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise CheckpointError(f"{source}: tensors left uninitialised after loading: {left[:20]}")
    return model


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


def wan_weight_index(path: str | Path, head_dim: int = 128) -> tuple[DiTConfig, dict]:
    """(config, Wan-named tensor index, see `tensor_index`) of a diffusers folder, an original Wan2.1 folder, or a
    single file (original, ComfyUI or diffusers names; bf16, fp16, fp32 or fp8). Reads headers only."""
    path = Path(path)
    if path.is_dir() and (path / "transformer").is_dir():  # a whole diffusers pipeline folder
        path = path / "transformer"
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        if not files:
            raise CheckpointError(f"{path}: no .safetensors files in this folder")
        index = normalise_wan_keys(tensor_index(files))
        cfg_file = path / "config.json"
        if cfg_file.is_file():
            return DiTConfig(**_config_from_json(json.loads(cfg_file.read_text()))), index
        return _infer(index, head_dim), index
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file or folder")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: only .safetensors weights are loaded (no pickles); convert the file first")
    index = normalise_wan_keys(tensor_index([path]))
    return _infer(index, head_dim), index


def _infer(index: dict, head_dim: int) -> DiTConfig:
    return infer_wan_config({k: meta for k, (_, _, meta) in index.items()}, head_dim)
