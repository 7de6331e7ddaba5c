"""PNG plots of benchmarks/paper_claims.py, drawn with PIL (the project has no matplotlib): curves with interval
bands, interval bars, and grids of frames."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

PALETTE = [(30, 80, 200), (220, 90, 30), (40, 160, 70), (150, 60, 190), (120, 120, 120), (200, 40, 120)]


def _axes(draw, box, lo, hi, ylabel):
    left, top, right, bottom = box
    draw.rectangle(box, outline="black")
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = bottom - (bottom - top) * i / 4
        draw.line([left - 4, y, left, y], fill="black")
        draw.text((4, y - 6), f"{v:.3g}", fill="black")
    draw.text((4, top - 24), ylabel, fill="black")


def line_chart(path: Path, title: str, series: dict[str, list], xlabel: str, ylabel: str, logx: bool = False):
    """series: {label: [(x, y, lo, hi), ...]}; draws each line with its interval as a light band."""
    w, h, box = 720, 380, (70, 50, 560, 330)
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img, "RGBA")
    pts = [p for s in series.values() for p in s if np.isfinite(p[1])]
    xs = [p[0] for p in pts] or [0, 1]
    ys = [v for p in pts for v in (p[2], p[3], p[1]) if np.isfinite(v)] or [0, 1]
    fx = (lambda v: math.log10(max(v, 1e-9))) if logx else float
    x0, x1 = fx(min(xs)), fx(max(xs))
    x1 = x1 if x1 > x0 else x0 + 1
    lo, hi = min(ys), max(ys)
    hi = hi if hi > lo else lo + 1e-6
    left, top, right, bottom = box

    def xy(x, y):
        return left + (fx(x) - x0) / (x1 - x0) * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top)

    _axes(draw, box, lo, hi, ylabel)
    for x in sorted(set(xs)):
        px = xy(x, lo)[0]
        draw.line([px, bottom, px, bottom + 4], fill="black")
        draw.text((px - 12, bottom + 6), f"{x:g}", fill="black")
    draw.text(((left + right) / 2 - 30, bottom + 24), xlabel, fill="black")
    for i, (label, s) in enumerate(series.items()):
        col = PALETTE[i % len(PALETTE)]
        s = sorted(p for p in s if np.isfinite(p[1]))
        if not s:
            continue
        band = [xy(p[0], p[3]) for p in s] + [xy(p[0], p[2]) for p in reversed(s)]
        if len(s) > 1:
            draw.polygon(band, fill=(*col, 50))
        line = [xy(p[0], p[1]) for p in s]
        draw.line(line if len(line) > 1 else line * 2, fill=col, width=3)
        for p in s:
            px, py = xy(p[0], p[1])
            draw.line([px, xy(p[0], p[2])[1], px, xy(p[0], p[3])[1]], fill=col, width=1)
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=col)
        draw.rectangle([575, 60 + 20 * i, 590, 72 + 20 * i], fill=col)
        draw.text((596, 60 + 20 * i), label, fill="black")
    draw.text((left, 12), title, fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def interval_bars(path: Path, title: str, rows: list[tuple[str, float, float, float]], xlabel: str):
    """Horizontal bars: rows of (label, value, low, high), the interval as a whisker."""
    w, row_h = 720, 28
    h = 60 + row_h * len(rows) + 30
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    vals = [v for r in rows for v in r[1:] if np.isfinite(v)] or [0, 1]
    lo, hi = min(0.0, min(vals)), max(vals)
    hi = hi if hi > lo else lo + 1
    left, right = 240, w - 30
    fx = lambda v: left + (v - lo) / (hi - lo) * (right - left)  # noqa: E731
    for i, (label, v, a, b) in enumerate(rows):
        y = 50 + row_h * i
        draw.text((8, y + 6), label[:36], fill="black")
        if np.isfinite(v):
            draw.rectangle([fx(lo), y + 4, fx(v), y + row_h - 6], fill=PALETTE[i % len(PALETTE)])
            draw.text((fx(v) + 4, y + 6), f"{v:.3g}", fill="black")
        if np.isfinite(a) and np.isfinite(b):
            yc = y + row_h / 2 - 1
            draw.line([fx(a), yc, fx(b), yc], fill="black", width=2)
            draw.line([fx(a), yc - 5, fx(a), yc + 5], fill="black")
            draw.line([fx(b), yc - 5, fx(b), yc + 5], fill="black")
    draw.text((left, h - 24), f"{xlabel}  (axis {lo:.3g} .. {hi:.3g})", fill="black")
    draw.text((8, 12), title, fill="black")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def frame_grid(path: Path, title: str, rows: list[tuple[str, list[np.ndarray]]], scale: int = 2):
    """One row of frames (uint8 [H, W, 3]) per (label, frames), like the paper's figures."""
    if not rows or not rows[0][1]:
        return
    fh, fw = rows[0][1][0].shape[:2]
    fh, fw = fh * scale, fw * scale
    cols = max(len(f) for _, f in rows)
    label_w, gap = 170, 4
    img = Image.new("RGB", (label_w + cols * (fw + gap), 30 + len(rows) * (fh + gap)), "white")
    draw = ImageDraw.Draw(img)
    draw.text((6, 8), title, fill="black")
    for r, (label, frames) in enumerate(rows):
        y = 30 + r * (fh + gap)
        draw.text((6, y + fh // 2 - 6), label[:26], fill="black")
        for c, f in enumerate(frames):
            tile = Image.fromarray(np.asarray(f, np.uint8)).resize((fw, fh), Image.NEAREST)
            img.paste(tile, (label_w + c * (fw + gap), y))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
