"""Video file I/O with PyAV: decode any video to uint8 RGB frames, write H.264 mp4 atomically, resize/crop helpers.

Conventions:

* A video in memory is a ``np.ndarray`` of dtype ``uint8`` and shape ``[T, H, W, 3]`` (RGB); one frame is ``[H, W, 3]``.
* Times are seconds relative to the first decoded frame's presentation timestamp (pts), so a stream whose first
  pts is not 0 behaves like one that starts at 0.
* With ``fps`` given, output frame ``k`` shows time ``start + k / fps``: it is the last decoded frame whose time is
  ``<=`` that instant (frames repeat when ``fps`` is above the source rate, and are dropped when below). This is
  exact for variable-frame-rate files. The last frame is held for the interval between the last two frames.
* Every failure to read a file (missing, empty, not a video, truncated, no frames) raises :class:`VideoReadError`,
  a ``ValueError`` whose message names the file and the reason. A file that breaks after some frames were decoded,
  or whose frames end before its container says the video does, raises too; with ``partial=True`` it returns the
  frames that decode and warns with their length. A video is never silently shorter.
* :func:`write_video` encodes libx264 / yuv420p mp4 (moov atom first, "faststart") into a temp file in the target
  folder and then ``os.replace``-s it, so ``path`` holds either the complete new video or whatever it held before.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import numbers
import os
import uuid
import warnings
from collections.abc import Iterable, Iterator
from fractions import Fraction

import av
import numpy as np
import torch
from PIL import Image

_SEEK_MIN_S = 1.0  # for start >= this, seek to the keyframe before `start` instead of decoding from the beginning


class VideoReadError(ValueError):
    """A video file could not be read; the message names the file and the reason."""


def _fail(path: str, reason: str, err: BaseException | None = None) -> VideoReadError:
    """Build the VideoReadError for `path`, adding the short text (strerror) of the av/OS error `err` if given."""
    if err is not None:
        reason += f" ({getattr(err, 'strerror', None) or err or type(err).__name__})"
    return VideoReadError(f"cannot read video '{path}': {reason}")


# ----------------------------------------------------------------------------------------------------- reading


def _open(path: str):
    """Open `path`; return (container, first video stream) or raise VideoReadError."""
    if not os.path.isfile(path):
        raise _fail(path, "not a regular file" if os.path.exists(path) else "file does not exist")
    if os.path.getsize(path) == 0:
        raise _fail(path, "file is empty (0 bytes)")
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.error.FFmpegError, OSError) as err:
        raise _fail(path, "not a readable video file", err) from err
    if not container.streams.video:
        container.close()
        raise _fail(path, "file has no video stream (it may be audio-only, truncated or corrupt)")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    return container, stream


def _decode(container, stream, path: str) -> Iterator[av.VideoFrame]:
    """Decode `stream` from the container's current position; av errors become VideoReadError."""
    try:
        yield from container.decode(stream)
    except (av.error.FFmpegError, OSError) as err:
        raise _fail(path, "decoding failed", err) from err


def _seek(container, stream, path: str, pts: int, pts0: int) -> Iterator[av.VideoFrame]:
    """Jump to the keyframe at or before `pts`; if that fails or overshoots, restart at pts0 and skip it."""
    with contextlib.suppress(av.error.FFmpegError, VideoReadError):  # any problem: fall back to the start
        container.seek(pts, stream=stream, backward=True)
        frames = _decode(container, stream, path)
        head = next(frames, None)
        if head is not None and head.pts is not None and head.pts <= pts:
            return itertools.chain([head], frames)
        frames.close()
    try:
        container.seek(pts0, stream=stream, backward=True)
    except av.error.FFmpegError as err:
        raise _fail(path, "seeking failed", err) from err
    return (f for f in _decode(container, stream, path) if f.pts is None or f.pts > pts0)


def _timed(
    container, stream, path: str, start: Fraction, partial: bool, info: dict
) -> Iterator[tuple[Fraction, av.VideoFrame]]:
    """Yield (seconds since the first frame, frame) in presentation order; frames before `start` may be skipped.
    A decoding error after the first frame raises, or with `partial` warns and ends the frames there. Sets
    info["first_s"] to the first frame's own timestamp in seconds."""
    frames = _decode(container, stream, path)
    first = next(frames, None)  # a failure here (nothing decoded yet) propagates as VideoReadError
    if first is None:
        raise _fail(path, "no video frames could be decoded")
    pts0, tb = first.pts, first.time_base or stream.time_base
    step = 1 / Fraction(stream.average_rate or stream.guessed_rate or 25)
    info["first_s"] = float(pts0 * tb) if pts0 is not None and tb else 0.0
    yield Fraction(0), first
    t = Fraction(0)
    try:
        if start >= _SEEK_MIN_S and pts0 is not None and tb:
            frames.close()
            frames = _seek(container, stream, path, pts0 + math.floor(start / tb), pts0)
        for frame in frames:
            t = (frame.pts - pts0) * tb if frame.pts is not None and pts0 is not None and tb else t + step
            yield t, frame
    except VideoReadError as err:
        if not partial:
            raise VideoReadError(f"{err} after {float(t):.2f} s (pass partial=True to keep what decodes)") from err
        warnings.warn(f"{err}; returning the {float(t):.2f} s decoded before the error", RuntimeWarning, stacklevel=3)


def _declared_seconds(container, stream) -> float | None:
    """The video's length as its container declares it, or None when it does not say."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


def _check_complete(container, stream, path: str, end: Fraction, step: Fraction, partial: bool, info: dict) -> None:
    """Frames that end (at `end` s after the first frame) before the container says the video does mean a truncated
    file. Containers count the length from 0 or from the first frame (mkv vs mp4): only a shortfall either way is."""
    declared = _declared_seconds(container, stream)
    end_abs = float(end) + max(0.0, info.get("first_s", 0.0))
    if declared is None or end_abs >= declared - 2 * float(step) - 0.05:  # two frames of slack for rounding
        return
    msg = (
        f"cannot read video '{path}': truncated: frames end at {float(end):.2f} s, the container says {declared:.2f} s"
    )
    if not partial:
        raise VideoReadError(msg + " (pass partial=True to keep what decodes)")
    warnings.warn(msg + f"; returning the {float(end):.2f} s decoded", RuntimeWarning, stacklevel=4)


def _check_read_args(fps, start, duration, max_frames) -> None:
    """Validate the sampling arguments shared by read_video and iter_video."""
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number or None, got {fps!r}")
    if not (math.isfinite(start) and start >= 0):
        raise ValueError(f"start must be >= 0 seconds, got {start!r}")
    if duration is not None and not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be > 0 seconds or None, got {duration!r}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0 or None, got {max_frames!r}")


def iter_video(
    path,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    max_frames: int | None = None,
    partial: bool = False,
) -> Iterator[np.ndarray]:
    """Yield uint8 [H, W, 3] RGB frames one at a time (same sampling as read_video); opens the file eagerly."""
    _check_read_args(fps, start, duration, max_frames)
    path = os.fspath(path)
    container, stream = _open(path)  # errors in opening surface here, not on first next()
    return _sample(container, stream, path, fps, start, duration, max_frames, partial)


def _sample(container, stream, path, fps, start, duration, max_frames, partial) -> Iterator[np.ndarray]:
    """Generator behind iter_video: pick frames by presentation time and convert them to RGB arrays."""
    start = Fraction(float(start)).limit_denominator(10**6)
    limit = None if duration is None else start + Fraction(float(duration)).limit_denominator(10**6)
    size: dict = {}  # every output frame gets the first output frame's size (streams may change resolution)

    def rgb(frame: av.VideoFrame) -> np.ndarray:
        size.setdefault("width", frame.width)
        size.setdefault("height", frame.height)
        return frame.to_ndarray(format="rgb24", **size)

    try:
        info: dict = {}
        timed = _timed(container, stream, path, start, partial, info)
        if fps is None:  # every decoded frame with start <= time < start + duration
            count, last_t = 0, Fraction(0)
            for last_t, frame in timed:
                if count == max_frames or (limit is not None and last_t >= limit):
                    return
                if last_t >= start:
                    yield rgb(frame)
                    count += 1
            period = 1 / Fraction(stream.average_rate or stream.guessed_rate or 25)
            if limit is None or limit > last_t + period:  # the frames ran out before the asked span did
                _check_complete(container, stream, path, last_t + period, period, partial, info)
            return

        step, k = 1 / Fraction(float(fps)).limit_denominator(1001), 0

        def done(target: Fraction) -> bool:
            return k == max_frames or (limit is not None and target >= limit)

        prev, prev_t, before_t = None, Fraction(0), None
        for t, frame in timed:
            # `prev` is shown from prev_t until t: it is the answer for every sample time in [prev_t, t).
            while prev is not None and (target := start + k * step) < t and not done(target):
                yield rgb(prev)
                k += 1
            if prev is not None and done(start + k * step):
                return
            prev, prev_t, before_t = frame, t, prev_t if prev is not None else None
        hold = prev_t - before_t if before_t is not None and prev_t > before_t else step
        if limit is None or limit > prev_t + hold:  # the frames ran out before the asked span did
            _check_complete(container, stream, path, prev_t + hold, hold, partial, info)
        while (target := start + k * step) < prev_t + hold and not done(target):
            yield rgb(prev)
            k += 1
    finally:
        container.close()


def read_video(
    path,
    fps: float | None = None,
    start: float = 0.0,
    duration: float | None = None,
    max_frames: int | None = None,
    partial: bool = False,
) -> np.ndarray:
    """Decode `path` into a uint8 [T, H, W, 3] RGB array; fps=None keeps every frame, else sample by pts at `fps`.

    A file whose frames end before its container says (truncated) raises VideoReadError; with partial=True it
    warns with the decoded length and returns what decodes."""
    frames = list(iter_video(path, fps=fps, start=start, duration=duration, max_frames=max_frames, partial=partial))
    if frames:
        return np.stack(frames)
    info = video_info(path)  # an empty window (e.g. start past the end) is not an error
    return np.zeros((0, info["height"], info["width"], 3), np.uint8)


def video_info(path) -> dict:
    """Header facts: fps (average), duration (s), width, height, num_frames (estimate), codec."""
    path = os.fspath(path)
    container, stream = _open(path)
    with container:
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = (container.duration or 0) / av.time_base
        ctx = stream.codec_context
        num_frames = stream.frames or round(duration * fps)
        size = {"width": ctx.width, "height": ctx.height}
        return dict(fps=fps, duration=duration, **size, num_frames=int(num_frames), codec=ctx.name)


# ----------------------------------------------------------------------------------------------------- writing


def _check_frame(frame, index: int, hw: tuple[int, int] | None) -> np.ndarray:
    """Return `frame` as a contiguous uint8 [H, W, 3] array or raise ValueError naming the frame."""
    arr = np.asarray(frame)
    expected = f"({hw[0]}, {hw[1]}, 3)" if hw else "(H, W, 3)"
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3 or 0 in arr.shape or (hw and arr.shape[:2] != hw):
        raise ValueError(f"frame {index} has shape {arr.shape} and dtype {arr.dtype}, expected {expected} uint8")
    return np.ascontiguousarray(arr)


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """Pad [H, W, 3] to even H and W by repeating the last row / column (yuv420p needs even sizes)."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)  # from_ndarray of a strided view (e.g. a permuted tensor) misread rows here


def _encode(out, frames: Iterable, rate: Fraction, crf: int, lossless: bool = False) -> None:
    """Encode validated frames into the open output container as libx264 / yuv420p (lossless: libx264rgb, RGB)."""
    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("write_video got no frames to write")
    first = _check_frame(first, 0, None)
    hw = first.shape[:2]
    stream = out.add_stream("libx264rgb" if lossless else "libx264", rate=rate)
    stream.height, stream.width = hw[0] + hw[0] % 2, hw[1] + hw[1] % 2
    stream.pix_fmt = "rgb24" if lossless else "yuv420p"
    # Same frames, same bytes. Measured: with x264's defaults (or even threads=1) the same frames gave different
    # files after torch work in the same process (4 distinct files in 8 writes); its macroblock tree (mbtree) is the
    # sensitive part: mbtree=0 gave one file in 16 writes. One thread on top, so scheduling cannot enter either.
    stream.thread_count = 1
    stream.options = {"crf": "0" if lossless else str(crf), "threads": "1",
                      "x264-params": "threads=1:lookahead-threads=1:mbtree=0"}  # fmt: skip
    for i, frame in enumerate(itertools.chain([first], it)):
        vf = av.VideoFrame.from_ndarray(_pad_even(_check_frame(frame, i, hw)), format="rgb24")
        vf.pts, vf.time_base = i, 1 / rate
        out.mux(stream.encode(vf))
    out.mux(stream.encode(None))


def write_video(path, frames, fps: float, crf: int = 18, lossless: bool = False) -> None:
    """Write uint8 [T, H, W, 3] frames (array or iterable of [H, W, 3]) to H.264 mp4 atomically.

    `lossless` writes RGB H.264 (libx264rgb, qp 0): the frames come back bit-exact, with no 4:2:0 chroma blur at the
    edges of small objects (training data); players that only take yuv420p may not show it.
    Odd heights/widths are padded to even by repeating the last row/column, so a 63x47 input gives a 64x48 video.
    """
    if isinstance(frames, np.ndarray) and (frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8):
        raise ValueError(f"frames must be a uint8 array of shape [T, H, W, 3], got {frames.shape} {frames.dtype}")
    if isinstance(fps, bool) or not isinstance(fps, numbers.Real) or not (math.isfinite(fps) and fps >= 1 / 1001):
        raise ValueError(f"fps must be a positive number (>= 1/1001), got {fps!r}")
    rate = Fraction(fps if isinstance(fps, Fraction) else float(fps)).limit_denominator(1001)
    if isinstance(crf, bool) or not (isinstance(crf, numbers.Integral) and 0 <= crf <= 51):
        raise ValueError(f"crf must be an int in [0, 51], got {crf!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(2, f"cannot write video: folder '{folder}' does not exist", path)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "cannot write video: the output path is a folder", path)
    if os.path.lexists(path) and not os.path.isfile(path):  # a device or socket: never replace it
        raise OSError(17, "cannot write video: the output path exists and is not a regular file", path)
    _remove_stale_temps(folder, os.path.basename(path))
    # the temp name holds our pid, so a later write can tell a dead writer's leftover from a live writer's file
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp")
    try:
        try:
            with av.open(tmp, mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
                _encode(out, frames, rate, crf, lossless)
            os.replace(tmp, path)
        except (av.error.FFmpegError, OSError) as err:  # e.g. a full disk: name the file, not the temp name
            reason = getattr(err, "strerror", None) or str(err)
            raise OSError(getattr(err, "errno", None), f"cannot write video: {reason}", path) from err
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _remove_stale_temps(folder: str, name: str) -> None:
    """Delete temp files of earlier writes to `name` whose writing process no longer runs (killed mid-write)."""
    prefix = f".{name}."
    for entry in os.listdir(folder):
        pid = entry[len(prefix) :].split("-", 1)[0]
        if not (entry.startswith(prefix) and entry.endswith(".tmp") and pid.isdigit()):
            continue
        try:
            os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, entry))
        except PermissionError:  # it exists (another user's): leave its file alone
            pass


# ----------------------------------------------------------------------------------------------------- helpers

_RESAMPLE = {name: getattr(Image.Resampling, name.upper()) for name in ("nearest", "bilinear", "bicubic", "lanczos")}
_RESAMPLE.update(box=Image.Resampling.BOX, hamming=Image.Resampling.HAMMING)


def _check_video(frames) -> np.ndarray:
    """Return `frames` as a uint8 [T, H, W, 3] array or raise ValueError."""
    arr = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames of shape [T, H, W, 3], got {arr.shape} {arr.dtype}")
    return arr


def resize_frames(frames, height: int, width: int, resample: str = "bicubic") -> np.ndarray:
    """Resize uint8 [T, H, W, 3] frames to [T, height, width, 3] with PIL (`resample`: nearest ... lanczos)."""
    arr = _check_video(frames)
    if resample not in _RESAMPLE:
        raise ValueError(f"resample must be one of {sorted(_RESAMPLE)}, got {resample!r}")
    out = np.empty((arr.shape[0], height, width, 3), np.uint8)
    for i, frame in enumerate(arr):
        out[i] = np.asarray(Image.fromarray(frame).resize((width, height), _RESAMPLE[resample]))
    return out


def center_crop(frames, height: int, width: int) -> np.ndarray:
    """Crop the central height x width window of uint8 [T, H, W, 3] frames (a copy, [T, height, width, 3])."""
    arr = _check_video(frames)
    h, w = arr.shape[1:3]
    if not (0 < height <= h and 0 < width <= w):
        raise ValueError(f"cannot center-crop {h}x{w} frames to {height}x{width}")
    top, left = (h - height) // 2, (w - width) // 2
    return np.ascontiguousarray(arr[:, top : top + height, left : left + width])


def resample_indices(num_frames: int, src_fps: float, dst_fps: float) -> np.ndarray:
    """Indices of the frames shown at times k / dst_fps in a clip of num_frames at src_fps (as read_video samples)."""
    if src_fps <= 0 or dst_fps <= 0:
        raise ValueError(f"fps must be > 0, got {src_fps} -> {dst_fps}")
    count = math.floor((num_frames - 1) / src_fps * dst_fps + 1e-6) + 1 if num_frames else 0
    return np.minimum(np.floor(np.arange(count) * src_fps / dst_fps + 1e-6).astype(np.int64), num_frames - 1)


def resize_center_crop(frames, height: int, width: int, resample: str = "bicubic") -> np.ndarray:
    """Scale uint8 [T, H, W, 3] frames so height x width is covered (aspect kept), then center-crop to it."""
    h, w = _check_video(frames).shape[1:3]
    scale = max(height / h, width / w)
    new_h, new_w = max(height, round(h * scale)), max(width, round(w * scale))
    return center_crop(resize_frames(frames, new_h, new_w, resample), height, width)


def to_float(frames) -> torch.Tensor:
    """uint8 [T, H, W, 3] frames -> float32 torch tensor [T, 3, H, W] in [0, 1]."""
    arr = _check_video(frames)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float().div_(255).contiguous()


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float [T, 3, H, W] tensor in [0, 1] -> uint8 [T, H, W, 3] numpy array (clamped and rounded)."""
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"expected a float tensor of shape [T, 3, H, W], got {getattr(frames, 'shape', type(frames))}")
    out = (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    return np.ascontiguousarray(out.cpu().numpy())
