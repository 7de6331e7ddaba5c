"""Pictures of the shipped workflows (docs/workflow_*.png) and the Templates dialog's cards (workflows/*.jpg), for
workflows/build.py: a canvas-like drawing of a UI workflow, and a card with frames of the video it makes."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTE_TYPES = {"Note", "MarkdownNote"}

LINK_COLORS = {
    "MODEL": "#B39DDB",
    "CLIP": "#FFD500",
    "VAE": "#FF6E6E",
    "LATENT": "#FF9CF9",
    "IMAGE": "#64B5F6",
    "CONDITIONING": "#FFA931",
    "VIDEO": "#8BC34A",
    "SEMANTICGEN_MODEL": "#B39DDB",
    "SEMANTIC_PLAN": "#4DD0E1",
    "SEMANTIC_ENCODER": "#AED581",
    "SEMANTICGEN_VAE": "#FF6E6E",
}


def draw(ui: dict, specs: dict, widgets: Callable[[dict], list[tuple[str, str]]], path: Path) -> None:
    """A canvas-like PNG of a UI workflow: nodes with their widgets ((name, value) pairs of a node: `widgets`), links
    as curves coloured by type."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(13)
    xs = [n["pos"][0] for n in ui["nodes"]] + [n["pos"][0] + n["size"][0] for n in ui["nodes"]]
    ys = [n["pos"][1] for n in ui["nodes"]] + [n["pos"][1] + n["size"][1] for n in ui["nodes"]]
    x0, y0, pad = min(xs) - 30, min(ys) - 60, 30
    img = Image.new("RGB", (int(max(xs) - x0 + pad), int(max(ys) - y0 + pad)), "#202020")
    d = ImageDraw.Draw(img)
    nodes = {n["id"]: n for n in ui["nodes"]}

    def slot_xy(n, i, output):
        x = n["pos"][0] - x0 + (n["size"][0] if output else 0)
        return x, n["pos"][1] - y0 + 14 + 22 * i

    for n in ui["nodes"]:
        x, y, w, h = n["pos"][0] - x0, n["pos"][1] - y0, *n["size"]
        note = n["type"] in NOTE_TYPES
        d.rounded_rectangle((x, y - 26, x + w, y + h), 8, fill="#3a3226" if note else "#353535", outline="#555")
        d.rounded_rectangle((x, y - 26, x + w, y), 8, fill="#5a4a2a" if note else "#2b4a5a")
        title = n.get("title") or specs.get(n["type"], {}).get("display_name") or n["type"]
        d.text((x + 10, y - 20), title, fill="white", font=font)
        if note:
            text = n["widgets_values"][0].replace("## ", "").replace("`", "")
            lines = [ln for para in text.split("\n") for ln in textwrap.wrap(para, w // 7) or [""]]
            for i, line in enumerate(lines[: (h - 10) // 18]):
                d.text((x + 10, y + 8 + 18 * i), line, fill="#ddd", font=font)
            continue
        for i, s in enumerate(n["inputs"]):
            d.ellipse((x - 5, y + 9 + 22 * i, x + 5, y + 19 + 22 * i), fill=LINK_COLORS.get(s["type"], "#aaa"))
            d.text((x + 10, y + 7 + 22 * i), s["name"], fill="#ccc", font=font)
        for i, s in enumerate(n["outputs"]):
            d.ellipse((x + w - 5, y + 9 + 22 * i, x + w + 5, y + 19 + 22 * i), fill=LINK_COLORS.get(s["type"], "#aaa"))
            d.text((x + w - 10, y + 7 + 22 * i), s["name"], fill="#ccc", font=font, anchor="ra")
        top = y + 14 + 22 * max(len(n["inputs"]), len(n["outputs"]))
        for i, (name, value) in enumerate(widgets(n)):
            text = f"{name}: {value.splitlines()[0] if value else chr(34) * 2}"
            d.rounded_rectangle((x + 8, top + 26 * i, x + w - 8, top + 26 * i + 20), 6, fill="#222")
            d.text((x + 16, top + 26 * i + 3), text[: w // 7], fill="#ddd", font=font)
    for _, a, ai, b, bi, typ in ui["links"]:
        (sx, sy), (tx, ty) = slot_xy(nodes[a], ai, True), slot_xy(nodes[b], bi, False)
        pts = []
        for t in (k / 40 for k in range(41)):  # cubic Bezier leaving and entering horizontally, as litegraph draws
            px = (1 - t) ** 3 * sx + 3 * (1 - t) ** 2 * t * (sx + 80) + 3 * (1 - t) * t**2 * (tx - 80) + t**3 * tx
            pts.append((px, (1 - t) ** 2 * (1 + 2 * t) * sy + t**2 * (3 - 2 * t) * ty))
        d.line(pts, fill=LINK_COLORS.get(typ, "#aaa"), width=3)
    img.save(path)


# ----------------------------------------------------------------------------------------------------------------
# Thumbnails (the Templates dialog's cards)
# ----------------------------------------------------------------------------------------------------------------


def embedded_frames(meta: dict):
    """uint8 frames [F, 64, 64, 3] the workflow makes, from the embedded pipeline with the workflow's settings."""
    sys.path.insert(0, str(ROOT))
    from semanticgen_core.lab.embedded import load_embedded_pipeline
    from semanticgen_core.video_io import read_video

    pipe = load_embedded_pipeline(with_encoder="reference" in meta)
    if "reference" in meta:
        frames = read_video(ROOT / "workflows" / "assets" / meta["reference"], fps=pipe.config.semantic.fps)
        ref, seconds = pipe.reference_clip(frames, 64, 64)
        return pipe(meta["prompt"], seconds, reference=ref, seed=42)[0]
    return pipe(meta["prompt"], meta["seconds"], seed=42, window=meta["window"])[0]


def thumbnail(wf, picture: Path, meta: dict, path: Path, size: int = 512) -> None:
    """A 512x512 card for wf (a build.Workflow): title, then frames of the video it makes (short embedded workflows) or the workflow's picture
    (Wan2.1, which needs downloads, and the one-minute video)."""
    from PIL import Image, ImageDraw, ImageFont

    card = Image.new("RGB", (size, size), "#1d1f24")
    d = ImageDraw.Draw(card)
    title, _, subtitle = wf.name.partition(" (")
    d.text((24, 20), title, fill="white", font=ImageFont.load_default(34))
    d.text((24, 64), subtitle.rstrip(")"), fill="#9fb4c8", font=ImageFont.load_default(18))
    box = (24, 104, size - 24, size - 24)  # what goes below the title
    if wf.embedded and meta.get("seconds", 0) <= 10:  # a one-minute video would cost minutes per card: its picture
        frames = embedded_frames(meta)
        picks = [frames[round(i * (len(frames) - 1) / 8)] for i in range(9)]  # 9 frames from first to last
        tile = (box[2] - box[0] - 2 * 8) // 3
        tile = min(tile, (box[3] - box[1] - 2 * 8) // 3)
        x0 = (size - 3 * tile - 16) // 2
        for i, frame in enumerate(picks):
            img = Image.fromarray(frame).resize((tile, tile), Image.NEAREST)
            card.paste(img, (x0 + (i % 3) * (tile + 8), box[1] + (i // 3) * (tile + 8)))
    else:
        img = Image.open(picture).convert("RGB")
        img.thumbnail((box[2] - box[0], box[3] - box[1]), Image.LANCZOS)
        card.paste(img, (box[0] + (box[2] - box[0] - img.width) // 2, box[1]))
    card.save(path, quality=88, optimize=True)
