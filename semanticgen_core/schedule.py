"""Prompt schedules: a long video from several prompts, each from a start time.

A schedule is a list of (start_seconds, prompt), starting at 0 with strictly increasing starts. Written as text, one
entry per `--prompt` flag or per caption line: `START: prompt` (seconds, e.g. `6: the red square moves up`); an entry
without a time starts at 0, so a single plain prompt is a one-entry schedule. A training caption file with several
lines in this syntax gives per-segment captions; a single line stays one caption for the whole clip, verbatim.

Frames take the text of the segment holding their time: `segment_ids(starts, times)`. The times of latent and plan
frames are `latent_frame_times` (causal VAE: latent 0 is video frame 0, latent i >= 1 covers frames 4i-3..4i) and
`plan_frame_times` (semantic frame j covers encoder frames j*tp .. (j+1)*tp - 1); each frame sits at its centre.
"""

from __future__ import annotations

import re

import torch

from .config import SemanticSpec, VideoSpec

PromptSchedule = list[tuple[float, str]]

_TIMED = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*s?\s*:\s*(.*)$", re.DOTALL)


class ScheduleError(ValueError):
    """A prompt schedule that cannot be used (bad time, times not increasing, empty prompt)."""


# ----------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------


def parse_entry(text: str) -> tuple[float | None, str]:
    """`'6: the square moves up'` -> (6.0, 'the square moves up'); `'a red square'` -> (None, 'a red square').

    Only a leading number (optionally with `s`) followed by a colon is a time: `'scene: a dog'` is a plain prompt.
    """
    m = _TIMED.match(text)
    if m is None:
        return None, text.strip()
    return float(m.group(1)), m.group(2).strip()


def parse_schedule(entries: str | list[str], what: str = "--prompt") -> PromptSchedule:
    """[(start, prompt), ...] from prompt entries (one str is one entry); errors name the bad entry via `what`."""
    entries = [entries] if isinstance(entries, str) else list(entries)
    if not entries:
        raise ScheduleError(f"{what}: no prompt given")
    out: PromptSchedule = []
    for text in entries:
        start, prompt = parse_entry(text)
        start = 0.0 if start is None else start
        if not prompt:
            raise ScheduleError(f"{what} {text!r}: the prompt is empty")
        if not out and start != 0:
            raise ScheduleError(
                f"{what} {text!r}: the first prompt must start at 0 (give it no time, or '0: ...'), got {start:g} s"
            )
        if out and start <= out[-1][0]:
            raise ScheduleError(
                f"{what} {text!r}: starts at {start:g} s, but prompts must start at increasing times (the one "
                f"before starts at {out[-1][0]:g} s); write later prompts as 'SECONDS: prompt'"
            )
        out.append((start, prompt))
    return out


def parse_caption(text: str, what: str = "caption") -> PromptSchedule:
    """A caption file's text: several non-empty lines = a schedule; a single line = one caption, verbatim."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return [(0.0, lines[0] if lines else "")]
    return parse_schedule(lines, what)


def format_schedule(schedule: PromptSchedule) -> str:
    """The text form (one `START: prompt` line each), which `parse_caption` reads back."""
    return "\n".join(f"{start:g}: {prompt}" for start, prompt in schedule)


def check_schedule(schedule: PromptSchedule, seconds: float | None = None, what: str = "schedule") -> None:
    """Starts at 0, strictly increasing, and (with `seconds`) every prompt starting before the video ends."""
    starts = [s for s, _ in schedule]
    if not starts or starts[0] != 0 or any(b <= a for a, b in zip(starts, starts[1:])):
        raise ScheduleError(f"{what}: starts {starts} must begin at 0 and increase")
    if seconds is not None and starts[-1] >= seconds:
        raise ScheduleError(
            f"{what}: the prompt {schedule[-1][1]!r} starts at {starts[-1]:g} s, but the video lasts {seconds:g} s"
        )


# ----------------------------------------------------------------------------------------------------------------
# Frames -> segments
# ----------------------------------------------------------------------------------------------------------------


def segment_ids(starts, times: torch.Tensor) -> torch.Tensor:
    """Segment of each time: the last start <= time. starts: [G] (or [B, G], +inf for padding); times: [T].

    Returns int64 [T] (or [B, T]).
    """
    starts = torch.as_tensor(starts, dtype=torch.float64)
    times = torch.as_tensor(times, dtype=torch.float64)
    if starts.ndim == 1:
        return (torch.searchsorted(starts, times + 1e-9, right=True) - 1).clamp(min=0)
    t = times.expand(starts.shape[0], -1).contiguous()
    return (torch.searchsorted(starts.contiguous(), t + 1e-9, right=True) - 1).clamp(min=0)


def latent_frame_times(num_frames: int, video: VideoSpec) -> torch.Tensor:
    """Centre times (s) [T] of latent frames: latent 0 is video frame 0, latent i covers tf frames up to tf * i."""
    i = torch.arange(num_frames, dtype=torch.float64)
    centre = torch.where(i > 0, video.temporal_factor * i - (video.temporal_factor - 1) / 2, torch.zeros(()))
    return centre / video.fps


def plan_frame_times(num_frames: int, spec: SemanticSpec) -> torch.Tensor:
    """Centre times (s) [T_s] of semantic frames: frame j covers encoder frames j * tp .. (j + 1) * tp - 1."""
    j = torch.arange(num_frames, dtype=torch.float64)
    return ((j + 0.5) * spec.temporal_patch - 0.5) / spec.fps
