"""Training captions for the shapes world: alternatives of a clip's caption, and partial captions (one attribute
unnamed), written into a JSONL manifest that train/prepare.py caches (one caption drawn per training step)."""

from dataclasses import replace
from pathlib import Path

import numpy as np

from .world import (
    EXTRA_COLOR_WORDS,
    EXTRA_COLORS,
    SHAPE_WORDS,
    SHAPES,
    TEMPLATE_SETS,
    Scene,
    _as_rng,
    _fill,
    _pick,
    caption,
    parse_caption,
    render,
    sample_scene,
)

# Partial captions (partial_caption): training only, one attribute unnamed. Nouns that name no shape, templates
# without a colour, templates without a motion; none of their words is in HELDOUT_TEMPLATES or FRESH_TEMPLATES.
GENERIC_SHAPE_WORDS = ("shape", "object", "thing", "figure")
COLOURLESS_TEMPLATES = (
    "a {shape} {finite}",
    "the {shape} {participle}",
    "a {shape} that {finite}",
    "{shape} {participle}",
    "there is a {shape} that {finite}",
    "a single {shape} {participle}",
)
MOTIONLESS_TEMPLATES = (  # the form of a reference-transfer prompt: the motion comes from the reference
    "a {color} {shape}",
    "the {color} {shape}",
    "a single {color} {shape}",
    "a {shape} that is {color}",
    "video of a {color} {shape}",
    "there is a {color} {shape}",
)
PARTIAL_KINDS = ("shape", "color", "motion")


def partial_caption(scene, rng=None, unnamed: str = "shape", templates: str = "wide") -> str:
    """A caption of the scene that leaves one attribute unnamed: 'shape' (a generic noun from GENERIC_SHAPE_WORDS in
    a `templates` template: "a red object moves left"), 'color' (a COLOURLESS_TEMPLATES one: "a circle moves left")
    or 'motion' (a MOTIONLESS_TEMPLATES one: "a red circle", the form of a reference-transfer prompt).

    Training on some of these (attribute dropout) is what lets the generators read each attribute from its own word:
    with only full captions, the attribute combinations missing from the training split are confounded (a reader of
    the text features learns "circle" -> not blue), and held-out combinations lose their colour (README)."""
    rng = _as_rng(rng)
    if unnamed == "shape":
        return _fill(_pick(rng, TEMPLATE_SETS[templates]), scene, rng, GENERIC_SHAPE_WORDS)
    if unnamed == "color":
        return _fill(_pick(rng, COLOURLESS_TEMPLATES), scene, rng)
    if unnamed == "motion":
        return _fill(_pick(rng, MOTIONLESS_TEMPLATES), scene, rng)
    raise ValueError(f"unnamed must be one of {PARTIAL_KINDS}, got {unnamed!r}")


def caption_alternatives(
    text: str, n: int, rng=None, templates: str = "wide", partial: int = 0, unnamed=("shape", "color")
) -> list[str]:
    """`text` plus n captions of the same scene from a training set of templates ('wide': WIDE_TEMPLATES, 'train':
    TRAIN_TEMPLATES) with the canonical one among them, once: the alternatives a training step draws from, so that
    the generator reads the words, not one fixed sentence. `partial`: that many more with each attribute of
    `unnamed` left unnamed (partial_caption), in that order."""
    if templates not in ("train", "wide"):
        raise ValueError(f"caption alternatives come from training templates ('train' or 'wide'), not {templates!r}")
    attrs = parse_caption(text)
    if None in attrs.values():
        raise ValueError(f"caption {text!r} does not name a colour, a shape and a motion: no alternatives for it")
    scene, rng = Scene(**attrs, background="black", size=0.1, x=0.5, y=0.5, speed=0.0), _as_rng(rng)
    out = [text]
    for _ in range(n):
        style = "canonical" if len(out) == 1 and text != caption(scene) else "paraphrase"
        out.append(caption(scene, rng, style, templates))
    for kind in unnamed:
        out += [partial_caption(scene, rng, kind, templates) for _ in range(partial)]
    return out


def caption_manifest(
    folder, root, n: int, seed: int = 0, templates: str = "wide", partial: int = 0, unnamed=("shape", "color")
) -> list[dict]:
    """Rows {video, caption} of a JSONL manifest (train/data.py) for the videos in `folder`: n caption alternatives
    each (caption_alternatives; a list), per-segment captions (several lines) as they are; video paths relative to
    `root` (the manifest's folder)."""
    rows = []
    for i, video in enumerate(sorted(Path(folder).glob("*.mp4"))):
        text = video.with_suffix(".txt").read_text(encoding="utf-8").strip()
        rng = np.random.default_rng([seed, 11, i])
        captions = text if "\n" in text else caption_alternatives(text, n, rng, templates, partial, unnamed)
        rows.append({"video": str(video.relative_to(root)), "caption": captions})
    return rows


def extra_colour_rows(folder, root, n: int, seed: int = 0, alternatives: int = 4, partial: int = 2) -> list[dict]:
    """Write n lossless 2 s clips (8 fps, 17 frames) as extra{i}.mp4 into `folder`, shape i % 3 drawn in an
    EXTRA_COLORS colour (cycled), and return their manifest rows: the canonical caption, `alternatives` from
    WIDE_TEMPLATES and `partial` each with the shape, the colour and the motion unnamed, all with that colour's words.

    Each extra colour comes with every shape, so the generators see colour and shape words combine freely; no palette
    colour is drawn, so no held-out (colour, shape) pair is shown (README, "Shape of held-out pairs")."""
    from ..video_io import write_video

    folder, names, rows = Path(folder), list(EXTRA_COLORS), []
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng([seed, 29, i])
        name, shape = names[(i // len(SHAPES)) % len(names)], SHAPES[i % len(SHAPES)]
        scene = replace(sample_scene(rng), shape=shape)
        path = folder / f"extra{i:06d}.mp4"
        write_video(path, render(scene, 2.0, fps=8, num_frames=17, rgb=EXTRA_COLORS[name]), fps=8, lossless=True)
        words = EXTRA_COLOR_WORDS[name]
        texts = [_fill("a {color} {shape} {finite}", scene, rng, SHAPE_WORDS[shape][:1], words[:1])]
        texts += [_fill(_pick(rng, TEMPLATE_SETS["wide"]), scene, rng, color_words=words) for _ in range(alternatives)]
        texts += [
            _fill(_pick(rng, TEMPLATE_SETS["wide"]), scene, rng, GENERIC_SHAPE_WORDS, words) for _ in range(partial)
        ]
        texts += [_fill(_pick(rng, COLOURLESS_TEMPLATES), scene, rng) for _ in range(partial)]
        texts += [_fill(_pick(rng, MOTIONLESS_TEMPLATES), scene, rng, color_words=words) for _ in range(partial)]
        rows.append({"video": str(path.relative_to(root)), "caption": texts})
    return rows
