"""The only module that imports ComfyUI: guarded imports with plain-PyTorch fallbacks.

Inside ComfyUI, devices come from `comfy.model_management`, progress and previews go through `comfy.utils.ProgressBar`
and model files through `folder_paths`. Outside it (tests, plain scripts) the same functions work without ComfyUI:
CUDA if available else CPU, no progress bar, files only by absolute path. Nothing here runs at import time except the
imports themselves, and no module state (ours or ComfyUI's) is changed except registering our model folder.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import torch

try:  # ComfyUI is present
    import comfy.model_management as mm
    import comfy.utils as comfy_utils
    import folder_paths
except ImportError:  # tests and plain scripts
    mm = comfy_utils = folder_paths = None

IN_COMFY = mm is not None
MODEL_FOLDER = "semanticgen"  # models/semanticgen/: stage exports and semantic encoders
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".mov", ".avi", ".gif")

# ----------------------------------------------------------------------------------------------------------------
# Devices
# ----------------------------------------------------------------------------------------------------------------


def torch_device() -> torch.device:
    """Where models run: ComfyUI's main device, else CUDA if available, else CPU."""
    if IN_COMFY:
        return mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def offload_device() -> torch.device:
    """Where models wait between runs (ComfyUI's unet offload device, else CPU)."""
    return mm.unet_offload_device() if IN_COMFY else torch.device("cpu")


def auto_dtype(device: torch.device) -> torch.dtype:
    """float32 on CPU; bfloat16 on accelerators that support it (ComfyUI's judgement when it runs), else float16."""
    if IN_COMFY and device.type != "cpu":
        return torch.bfloat16 if mm.should_use_bf16(device) else torch.float16
    from ..semanticgen_core.precision import auto_dtype as core_auto_dtype

    return core_auto_dtype(device)


@contextlib.contextmanager
def on_device(*modules: torch.nn.Module):
    """Move modules to the run device for the block (freeing ComfyUI memory first), then back to the offload device."""
    from ..semanticgen_core.offload import device_bytes, move

    device = torch_device()
    if IN_COMFY:
        size = sum(device_bytes(m) for m in modules)  # an offloaded generator needs only its resident blocks
        mm.free_memory(size * 2, device)  # weights + activations headroom, as the upscale-model node does
    try:
        for m in modules:
            move(m, device)  # an offloaded generator keeps streaming its other blocks from CPU memory
        yield device
    finally:
        for m in modules:
            move(m, offload_device())
        if IN_COMFY:
            mm.soft_empty_cache()


def throw_if_interrupted() -> None:
    """Raise ComfyUI's interruption exception if the user pressed Cancel (no-op outside ComfyUI)."""
    if IN_COMFY:
        mm.throw_exception_if_processing_interrupted()


class _NoProgress:
    """ProgressBar stand-in outside ComfyUI."""

    def __init__(self, total: int):
        self.total = total

    def update_absolute(self, value: int, total: int | None = None, preview=None) -> None:
        pass


def progress_bar(total: int):
    """comfy.utils.ProgressBar(total), or a silent stand-in."""
    return comfy_utils.ProgressBar(total) if IN_COMFY else _NoProgress(total)


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------


def _register_model_folder() -> None:
    """Register models/semanticgen/ with folder_paths (once; also picks up extra_model_paths.yaml entries)."""
    if MODEL_FOLDER not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(MODEL_FOLDER, os.path.join(folder_paths.models_dir, MODEL_FOLDER))


def model_files(folder: str = MODEL_FOLDER, with_dirs: bool = False) -> list[str]:
    """Files in a ComfyUI model folder (and, with_dirs, sub-folders holding a config.json, e.g. Hugging Face models)."""
    if not IN_COMFY:
        return []
    if folder == MODEL_FOLDER:
        _register_model_folder()
    names = [n for n in folder_paths.get_filename_list(folder) if n.endswith(".safetensors")]
    if with_dirs:
        for root in folder_paths.get_folder_paths(folder):
            if os.path.isdir(root):
                names += sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "config.json")))
        names = [n for n in names if not any(n.replace("\\", "/").startswith(d + "/") for d in names)]  # hide shards
    return names


def model_folders(folder: str = MODEL_FOLDER) -> list[str]:
    """Where ComfyUI looks for a model folder's files (models/<folder>/ and extra_model_paths.yaml entries)."""
    if not IN_COMFY:
        return [f"ComfyUI/models/{folder}"]
    if folder == MODEL_FOLDER:
        _register_model_folder()
    return list(folder_paths.get_folder_paths(folder))


def model_path(name: str, folder: str = MODEL_FOLDER) -> Path:
    """Full path of a dropdown entry: a file or model folder under the ComfyUI model folder, or an existing path."""
    if IN_COMFY:
        if folder == MODEL_FOLDER:
            _register_model_folder()
        for root in folder_paths.get_folder_paths(folder):
            if os.path.exists(os.path.join(root, name)):
                return Path(root, name)
    if os.path.exists(name):
        return Path(name)
    raise FileNotFoundError(f"{name!r} is not in ComfyUI's models/{folder}/ folder (nor an existing path)")


def input_videos() -> list[str]:
    """Video files in ComfyUI's input/ folder."""
    if not IN_COMFY:
        return []
    root = folder_paths.get_input_directory()
    files = [f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f))]
    return sorted(f for f in files if f.lower().endswith(VIDEO_EXTENSIONS))


def input_path(name: str) -> Path | None:
    """Path of a file in ComfyUI's input/ folder, or None."""
    if not IN_COMFY:
        return None
    path = Path(folder_paths.get_annotated_filepath(name))
    return path if path.is_file() else None


PLAN_FOLDER = "semantic_plans"  # output/semantic_plans/: plans written by Save Semantic Plan


def plan_dir() -> Path:
    """Where Save Semantic Plan writes: ComfyUI's output/semantic_plans/ (outside ComfyUI: a temp folder)."""
    root = folder_paths.get_output_directory() if IN_COMFY else Path(tempfile.gettempdir()) / "semanticgen"
    return Path(root) / PLAN_FOLDER


def plan_files() -> list[str]:
    """Plan files (.safetensors) in output/semantic_plans/ (by name) and in input/ (as 'input/NAME')."""
    saved = sorted(p.name for p in plan_dir().glob("*.safetensors")) if plan_dir().is_dir() else []
    if not IN_COMFY:
        return saved
    root = Path(folder_paths.get_input_directory())
    return saved + sorted(f"input/{p.name}" for p in root.glob("*.safetensors"))


def plan_path(name: str) -> Path:
    """A plan file from `plan_files()`, or an existing path."""
    if name.startswith("input/") and IN_COMFY:
        path = Path(folder_paths.get_input_directory()) / name[len("input/") :]
    else:
        path = plan_dir() / name
    for p in (path, Path(name)):
        if p.is_file():
            return p
    raise FileNotFoundError(f"plan {name!r} is neither in {plan_dir()} nor in ComfyUI's input/ folder")
