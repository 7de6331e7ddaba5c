"""Tests for semanticgen_core.video_io: tiny media made with PyAV in tmp_path (64x48, 1-3 s)."""

import os
import wave
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from semanticgen_core.video_io import (
    VideoReadError,
    center_crop,
    iter_video,
    read_video,
    resize_center_crop,
    resize_frames,
    to_float,
    to_uint8,
    video_info,
    write_video,
)

H, W = 48, 64


def level(i: int) -> int:
    """Grey level that encodes frame index i (survives lossy compression)."""
    return 10 + 8 * i


def index_of(frame: np.ndarray) -> int:
    """Recover the frame index from a decoded frame's mean brightness."""
    return round((float(frame.mean()) - 10) / 8)


def make_video(path, n=20, fps=10, codec="libx264", pix_fmt="yuv420p", pts_ms=None, options=None, gop=None):
    """Write n grey frames (frame i at level(i)); with pts_ms, use time_base 1/1000 and those pts (VFR)."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=None if pts_ms else fps)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        stream.options = options or {}
        if gop:
            stream.codec_context.gop_size = gop
        if pts_ms:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        for i in range(len(pts_ms) if pts_ms else n):
            frame = av.VideoFrame.from_ndarray(np.full((H, W, 3), level(i), np.uint8), format="rgb24")
            if pts_ms:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def smooth_video(t=20, h=H, w=W) -> np.ndarray:
    """Gradients plus a coloured block that moves with t: easy to compress, easy to compare."""
    y, x = np.mgrid[0:h, 0:w]
    frames = np.zeros((t, h, w, 3), np.uint8)
    for i in range(t):
        frames[i, ..., 0] = x * 255 // max(w - 1, 1)
        frames[i, ..., 1] = y * 255 // max(h - 1, 1)
        frames[i, ..., 2] = 40 + 8 * i
        frames[i, 8:24, 2 * i : 2 * i + 16] = (230, 40, 40)
    return frames


# ----------------------------------------------------------------------------------------------------- writing


def test_write_read_roundtrip_mp4(tmp_path):
    frames = smooth_video()
    path = tmp_path / "out.mp4"
    write_video(path, frames, fps=12)
    assert os.listdir(tmp_path) == ["out.mp4"]  # no temp file left behind
    back = read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - frames).mean() < 4
    info = video_info(path)
    assert info["fps"] == pytest.approx(12) and info["num_frames"] == 20
    assert (info["width"], info["height"], info["codec"]) == (W, H, "h264")
    assert info["duration"] == pytest.approx(20 / 12, abs=0.1)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert len(read_video(path, fps=6)) == 10 and len(read_video(path, fps=24)) == 40


def test_write_odd_size_from_generator_with_float_fps(tmp_path):
    frames = smooth_video(t=12, h=47, w=63)
    path = tmp_path / "odd.mp4"
    write_video(path, (f for f in frames), fps=29.97)
    back = read_video(path)
    assert back.shape == (12, 48, 64, 3)  # padded to even by repeating the last row / column
    assert np.abs(back[:, :47, :63].astype(int) - frames).mean() < 4
    assert np.abs(back[:, 47].astype(int) - back[:, 46]).mean() < 4
    assert np.abs(back[:, :, 63].astype(int) - back[:, :, 62]).mean() < 4
    with av.open(str(path)) as c:
        assert c.streams.video[0].average_rate == Fraction(2997, 100)


def test_write_validation(tmp_path):
    path = tmp_path / "bad.mp4"
    frames = list(smooth_video(t=5))
    with pytest.raises(ValueError, match="uint8"):
        write_video(path, np.zeros((3, H, W, 3), np.float32), fps=10)
    with pytest.raises(ValueError, match=r"frame 3 has shape \(40, 64, 3\).*expected \(48, 64, 3\) uint8"):
        write_video(path, frames[:3] + [frames[3][:40]], fps=10)
    with pytest.raises(ValueError, match="frame 0"):
        write_video(path, [np.zeros((H, W), np.uint8)], fps=10)
    with pytest.raises(ValueError, match="no frames"):
        write_video(path, [], fps=10)
    for fps in (0, -1, float("nan")):
        with pytest.raises(ValueError, match="fps"):
            write_video(path, frames, fps=fps)
    assert os.listdir(tmp_path) == []


def test_failed_write_is_atomic(tmp_path):
    def broken():
        yield from smooth_video(t=2)
        raise RuntimeError("decoder died")

    path = tmp_path / "clip.mp4"
    with pytest.raises(RuntimeError, match="decoder died"):
        write_video(path, broken(), fps=10)
    assert os.listdir(tmp_path) == []  # neither the target nor a temp file
    path.write_bytes(b"previous contents")
    with pytest.raises(RuntimeError, match="decoder died"):
        write_video(path, broken(), fps=10)
    assert os.listdir(tmp_path) == ["clip.mp4"] and path.read_bytes() == b"previous contents"
    write_video(path, smooth_video(t=3), fps=10)  # a successful write replaces it
    assert os.listdir(tmp_path) == ["clip.mp4"] and len(read_video(path)) == 3


def test_same_frames_same_bytes(tmp_path):
    """libx264 wrote different files for the same frames after torch work in the process (4 of 8 differed)."""
    t, (y, x) = np.arange(17)[:, None, None], np.mgrid[:64, :64]
    disc = (x[None] - 10 - 2.5 * t) ** 2 + (y[None] - 32) ** 2 < 100  # a disc moving right over a gradient
    frames = np.zeros((17, 64, 64, 3), np.uint8)
    frames[..., 0] = np.where(disc, 220, 30 + x[None] * 2)
    frames[..., 1] = np.where(disc, 40, 60 + y[None])
    files = set()
    for i in range(4):
        a = torch.randn(300, 300, generator=torch.Generator().manual_seed(i))
        for _ in range(10):
            a = a @ a / 300
        write_video(tmp_path / "a.mp4", iter(frames) if i % 2 else frames, fps=8)
        files.add((tmp_path / "a.mp4").read_bytes())
    assert len(files) == 1


# ----------------------------------------------------------------------------------------------------- reading

FORMATS = {
    "gif": ("a.gif", "gif", "rgb8", None),
    "mov": ("a.mov", "mpeg4", "yuv420p", None),
    "webm": ("a.webm", "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
    "mkv": ("a.mkv", "libx264", "yuv420p", None),
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_read_formats(tmp_path, kind):
    name, codec, pix_fmt, options = FORMATS[kind]
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV build has no {codec} encoder")
    path = make_video(tmp_path / name, n=20, fps=10, codec=codec, pix_fmt=pix_fmt, options=options)
    frames = read_video(path)
    assert frames.shape == (20, H, W, 3) and frames.dtype == np.uint8
    assert [index_of(f) for f in frames] == list(range(20))
    assert [index_of(f) for f in read_video(path, fps=5)] == list(range(0, 20, 2))
    assert [index_of(f) for f in iter_video(path, fps=4, start=1.25, duration=0.5)] == [12, 15]
    info = video_info(path)
    assert info["fps"] == pytest.approx(10) and (info["width"], info["height"]) == (W, H)
    assert info["duration"] == pytest.approx(2.0, abs=0.15)


def test_variable_frame_rate_sampled_by_pts(tmp_path):
    pts_ms = [0, 100, 350, 400, 800]
    path = make_video(tmp_path / "vfr.mp4", pts_ms=pts_ms)
    assert [index_of(f) for f in read_video(path)] == [0, 1, 2, 3, 4]
    got = [index_of(f) for f in read_video(path, fps=20)]
    # sample k shows time 50k ms: the last frame whose pts <= 50k ms
    expected = [max(i for i, p in enumerate(pts_ms) if p <= 50 * k) for k in range(17)]
    assert got[:17] == expected == [0, 0, 1, 1, 1, 1, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4]
    assert set(got[17:]) <= {4}


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_first_pts_not_zero(tmp_path, ext):
    path = make_video(tmp_path / f"late.{ext}", pts_ms=[500, 600, 700, 800])
    with av.open(str(path)) as c:
        assert next(c.decode(video=0)).time == pytest.approx(0.5)  # the offset survives muxing
    assert [index_of(f) for f in read_video(path, fps=10)] == [0, 1, 2, 3]
    assert [index_of(f) for f in read_video(path, fps=20, start=0.1)] == [1, 1, 2, 2, 3, 3]
    assert [index_of(f) for f in read_video(path, start=0.15)] == [2, 3]


def test_window_max_frames_and_seek(tmp_path):
    path = make_video(tmp_path / "gop.mp4", n=30, fps=10, gop=5)  # keyframes every 0.5 s: start >= 1 s seeks
    assert [index_of(f) for f in read_video(path, start=1.25)] == list(range(13, 30))
    assert [index_of(f) for f in read_video(path, start=1.25, fps=10)] == list(range(12, 30))
    assert [index_of(f) for f in read_video(path, start=2.2, fps=4, duration=1.0)] == [22, 24, 27, 29]
    assert [index_of(f) for f in read_video(path, fps=2, max_frames=3)] == [0, 5, 10]
    assert read_video(path, max_frames=0).shape == (0, H, W, 3)
    assert read_video(path, start=10.0).shape == (0, H, W, 3)  # window past the end: empty, not an error
    it = iter_video(path, fps=10)
    assert next(it).shape == (H, W, 3)
    it.close()
    with pytest.raises(ValueError, match="fps"):
        read_video(path, fps=0)


def test_unreadable_inputs_raise_video_read_error(tmp_path):
    good = tmp_path / "good.mp4"
    write_video(good, np.random.default_rng(0).integers(0, 255, (10, H, W, 3), dtype=np.uint8), fps=10)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 20)
    (tmp_path / "trunc.mp4").write_bytes(good.read_bytes()[:200])
    with wave.open(str(tmp_path / "audio.wav"), "wb") as wav:  # a valid media file without video
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\0\0" * 800)
    for name, reason in [
        ("missing.mp4", "does not exist"),
        ("empty.mp4", "empty"),
        ("text.mp4", "not a readable video file"),
        ("trunc.mp4", "no video stream|not a readable|no video frames"),
        ("audio.wav", "no video stream"),
    ]:
        path = tmp_path / name
        for fn in (read_video, iter_video, video_info):
            with pytest.raises(VideoReadError, match=reason) as info:
                fn(path)
            assert str(path) in str(info.value) and isinstance(info.value, ValueError)


def test_truncated_file_returns_decoded_prefix(tmp_path):
    path = tmp_path / "noise.mp4"
    write_video(path, np.random.default_rng(0).integers(0, 255, (30, H, W, 3), dtype=np.uint8), fps=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoReadError, match=r"cut.mp4.*(truncated: frames end at|decoding failed)"):
        read_video(cut)  # never a silently shorter video
    with pytest.raises(VideoReadError, match="truncated|decoding failed"):
        read_video(cut, fps=5)
    with pytest.warns(RuntimeWarning, match=r"returning the \d\.\d\d s"):
        frames = read_video(cut, partial=True)  # moov is at the front (faststart): the first half still decodes
    assert 0 < len(frames) < 30 and frames.shape[1:] == (H, W, 3)
    assert len(read_video(cut, max_frames=3)) == 3  # what was asked for is there: no error


# ----------------------------------------------------------------------------------------------------- helpers


def test_resize_crop_and_conversions():
    frames = smooth_video(t=3)
    for resample in ("nearest", "bilinear", "bicubic", "lanczos"):
        out = resize_frames(frames, 24, 40, resample=resample)
        assert out.shape == (3, 24, 40, 3) and out.dtype == np.uint8
    crop = center_crop(frames, 32, 32)
    assert crop.shape == (3, 32, 32, 3) and np.array_equal(crop, frames[:, 8:40, 16:48])
    out = resize_center_crop(frames, 32, 32)  # 48x64 -> 32x43 -> crop 32x32
    assert out.shape == (3, 32, 32, 3) and out.dtype == np.uint8
    assert resize_center_crop(frames, 96, 40).shape == (3, 96, 40, 3)  # upscale to cover, then crop the width
    x = to_float(frames)
    assert x.shape == (3, 3, H, W) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert np.array_equal(to_uint8(x), frames)
    assert to_uint8(torch.full((1, 3, 2, 2), 2.0)).max() == 255
    with pytest.raises(ValueError, match="cannot center-crop"):
        center_crop(frames, 64, 64)
    with pytest.raises(ValueError, match="resample"):
        resize_frames(frames, 8, 8, resample="cubic")
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        to_float(frames[0])
