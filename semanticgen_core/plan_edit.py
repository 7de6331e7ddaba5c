"""Plan edits in time: take a range, splice with a crossfade, repeat, blend, regenerate a range (stage-A
inpainting), and re-plan the whole plan with a new prompt (stage A from the plan noised to a flow time). Each works on `SemanticPlan`s of one plan space and returns a new one whose length (seconds) fits its
frames, so stage B renders it as it is.

Time: semantic frame j covers [j, j + 1) * frame_seconds (frame_seconds = temporal_patch / fps of the encoder).
"""

from __future__ import annotations

import torch

from .plan_io import SemanticPlan

# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def frame_range(plan: SemanticPlan, start: float, end: float | None = None) -> tuple[int, int]:
    """Semantic frames [j0, j1) of the time range [start, end) s (None: to the end), boundaries to the nearest
    frame edge. Raises a ValueError when the range is empty or outside the plan."""
    n, span = plan.grid[0], plan.frame_seconds
    end = n * span if end is None else end
    j0, j1 = max(0, round(start / span)), min(n, round(end / span))
    if start < 0 or j1 <= j0:
        raise ValueError(
            f"time range {start:g}-{end:g} s holds no semantic frame of this plan ({n} frames of {span:g} s: "
            f"0-{n * span:g} s)"
        )
    return j0, j1


def _same_space(a: SemanticPlan, b: SemanticPlan, what: str) -> None:
    if a.semantic != b.semantic or a.z.shape[:2] != b.z.shape[:2] or a.z.shape[3:] != b.z.shape[3:]:
        raise ValueError(
            f"{what}: the plans differ (batch, dim, H_s x W_s {tuple(a.z.shape[:2])} {tuple(a.z.shape[3:])} vs "
            f"{tuple(b.z.shape[:2])} {tuple(b.z.shape[3:])}, or encoder spec); edit plans of one model and size"
        )


def _ramp(n: int, like: torch.Tensor) -> torch.Tensor:
    """Crossfade weights of the second plan over n frames, strictly inside (0, 1): [1, 1, n, 1, 1]."""
    return (torch.arange(1, n + 1, dtype=like.dtype, device=like.device) / (n + 1)).view(1, 1, n, 1, 1)


# ----------------------------------------------------------------------------------------------------------------
# Edits
# ----------------------------------------------------------------------------------------------------------------


def take(plan: SemanticPlan, start: float, end: float | None = None) -> SemanticPlan:
    """The part of a plan in [start, end) seconds."""
    j0, j1 = frame_range(plan, start, end)
    return plan.with_frames(plan.z[:, :, j0:j1].clone())


def splice(a: SemanticPlan, b: SemanticPlan, crossfade: int = 1) -> SemanticPlan:
    """a then b; `crossfade` frames at the cut mix the end of a into the start of b (0: a hard cut). The result has
    T_a + T_b - crossfade frames; away from the cut every frame is exactly a's or b's."""
    _same_space(a, b, "splice")
    ta, tb = a.grid[0], b.grid[0]
    if not 0 <= crossfade <= min(ta, tb):
        raise ValueError(f"crossfade must be 0..{min(ta, tb)} semantic frames (the shorter plan), got {crossfade}")
    za, zb = a.z.to(b.z), b.z
    w = _ramp(crossfade, zb)
    mixed = (1 - w) * za[:, :, ta - crossfade :] + w * zb[:, :, :crossfade]
    return a.with_frames(torch.cat([za[:, :, : ta - crossfade], mixed, zb[:, :, crossfade:]], dim=2))


def repeat(plan: SemanticPlan, times: int, crossfade: int = 0) -> SemanticPlan:
    """The plan `times` times in a row (a loop), each seam crossfaded over `crossfade` frames."""
    if times < 1:
        raise ValueError(f"times must be >= 1, got {times}")
    out = plan
    for _ in range(times - 1):
        out = splice(out, plan, crossfade)
    return out if times > 1 else plan.with_frames(plan.z.clone())


def blend(a: SemanticPlan, b: SemanticPlan, weight: float) -> SemanticPlan:
    """(1 - weight) a + weight b, frame by frame; the plans must have the same grid."""
    _same_space(a, b, "blend")
    if a.grid != b.grid:
        raise ValueError(f"blend: the plans have grids {a.grid} and {b.grid}; take equal lengths first")
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"blend weight must be in [0, 1], got {weight}")
    return a.with_frames(torch.lerp(a.z, b.z.to(a.z), weight))


def keep_mask(plan: SemanticPlan, start: float, end: float | None = None) -> torch.Tensor:
    """bool [T_s]: True for the frames outside [start, end) s (kept), False inside (regenerated)."""
    j0, j1 = frame_range(plan, start, end)
    keep = torch.ones(plan.grid[0], dtype=torch.bool)
    keep[j0:j1] = False
    return keep


def regenerate(pipe, plan: SemanticPlan, start: float, end: float | None, ctx, uncond, sampler=None,
               generator=None, callback=None, starts=None) -> SemanticPlan:  # fmt: skip
    """Stage A again over [start, end) s, the rest of the plan kept exactly (SemanticGenPipeline.inpaint_plan).

    ctx: [B, S, D] (or [B, G, S, D] with `starts`, a prompt schedule over the whole plan's time); uncond [1, S', D].
    """
    keep = keep_mask(plan, start, end)
    z = pipe.inpaint_plan(ctx, uncond, plan.z, keep, sampler, generator, callback, starts)
    return plan.with_frames(z.float().cpu(), schedule=plan.schedule)


def replan(pipe, plan: SemanticPlan, t: float, ctx, uncond, sampler=None, generator=None, callback=None,
           starts=None) -> SemanticPlan:  # fmt: skip
    """Stage A again from the plan noised to flow time t in (0, 1] (SemanticGenPipeline.generate_plan's init): what
    the noise drowns follows the prompt (a reference's colour, with the embedded model), what survives it (layout,
    motion) is kept; 0 returns the plan unchanged. ctx / uncond / starts as in regenerate."""
    if t == 0:
        return plan
    z = pipe.generate_plan(ctx, uncond, tuple(plan.z.shape[2:]), sampler, generator, callback, starts,
                           init=plan.z, replan=t)  # fmt: skip
    return plan.with_frames(z.float().cpu(), schedule=plan.schedule)
