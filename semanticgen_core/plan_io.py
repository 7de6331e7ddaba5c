"""Semantic plans as objects and files: the compressed plan with what it was made for, saved as safetensors.

A plan file holds one tensor, `plan` [B, k, T_s, H_s, W_s] (float32), and metadata: `semanticgen_plan` (format
version), `semantic` (the SemanticSpec JSON: encoder kind, raw dim, compressed dim k, fps, temporal / spatial patch),
`video` (the VideoSpec JSON: fps and VAE factors), `seconds`, `height`, `width`, `source` and, when the plan was
generated from a prompt schedule, `schedule`. Loading checks the spec and the grid against the model that will
render it (`check_plan`), with errors that name both sides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from safetensors import safe_open

from .checkpoint import CheckpointError, atomic_save_file
from .config import SemanticSpec, VideoSpec

PLAN_FORMAT = 1


@dataclass
class SemanticPlan:
    """A compressed semantic plan and the video it describes."""

    z: torch.Tensor  # [B, k, T_s, H_s, W_s] compressed plan
    semantic: SemanticSpec  # encoder kind, dims and frame rate of the plan space
    video: VideoSpec  # the video it is rendered into (fps, VAE factors)
    seconds: float  # video length the plan covers
    height: int  # video height, pixels
    width: int  # video width, pixels
    source: str = "generated"  # generated | reference | file | edited ...
    schedule: list[tuple[float, str]] | None = field(default=None)  # prompt schedule it was generated from

    @property
    def grid(self) -> tuple[int, int, int]:
        return tuple(self.z.shape[2:])

    @property
    def frame_seconds(self) -> float:
        """Time span of one semantic frame (encoder frames per semantic frame / encoder fps)."""
        return self.semantic.temporal_patch / self.semantic.fps

    def with_frames(self, z: torch.Tensor, source: str = "edited", schedule=None) -> SemanticPlan:
        """The same plan space with new frames z [B, k, T_s', H_s, W_s]; seconds kept, or fitted to a new T_s'."""
        seconds = self.seconds
        if z.shape[2] != self.grid[0]:
            seconds = plan_seconds(z.shape[2], self.semantic, self.video, self.height, self.width)
        return replace(self, z=z, seconds=seconds, source=source, schedule=schedule)


def plan_grid(semantic: SemanticSpec, video: VideoSpec, seconds: float, height: int, width: int):
    """(T_s, H_s, W_s) of the plan of a video (as SemanticGenPipeline.plan_grid: over the exact F / fps seconds)."""
    return semantic.grid(video.num_frames(seconds) / video.fps, height, width)


def plan_seconds(num_frames: int, semantic: SemanticSpec, video: VideoSpec, height: int, width: int) -> float:
    """The longest video length (a 4k + 1 frame count) whose plan has `num_frames` semantic frames."""
    step = video.temporal_factor / video.fps
    top = int(num_frames * semantic.temporal_patch / semantic.fps / step) + 2
    for k in range(top, -1, -1):
        seconds = (k * video.temporal_factor + 1) / video.fps
        if plan_grid(semantic, video, seconds, height, width)[0] == num_frames:
            return seconds
    raise ValueError(
        f"no video length at {video.fps:g} fps gives a plan of {num_frames} semantic frames "
        f"({semantic.temporal_patch} frames at {semantic.fps:g} fps each)"
    )


# ----------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------


def save_plan(path: str | Path, plan: SemanticPlan) -> Path:
    """Write a plan file (atomically). Returns the path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: a plan file is .safetensors; give a path ending in .safetensors")
    meta = {
        "semanticgen_plan": str(PLAN_FORMAT),
        "semantic": json.dumps(plan.semantic.to_dict()),
        "video": json.dumps(plan.video.to_dict()),
        "seconds": json.dumps(float(plan.seconds)),
        "height": json.dumps(int(plan.height)),
        "width": json.dumps(int(plan.width)),
        "source": plan.source,
        "schedule": json.dumps(plan.schedule),
    }
    atomic_save_file({"plan": plan.z.detach().float().cpu()}, path, meta)
    return path


def load_plan(path: str | Path) -> SemanticPlan:
    """Read a plan file; errors name the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such plan file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            z = f.get_tensor("plan") if "plan" in f.keys() else None
    except Exception as err:  # safetensors raises several types for a damaged file
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from err
    if "semanticgen_plan" not in meta or z is None:
        raise CheckpointError(f"{path}: a safetensors file, but not a SemanticGen plan (save one with --save-plan)")
    if int(meta["semanticgen_plan"]) > PLAN_FORMAT:
        raise CheckpointError(f"{path}: plan format {meta['semanticgen_plan']} is newer than this code; update")
    if z.ndim != 5:
        raise CheckpointError(f"{path}: the plan must be [B, k, T_s, H_s, W_s], got {tuple(z.shape)}")
    schedule = json.loads(meta.get("schedule", "null"))
    return SemanticPlan(
        z.float(),
        SemanticSpec.from_dict(json.loads(meta["semantic"])),
        VideoSpec.from_dict(json.loads(meta["video"])),
        float(json.loads(meta["seconds"])),
        int(json.loads(meta["height"])),
        int(json.loads(meta["width"])),
        meta.get("source", "file"),
        [(float(s), str(p)) for s, p in schedule] if schedule else None,
    )


# ----------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------

_SPEC_FIELDS = ("kind", "dim", "compressed_dim", "fps", "temporal_patch", "spatial_patch")


def check_plan(plan: SemanticPlan, semantic: SemanticSpec, video: VideoSpec | None = None, what: str = "plan") -> None:
    """Raise CheckpointError naming both sides unless the plan fits a model with this spec: the same plan space
    (encoder kind, raw and compressed dim, fps, patches), frames of that dim, and the grid its length and size give."""
    mine, theirs = plan.semantic.to_dict(), semantic.to_dict()
    diff = [f"{k} {mine[k]!r} vs {theirs[k]!r}" for k in _SPEC_FIELDS if mine[k] != theirs[k]]
    if diff:
        raise CheckpointError(
            f"{what} was made in another plan space than the model's (plan vs model: {', '.join(diff)}); "
            "use plans made with this model (same encoder, compressor and settings)"
        )
    if plan.z.shape[1] != semantic.compressed_dim:
        raise CheckpointError(
            f"{what} has frames of dim {plan.z.shape[1]}, but its spec and the model say {semantic.compressed_dim}"
        )
    video = video or plan.video
    if video.fps != plan.video.fps or video.temporal_factor != plan.video.temporal_factor:
        raise CheckpointError(
            f"{what} was made for video at {plan.video.fps:g} fps (VAE factor {plan.video.temporal_factor}), the "
            f"model renders {video.fps:g} fps (factor {video.temporal_factor})"
        )
    want = plan_grid(semantic, video, plan.seconds, plan.height, plan.width)
    if plan.grid != tuple(want):
        raise CheckpointError(
            f"{what} has a semantic grid (T_s, H_s, W_s) = {plan.grid}, but the model expects {tuple(want)} for "
            f"{plan.seconds:g} s at {plan.width}x{plan.height}"
        )
