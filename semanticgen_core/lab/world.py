"""Shapes world: procedurally rendered toy videos with captions, for training and evaluating a tiny SemanticGen.

A clip shows one coloured shape (circle / square / triangle) on a dark background, moving left / right / up / down
or staying still; its caption says so ("a red circle moves to the right", "a crimson ball drifting right", ...).

Conventions:

* Everything is deterministic from a seed: ``sample_*`` take a ``numpy.random.Generator`` or an int seed.
* Geometry is resolution independent: ``Scene.x`` / ``Scene.y`` are the shape's centre as fractions of the frame
  width / height, ``Scene.size`` is the radius as a fraction of the frame's shorter side, ``Scene.speed`` is in frame
  extents (width for left/right, height for up/down) per second. Samplers keep the shape inside the frame.
* ``render`` returns uint8 ``[T, H, W, 3]`` frames (the ``video_io`` convention) showing times ``k / fps``,
  ``k = 0 .. round(seconds * fps)`` (both ends included, so 2 s at 8 fps is 17 frames), anti-aliased analytically
  (coverage from a signed distance to the shape's edge).
* Held-out split: the (colour, shape) and (colour, motion) pairs in ``HELDOUT_COMBOS`` never come out of the train
  split; every held-out scene contains at least one of them. ``HELDOUT_TEMPLATES`` and ``FRESH_TEMPLATES`` are
  paraphrase templates used only for evaluation (``WIDE_TEMPLATES``, the training grammar of caption alternatives,
  shares none of them). ``parse_caption`` reads any caption the grammar can produce back into attributes.
* Long videos (``sample_long`` / ``render_long``) keep one character (shape, colour, size, background) through a
  sequence of motion segments with a continuous position.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")
COLORS = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 100, 245),
    "yellow": (240, 220, 40),
    "white": (245, 245, 245),
    "purple": (165, 60, 215),
}
MOTIONS = ("left", "right", "up", "down", "still")
# Colours outside the palette (>= 80 RGB levels from each COLORS entry), each drawn with every shape: training clips
# of these (lab.captions.extra_colour_rows) show colour and shape words combining freely without showing a held-out
# pair. The evaluation never asks for them, and the probe does not know them.
EXTRA_COLORS = {"orange": (250, 140, 20), "pink": (250, 130, 200), "cyan": (40, 220, 220), "brown": (150, 90, 40)}
EXTRA_COLOR_WORDS = {"orange": ("orange", "tangerine"), "pink": ("pink", "rose"), "cyan": ("cyan", "turquoise"),
                     "brown": ("brown", "chocolate")}  # fmt: skip
BACKGROUNDS = {  # name -> (top RGB, bottom RGB): a vertical gradient; equal ends give a plain background
    "black": ((0, 0, 0), (0, 0, 0)),
    "dark gray": ((48, 48, 48), (48, 48, 48)),
    "navy gradient": ((4, 6, 28), (24, 30, 72)),
    "dark green gradient": ((4, 22, 10), (22, 56, 32)),
    "charcoal gradient": ((60, 58, 56), (14, 14, 16)),
}
HELDOUT_COMBOS = {  # never produced by the train split
    "color_shape": (("red", "triangle"), ("green", "square"), ("blue", "circle"), ("white", "triangle")),
    "color_motion": (("yellow", "left"), ("purple", "up"), ("white", "down"), ("red", "still")),
}

SIZE_RANGE = (0.09, 0.16)  # radius, fraction of the shorter side
TRAVEL_RANGE = (0.2, 0.55)  # distance moved over a clip / segment, fraction of the frame extent
MARGIN = 0.04  # gap kept between the shape and the frame edge, fraction of the frame extent

# ----------------------------------------------------------------------------------------------------------------
# Caption grammar
# ----------------------------------------------------------------------------------------------------------------

COLOR_WORDS = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "lime"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "amber"),
    "white": ("white", "snowy", "ivory"),
    "purple": ("purple", "violet", "lilac"),
}
SHAPE_WORDS = {
    "circle": ("circle", "ball", "disc", "dot"),
    "square": ("square", "box", "block", "tile"),
    "triangle": ("triangle", "wedge", "pyramid"),
}
MOTION_FINITE = {  # motion -> finite verb phrases; the first one is canonical
    "right": ("moves to the right", "drifts right", "slides to the right", "travels rightward", "glides right"),
    "left": ("moves to the left", "drifts left", "slides to the left", "travels leftward", "glides left"),
    "up": ("moves up", "rises up", "floats upward", "climbs up", "ascends"),
    "down": ("moves down", "falls down", "sinks", "drops downward", "descends"),
    "still": ("stays still", "rests still", "sits motionless", "remains in place", "stays stationary"),
}
MOTION_PARTICIPLE = {  # motion -> participle phrases
    "right": ("moving to the right", "drifting right", "sliding to the right", "heading right", "gliding rightward"),
    "left": ("moving to the left", "drifting left", "sliding to the left", "heading left", "gliding leftward"),
    "up": ("moving up", "rising up", "floating upward", "climbing up", "ascending"),
    "down": ("moving down", "falling down", "sinking", "dropping downward", "descending"),
    "still": ("staying still", "resting still", "sitting motionless", "remaining in place", "standing still"),
}
# Placeholders: {color} {shape} {finite} {participle}. "a" becomes "an" before a vowel.
TRAIN_TEMPLATES = (
    "a {color} {shape} {finite}",
    "a {color} {shape} {participle}",
    "the {color} {shape} {finite}",
    "video of a {color} {shape} {participle}",
    "a single {color} {shape} {participle}",
    "there is a {color} {shape} that {finite}",
    "a {color} {shape} is {participle}",
    "here a {color} {shape} {finite}",
    "this shows the {color} {shape} {participle}",
    "{color} {shape} {participle}",
    "a {shape} that is {color} {finite}",
    "the {shape} is {color} and {finite}",
)
# A wider training grammar for caption alternatives (`caption_alternatives`, the build's captions step): other word
# orders (shape first, motion first), words around the colour ("painted", "hue", "tint", "shade") and filler. The
# dataset's own captions keep TRAIN_TEMPLATES (a build's videos do not change with it). No held-out template is here,
# nor the word "colour" (or "color", "coloured"): it is what the held-out "... in colour ..." template tests
# (README), so training on it would pass that test by copying. FRESH_TEMPLATES were written after this list.
WIDE_TEMPLATES = TRAIN_TEMPLATES + (
    "a {shape} in {color} {finite}",
    "a {shape} with {color} paint {finite}",
    "the {shape}, which is {color}, {finite}",
    "a bright {color} {shape} {finite}",
    "{participle}, a {color} {shape}",
    "a {shape} painted {color} {participle}",
    "a {shape} whose surface is {color} {finite}",
    "it is a {color} {shape} and it {finite}",
    "a {shape} of a {color} shade {participle}",
    "look, a {color} {shape} {finite}",
    "a {color} object shaped like a {shape} {participle}",
    "the {shape} has a {color} hue and {finite}",
    "this {shape} is {color}; it {finite}",
    "a small {color} {shape} {participle}",
    "a {shape} with a {color} tint {finite}",
)
HELDOUT_TEMPLATES = (
    "we see a {color} {shape} {participle}",
    "one {color} {shape}, {participle}",
    "footage showing a {color} {shape} that {finite}",
    "in this clip a {color} {shape} {finite}",
    "a {shape}, {color} in colour, {participle}",
)
# Evaluation only, written after WIDE_TEMPLATES: wording none of the training templates has ("toned", "dyed",
# "glimpse", "scene", brackets), so that a gain on HELDOUT_TEMPLATES can be told from one that generalises.
FRESH_TEMPLATES = (
    "a {color}-toned {shape} {finite}",
    "the scene has a {shape}, {color}, {participle}",
    "a {shape} dyed {color} that {finite}",
    "{participle} is a {color} {shape}",
    "a glimpse of a {shape} ({color}) {participle}",
)
TEMPLATE_SETS = {"train": TRAIN_TEMPLATES, "wide": WIDE_TEMPLATES, "heldout": HELDOUT_TEMPLATES,
                 "fresh": FRESH_TEMPLATES}  # fmt: skip
_MOTION_KEYWORDS = {  # word -> motion, for parse_caption (direction words win over "still" words)
    **dict.fromkeys(("left", "leftward", "leftwards"), "left"),
    **dict.fromkeys(("right", "rightward", "rightwards"), "right"),
    **dict.fromkeys(("up", "upward", "upwards", "rises", "rising", "ascends", "ascending", "climbs"), "up"),
    **dict.fromkeys(("down", "downward", "downwards", "falls", "sinks", "sinking", "descends", "descending"), "down"),
    **dict.fromkeys(("still", "motionless", "stationary", "place", "static", "unmoving"), "still"),
}
_WORD_TO = {w: ("color", c) for c, ws in COLOR_WORDS.items() for w in ws}
_WORD_TO.update({w: ("shape", s) for s, ws in SHAPE_WORDS.items() for w in ws})


def _pick(rng: np.random.Generator, options):
    """One element of a sequence, chosen by rng."""
    return options[int(rng.integers(len(options)))]


def _articles(text: str) -> str:
    """Turn the article "a" into "an" before a vowel."""
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def caption(scene, rng=None, style: str = "canonical", templates: str = "train") -> str:
    """Caption of a Scene (anything with color/shape/motion): 'canonical' or a 'paraphrase' from `templates`."""
    color, shape, motion = scene.color, scene.shape, scene.motion
    if style == "canonical":
        return _articles(f"a {color} {shape} {MOTION_FINITE[motion][0]}")
    if style != "paraphrase":
        raise ValueError(f"style must be 'canonical' or 'paraphrase', got {style!r}")
    if templates not in TEMPLATE_SETS:
        raise ValueError(f"templates must be one of {sorted(TEMPLATE_SETS)}, got {templates!r}")
    rng = _as_rng(rng)
    return _fill(_pick(rng, TEMPLATE_SETS[templates]), scene, rng)


def _fill(template: str, scene, rng: np.random.Generator, shape_words=None, color_words=None) -> str:
    """`template` with words for the scene's attributes drawn by rng (`shape_words` / `color_words`: the words for
    {shape} / {color} instead of the scene's own)."""
    finite, participle = MOTION_FINITE[scene.motion], MOTION_PARTICIPLE[scene.motion]
    colors = color_words or COLOR_WORDS[scene.color]
    words = dict(color=_pick(rng, colors), shape=_pick(rng, shape_words or SHAPE_WORDS[scene.shape]))
    return _articles(template.format(**words, finite=_pick(rng, finite), participle=_pick(rng, participle)))


def template_of(text: str) -> str | None:
    """The template (of WIDE_TEMPLATES, HELDOUT_TEMPLATES or FRESH_TEMPLATES) a paraphrase was made from, None for
    none of them."""
    slots = {  # each placeholder matches exactly the phrases the grammar puts there
        "color": [w for ws in COLOR_WORDS.values() for w in ws],
        "shape": [w for ws in SHAPE_WORDS.values() for w in ws],
        "finite": [p for ps in MOTION_FINITE.values() for p in ps],
        "participle": [p for ps in MOTION_PARTICIPLE.values() for p in ps],
    }
    for template in WIDE_TEMPLATES + HELDOUT_TEMPLATES + FRESH_TEMPLATES:
        pattern = re.sub(r"\ba\\ ", r"an?\\ ", re.escape(template).replace(r"\{", "{").replace(r"\}", "}"))
        pattern = pattern.format(**{k: "(?:" + "|".join(map(re.escape, v)) + ")" for k, v in slots.items()})
        if re.fullmatch(pattern, text):
            return template
    return None


def parse_caption(text: str) -> dict:
    """Attributes named in a caption: dict(color, shape, motion), None for an attribute not mentioned."""
    out = {"color": None, "shape": None, "motion": None}
    found = set()
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _WORD_TO and out[_WORD_TO[word][0]] is None:
            out[_WORD_TO[word][0]] = _WORD_TO[word][1]
        if word in _MOTION_KEYWORDS:
            found.add(_MOTION_KEYWORDS[word])
    moving = [m for m in MOTIONS if m in found and m != "still"]
    out["motion"] = moving[0] if moving else ("still" if "still" in found else None)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Scenes
# ----------------------------------------------------------------------------------------------------------------

_DIRECTION = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0), "still": (0.0, 0.0)}


@dataclass(frozen=True)
class Scene:
    """One shape doing one motion: see the module docstring for units."""

    shape: str
    color: str
    motion: str
    background: str
    size: float
    x: float
    y: float
    speed: float

    def position(self, t) -> tuple[np.ndarray, np.ndarray]:
        """Centre (x, y) in frame fractions at time(s) t seconds."""
        dx, dy = _DIRECTION[self.motion]
        t = np.asarray(t, np.float64)
        return self.x + dx * self.speed * t, self.y + dy * self.speed * t


def _as_rng(rng) -> np.random.Generator:
    """A numpy Generator from a Generator, an int seed or None (seed 0)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(0 if rng is None else rng)


def is_heldout(color: str, shape: str | None = None, motion: str | None = None) -> bool:
    """True if (color, shape) or (color, motion) is one of HELDOUT_COMBOS."""
    return (color, shape) in HELDOUT_COMBOS["color_shape"] or (color, motion) in HELDOUT_COMBOS["color_motion"]


def sample_scene(rng=None, split: str = "train", seconds: float = 2.0) -> Scene:
    """A random Scene whose motion stays in frame for `seconds`; split 'train' or 'heldout' (see HELDOUT_COMBOS)."""
    rng = _as_rng(rng)
    if split == "train":
        while True:
            color, shape, motion = _pick(rng, list(COLORS)), _pick(rng, SHAPES), _pick(rng, MOTIONS)
            if not is_heldout(color, shape, motion):
                break
    elif split == "heldout":
        kind = _pick(rng, ("color_shape", "color_motion"))
        color, other = _pick(rng, HELDOUT_COMBOS[kind])
        shape = other if kind == "color_shape" else _pick(rng, SHAPES)
        motion = other if kind == "color_motion" else _pick(rng, MOTIONS)
    else:
        raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
    size = float(rng.uniform(*SIZE_RANGE))
    lo, hi = MARGIN + size, 1.0 - MARGIN - size
    dx, dy = _DIRECTION[motion]
    travel = float(rng.uniform(TRAVEL_RANGE[0], min(TRAVEL_RANGE[1], hi - lo))) if motion != "still" else 0.0

    def start(d: float) -> float:
        """Start coordinate along an axis with direction d, leaving room for the travel."""
        a, b = (lo, hi - travel) if d > 0 else (lo + travel, hi) if d < 0 else (lo, hi)
        return float(rng.uniform(a, b))

    x, y = start(dx), start(dy)
    background = _pick(rng, list(BACKGROUNDS))
    return Scene(shape, color, motion, background, size, x, y, travel / seconds if seconds > 0 else 0.0)


# ----------------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------------


def background_image(name: str, height: int, width: int) -> np.ndarray:
    """Float32 [H, W, 3] background (0..255): a vertical gradient from BACKGROUNDS[name]."""
    top, bottom = (np.asarray(c, np.float32) for c in BACKGROUNDS[name])
    w = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
    return np.broadcast_to((top * (1 - w) + bottom * w)[:, None, :], (height, width, 3)).astype(np.float32)


def _distance(shape: str, px: np.ndarray, py: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (pixels, < 0 inside) from offsets (px, py) to the centred shape of radius r."""
    if shape == "circle":
        return np.sqrt(px * px + py * py) - r
    box = np.maximum(np.abs(px), np.abs(py)) - r  # square of side 2r (exact inside, the box's own edges outside)
    if shape == "square":
        qx, qy = np.maximum(np.abs(px) - r, 0), np.maximum(np.abs(py) - r, 0)
        return np.where(box > 0, np.sqrt(qx * qx + qy * qy), box)
    if shape == "triangle":  # apex (0, -r), base corners (+-r, r): fills half of its 2r x 2r bounding box
        n = 1.0 / math.sqrt(5.0)  # edge normals are (+-2, -1) / sqrt(5)
        side = (2 * np.abs(px) - (py + r)) * n  # distance to the slanted edges through the apex
        return np.maximum(side, box)  # the box adds the base and clips the apex
    raise ValueError(f"unknown shape {shape!r}; one of {SHAPES}")


def _draw(shape, color, background, size, xs, ys, height, width) -> np.ndarray:
    """uint8 [T, H, W, 3]: the shape centred at fractions (xs[t], ys[t]) over the background; color: a COLORS name
    or an RGB triple."""
    bg = background_image(background, height, width)
    col = np.asarray(COLORS[color] if isinstance(color, str) else color, np.float32)
    r = size * min(height, width)
    gx = np.arange(width, dtype=np.float32) + 0.5
    gy = np.arange(height, dtype=np.float32) + 0.5
    out = np.empty((len(xs), height, width, 3), np.uint8)
    chunk = max(1, 2**21 // (height * width))
    for s in range(0, len(xs), chunk):
        cx = (np.asarray(xs[s : s + chunk], np.float32) * width)[:, None, None]
        cy = (np.asarray(ys[s : s + chunk], np.float32) * height)[:, None, None]
        cover = np.clip(0.5 - _distance(shape, gx[None, None, :] - cx, gy[None, :, None] - cy, r), 0.0, 1.0)
        cover = cover.astype(np.float32)[..., None]
        out[s : s + chunk] = np.rint(bg + cover * (col - bg)).astype(np.uint8)
    return out


def frame_times(seconds: float, fps: float, num_frames: int | None = None) -> np.ndarray:
    """Times k / fps of the rendered frames: round(seconds * fps) + 1 of them unless num_frames is given."""
    n = round(seconds * fps) + 1 if num_frames is None else int(num_frames)
    if n < 1 or fps <= 0:
        raise ValueError(f"need fps > 0 and at least one frame, got fps={fps}, {n} frames")
    return np.arange(n, dtype=np.float64) / fps


def render(
    scene: Scene, seconds: float = 2.0, fps: float = 8, height: int = 64, width: int = 64, num_frames=None, times=None,
    rgb=None,
) -> np.ndarray:  # fmt: skip
    """uint8 [T, H, W, 3] frames of `scene` at times k / fps (T = round(seconds * fps) + 1, or num_frames).

    `times` (seconds) renders exactly those instants instead; `rgb` draws the shape in that colour instead of its
    named one (e.g. `off_palette_rgb`).
    """
    xs, ys = scene.position(frame_times(seconds, fps, num_frames) if times is None else times)
    return _draw(scene.shape, scene.color if rgb is None else rgb, scene.background, scene.size, xs, ys, height, width)


def off_palette_rgb(rng, min_distance: float = 80.0, min_brightness: int = 110) -> tuple[int, int, int]:
    """A random RGB colour at least `min_distance` from every COLORS entry (Euclidean, 0..255) and with a channel
    >= min_brightness (visible on the dark backgrounds): a colour no caption names, so recoloured clips teach shape
    apart from colour without ever showing a held-out (colour, shape) pair."""
    rng = _as_rng(rng)
    palette = np.asarray(list(COLORS.values()), np.float32)
    while True:
        c = rng.integers(0, 256, 3)
        if c.max() >= min_brightness and np.linalg.norm(palette - c, axis=1).min() >= min_distance:
            return tuple(int(v) for v in c)


# ----------------------------------------------------------------------------------------------------------------
# Long videos
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LongScene:
    """One character through consecutive motion segments: scenes[j] starts where scenes[j-1] ends."""

    scenes: tuple[Scene, ...]
    durations: tuple[float, ...]

    shape = property(lambda self: self.scenes[0].shape)
    color = property(lambda self: self.scenes[0].color)
    background = property(lambda self: self.scenes[0].background)
    seconds = property(lambda self: float(sum(self.durations)))
    motions = property(lambda self: [s.motion for s in self.scenes])

    @property
    def starts(self) -> np.ndarray:
        """Start time (s) of every segment."""
        return np.concatenate([[0.0], np.cumsum(self.durations)[:-1]])

    def captions(self, rng=None, style: str = "canonical", templates: str = "train") -> list[str]:
        """One caption per segment."""
        rng = _as_rng(rng)
        return [caption(s, rng, style, templates) for s in self.scenes]

    @property
    def prompt(self) -> str:
        """Combined prompt: 'a red circle moves to the right, then stays still, then moves up'."""
        phrases = [MOTION_FINITE[s.motion][0] for s in self.scenes]
        return _articles(f"a {self.color} {self.shape} " + ", then ".join(phrases))


def _segment_durations(rng: np.random.Generator, seconds: float, lo: float, hi: float) -> list[float]:
    """Whole-second durations in [lo, hi] summing to `seconds` (the last one takes any remainder)."""
    lo_i, hi_i = max(1, math.ceil(lo)), max(1, math.floor(hi))
    out, left = [], float(seconds)
    while left > 1e-9:
        if left <= hi_i:
            d = left
        else:
            d = float(rng.integers(lo_i, hi_i + 1))
            d = min(d, left - lo_i) if left - d < lo_i else d
        out.append(d)
        left -= d
    return out


def sample_long(rng=None, seconds: float = 60.0, scene_seconds=(4, 8), split: str = "train") -> LongScene:
    """A LongScene: one character, a motion per segment (changing each time, always staying in frame)."""
    rng = _as_rng(rng)
    first = sample_scene(rng, split, 1.0)
    size, x, y = first.size, float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65))
    scenes, prev = [], None
    durations = _segment_durations(rng, seconds, *scene_seconds)
    for j, d in enumerate(durations):
        if j == 0 and split == "heldout" and (first.color, first.motion) in HELDOUT_COMBOS["color_motion"]:
            options = [first.motion]  # keep the held-out motion the first scene was sampled for
        else:
            options = [m for m in MOTIONS if m != prev and not (split == "train" and is_heldout(first.color, None, m))]
        lo, hi = MARGIN + size, 1.0 - MARGIN - size  # free distance to each edge:
        room = dict(left=x - lo, right=hi - x, up=y - lo, down=hi - y, still=math.inf)
        feasible = {m: room[m] for m in options if room[m] >= TRAVEL_RANGE[0]}
        if not feasible:  # the first scene's held-out motion has no room: start from the centre
            x = y = 0.5
            feasible = {options[0]: 0.5 - MARGIN - size}
        motion = _pick(rng, sorted(feasible))
        travel = (
            0.0 if motion == "still" else float(rng.uniform(TRAVEL_RANGE[0], min(TRAVEL_RANGE[1], feasible[motion])))
        )
        scene = replace(first, motion=motion, x=x, y=y, speed=travel / d)
        scenes.append(scene)
        x, y = (float(v) for v in scene.position(d))
        prev = motion
    return LongScene(tuple(scenes), tuple(durations))


def render_long(long: LongScene, fps: float = 8, height: int = 64, width: int = 64):
    """(uint8 [T, H, W, 3] frames at k / fps for the whole video, [(start_frame, end_frame, motion), ...])."""
    t = frame_times(long.seconds, fps)
    starts = long.starts
    seg = np.clip(np.searchsorted(starts, t + 1e-9, side="right") - 1, 0, len(long.scenes) - 1)
    xs, ys = np.empty(len(t)), np.empty(len(t))
    for j, scene in enumerate(long.scenes):
        idx = seg == j
        xs[idx], ys[idx] = scene.position(t[idx] - starts[j])
    frames = _draw(long.shape, long.color, long.background, long.scenes[0].size, xs, ys, height, width)
    bounds = [(int(np.searchsorted(seg, j)), int(np.searchsorted(seg, j, "right"))) for j in range(len(starts))]
    segments = [(a, b, s.motion) for (a, b), s in zip(bounds, long.scenes) if b > a]
    return frames, segments


# ----------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------

_SPLIT_CODE = {"train": 0, "heldout": 1}


@dataclass
class ShapesWorld:
    """Map-style dataset (works with torch DataLoader): item i is rendered deterministically from (seed, split, i).

    Items: dict(frames uint8 [T, H, W, 3], caption str, attributes dict(color, shape, motion, background),
    scene dict (``Scene(**item["scene"])`` rebuilds it; a dict keeps items collatable)).
    `paraphrase` is the probability of a paraphrased caption (else canonical), drawn from `templates`
    (default: HELDOUT_TEMPLATES for the heldout split, TRAIN_TEMPLATES otherwise).
    """

    n: int = 1000
    seed: int = 0
    split: str = "train"
    seconds: float = 2.0
    fps: float = 8
    height: int = 64
    width: int = 64
    paraphrase: float = 0.5
    templates: str | None = None
    num_frames: int | None = None

    def __post_init__(self):
        if self.split not in _SPLIT_CODE:
            raise ValueError(f"split must be 'train' or 'heldout', got {self.split!r}")
        self.templates = self.templates or self.split

    def __len__(self) -> int:
        return self.n

    def scene(self, i: int) -> tuple[Scene, str]:
        """(Scene, caption) of item i without rendering."""
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for ShapesWorld of length {self.n}")
        rng = np.random.default_rng([self.seed, _SPLIT_CODE[self.split], i])
        scene = sample_scene(rng, self.split, self.seconds)
        style = "paraphrase" if rng.random() < self.paraphrase else "canonical"
        return scene, caption(scene, rng, style, self.templates)

    def __getitem__(self, i: int) -> dict:
        scene, text = self.scene(int(i))
        frames = render(scene, self.seconds, self.fps, self.height, self.width, self.num_frames)
        attributes = dict(color=scene.color, shape=scene.shape, motion=scene.motion, background=scene.background)
        return dict(frames=frames, caption=text, attributes=attributes, scene=asdict(scene))


def write_dataset(
    folder,
    n: int,
    seed: int = 0,
    split: str = "train",
    crf: int = 18,
    prefix: str = "",
    lossless: bool = False,
    **kwargs,
) -> list[Path]:
    """Write n clips as {prefix}NNNNNN.mp4 + .txt (caption) pairs into `folder`; kwargs go to ShapesWorld.

    `lossless` keeps the renders bit-exact (RGB H.264): training data without 4:2:0 colour bleeding at the edges.
    """
    from ..video_io import write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    world = ShapesWorld(n, seed=seed, split=split, **kwargs)
    paths = []
    for i in range(n):
        item = world[i]
        path = folder / f"{prefix}{i:06d}.mp4"
        write_video(path, item["frames"], fps=world.fps, crf=crf, lossless=lossless)
        path.with_suffix(".txt").write_text(item["caption"] + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def write_long_dataset(
    folder, n: int, seed: int = 0, split: str = "train", seconds: float = 8.0, scene_seconds=(2, 4), fps: float = 8,
    height: int = 64, width: int = 64, paraphrase: float = 0.5, prefix: str = "seg", lossless: bool = True,
) -> list[Path]:  # fmt: skip
    """Write n multi-segment clips (one character, a new motion every `scene_seconds`) as {prefix}NNNNNN.mp4 + .txt
    with per-segment captions, one `START: caption` line per segment (semanticgen_core.schedule's syntax)."""
    from ..schedule import format_schedule
    from ..video_io import write_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], 7, i])
        long = sample_long(rng, seconds, scene_seconds, split)
        frames, _ = render_long(long, fps, height, width)
        style = "paraphrase" if rng.random() < paraphrase else "canonical"
        captions = long.captions(rng, style, split)
        path = folder / f"{prefix}{i:06d}.mp4"
        write_video(path, frames, fps=fps, lossless=lossless)
        text = format_schedule([(float(t), c) for t, c in zip(long.starts, captions)])
        path.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
        paths.append(path)
    return paths
