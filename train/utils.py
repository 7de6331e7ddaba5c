"""Small shared helpers: dataclass fields that carry their CLI help, and atomic file writes."""

from __future__ import annotations

import argparse
import io
import os
import tempfile
from dataclasses import MISSING, field, fields
from pathlib import Path

from PIL import Image, ImageDraw


def opt(default, help: str):
    """A dataclass field whose comment is its CLI help (one text, so the two cannot drift)."""
    return field(default=default, metadata={"help": help})


def add_dataclass_args(parser: argparse.ArgumentParser, cls, defaults: dict | None = None) -> None:
    """One `--kebab-name` flag per field of `cls` (bools: `--name` / `--no-name`), help from the field."""
    defaults = defaults or {}
    for f in fields(cls):
        default = defaults.get(f.name, f.default if f.default is not MISSING else None)
        flag, help_ = "--" + f.name.replace("_", "-"), f.metadata.get("help", "")
        if isinstance(default, bool):
            parser.add_argument(flag, default=default, action=argparse.BooleanOptionalAction, help=help_)
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"{help_} (default: {default})")


def from_args(cls, args: argparse.Namespace):
    """An instance of dataclass `cls` from the parsed flags of `add_dataclass_args`."""
    return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write through a temp file in the same folder + rename: readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """atomic_write_bytes for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def plot_losses(points: list[tuple[int, float]], path: str | Path, title: str = "loss") -> None:
    """Loss curve PNG (PIL, no matplotlib): raw losses in grey, a running mean in blue, min/max labelled."""
    w, h, left, right, top, bottom = 800, 400, 70, 20, 30, 40
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    draw.rectangle([left, top, w - right, h - bottom], outline="black")
    if points:
        steps = [float(s) for s, _ in points]
        losses = [float(v) for _, v in points]
        smooth, acc = [], losses[0]
        for v in losses:
            acc = 0.9 * acc + 0.1 * v
            smooth.append(acc)
        s0, s1 = steps[0], max(steps[-1], steps[0] + 1)
        lo, hi = min(losses), max(losses)
        hi = hi if hi > lo else lo + 1e-8

        def xy(s, v):
            return (
                left + (s - s0) / (s1 - s0) * (w - left - right),
                h - bottom - (v - lo) / (hi - lo) * (h - top - bottom),
            )

        for series, colour in ((losses, (170, 170, 170)), (smooth, (30, 80, 200))):
            pts = [xy(s, v) for s, v in zip(steps, series)]
            draw.line(pts if len(pts) > 1 else pts * 2, fill=colour, width=2)
        draw.text((5, top), f"{hi:.4g}", fill="black")
        draw.text((5, h - bottom - 10), f"{lo:.4g}", fill="black")
        draw.text((left, h - bottom + 8), f"step {int(s0)}", fill="black")
        draw.text((w - right - 90, h - bottom + 8), f"step {int(steps[-1])}", fill="black")
    draw.text((left, 8), title, fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
