"""World events faster than the semantic frame rate: a one-frame flash (the paper's Fig. 14 failure case, lightning).

A flash brightens one whole frame towards white, ``frame + strength * (255 - frame)``; at 8 fps it lasts 1/8 s, so
an encoder that samples at 4 fps sees it only when it falls on an even frame, and never on an odd one. The captions
do not mention it: whatever carries the flash into a generated video must come from the plan or the VAE latents.

* ``add_flash`` draws one; ``flash_amplitude`` / ``flash_trace`` read one back from pixels (mean luminance against the
  neighbouring frames), so real, reconstructed and generated clips are scored alike.
* ``FlashWorld`` / ``write_flash_dataset``: shapes-world clips where a flash happens with probability ``p`` at a
  random frame; the flash frame of every clip is recorded in ``flash.json`` next to the videos.

Frames are uint8 ``[T, H, W, 3]`` (the ``video_io`` convention).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .world import ShapesWorld

FLASH_STRENGTH = 0.6  # fraction of the way to white: a dark background jumps by ~150 levels of 255
LUMA = np.asarray([0.299, 0.587, 0.114], np.float32)  # Rec. 601 luma weights


def add_flash(frames: np.ndarray, index: int, strength: float = FLASH_STRENGTH) -> np.ndarray:
    """A copy of frames uint8 [T, H, W, 3] whose frame `index` is brightened towards white by `strength`."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or not 0 <= index < len(frames):
        raise ValueError(f"need frames [T, H, W, 3] and 0 <= index < T, got {frames.shape} and index {index}")
    out = frames.copy()
    f = out[index].astype(np.float32)
    out[index] = np.rint(f + strength * (255.0 - f)).astype(np.uint8)
    return out


def luminance(frames) -> np.ndarray:
    """Mean luma of each frame: float [T] in 0..255."""
    x = np.asarray(frames, np.float32)
    return (x @ LUMA).mean(axis=(1, 2))


def flash_trace(frames) -> np.ndarray:
    """Per frame: its mean luma minus the mean of its neighbours' (one neighbour at the ends): float [T].

    A one-frame flash is a spike of about strength * (255 - background) at its frame (and a dip of half that at
    its two neighbours); smooth motion of a small shape stays within a few levels.
    """
    y = luminance(frames)
    if len(y) < 2:
        raise ValueError(f"need at least 2 frames, got {len(y)}")
    prev = np.concatenate([y[1:2], y[:-1]])  # frame 0's "previous" is frame 1
    nxt = np.concatenate([y[1:], y[-2:-1]])
    return y - 0.5 * (prev + nxt)


def flash_amplitude(frames, index: int, tolerance: int = 1) -> float:
    """The largest flash_trace value within `tolerance` frames of `index` (a flash drawn a frame early or late still
    counts: a plan token spans several frames, so it cannot place a flash to the frame)."""
    trace = flash_trace(frames)
    lo, hi = max(0, index - tolerance), min(len(trace), index + tolerance + 1)
    return float(trace[lo:hi].max())


@dataclass
class FlashWorld(ShapesWorld):
    """ShapesWorld whose clips flash with probability `p` at one random frame (1 .. T-1, or only odd frames:
    the ones a sampler at half the frame rate never sees). Items gain `flash`: the frame index or None."""

    p: float = 0.5
    odd_only: bool = False

    def flash_index(self, i: int, num_frames: int) -> int | None:
        """The flash frame of item i (deterministic from seed and i), or None."""
        rng = np.random.default_rng([self.seed, 99, i])
        if rng.random() >= self.p:
            return None
        choices = np.arange(1, num_frames, 2) if self.odd_only else np.arange(1, num_frames)
        return int(rng.choice(choices))

    def __getitem__(self, i: int) -> dict:
        item = super().__getitem__(i)
        k = self.flash_index(int(i), len(item["frames"]))
        if k is not None:
            item["frames"] = add_flash(item["frames"], k)
        return {**item, "flash": k}


def write_flash_dataset(folder, n: int, seed: int = 0, p: float = 0.5, lossless: bool = True, **kwargs) -> dict:
    """Write n FlashWorld clips as NNNNNN.mp4 + .txt into `folder` and flash.json ({file name: index or None})."""
    from ..video_io import write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    world = FlashWorld(n, seed=seed, p=p, **kwargs)
    flashes = {}
    for i in range(n):
        item = world[i]
        path = folder / f"{i:06d}.mp4"
        write_video(path, item["frames"], fps=world.fps, lossless=lossless)
        path.with_suffix(".txt").write_text(item["caption"] + "\n", encoding="utf-8")
        flashes[path.name] = item["flash"]
    (folder / "flash.json").write_text(json.dumps(flashes, indent=0))
    return flashes
