"""Shapes world: deterministic rendering, captions that parse back and match the pixels, held-out split, long videos."""

import re
import time

import numpy as np
import pytest
import torch

from semanticgen_core.lab.metrics import measure_scene
from semanticgen_core.lab.world import (
    BACKGROUNDS,
    COLOR_WORDS,
    COLORS,
    FRESH_TEMPLATES,
    HELDOUT_COMBOS,
    HELDOUT_TEMPLATES,
    MOTION_FINITE,
    MOTION_PARTICIPLE,
    MOTIONS,
    SHAPE_WORDS,
    SHAPES,
    TRAIN_TEMPLATES,
    WIDE_TEMPLATES,
    LongScene,
    Scene,
    ShapesWorld,
    background_image,
    caption,
    is_heldout,
    parse_caption,
    render,
    render_long,
    sample_long,
    sample_scene,
    write_dataset,
)
from semanticgen_core.video_io import read_video


def _attrs(scene) -> dict:
    return dict(color=scene.color, shape=scene.shape, motion=scene.motion)


# ----------------------------------------------------------------------------------------------------- rendering


def test_render_is_deterministic_and_seeded():
    a, b, c = ShapesWorld(8, seed=0), ShapesWorld(8, seed=0), ShapesWorld(8, seed=1)
    for i in range(8):
        assert a[i]["frames"].tobytes() == b[i]["frames"].tobytes() and a[i]["caption"] == b[i]["caption"]
    assert any(a[i]["frames"].tobytes() != c[i]["frames"].tobytes() for i in range(8))
    assert sample_scene(3) == sample_scene(3) != sample_scene(4)


def test_render_shape_dtype_and_frame_times():
    scene = Scene("circle", "red", "right", "black", 0.1, 0.3, 0.5, 0.2)
    frames = render(scene, seconds=2.0, fps=8)
    assert frames.shape == (17, 64, 64, 3) and frames.dtype == np.uint8
    assert render(scene, 2.0, 8, 48, 80, num_frames=5).shape == (5, 48, 80, 3)
    assert render(scene, times=[0.0, 1.0]).shape == (2, 64, 64, 3)
    np.testing.assert_array_equal(render(scene, times=[1.0])[0], frames[8])
    assert len(np.unique(frames[0].reshape(-1, 3), axis=0)) > 3  # anti-aliased edge: blended colours exist


def test_backgrounds_are_dark_and_every_colour_stands_out():
    for name in BACKGROUNDS:
        bg = background_image(name, 16, 16)
        for rgb in COLORS.values():
            assert np.linalg.norm(bg - np.asarray(rgb), axis=-1).min() > 100, (name, rgb)


def test_shape_stays_inside_the_frame_with_background_border():
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene, seconds = sample_scene(rng, "train", 3.0), 3.0
        for t in (0.0, seconds):
            x, y = scene.position(t)
            assert scene.size < x < 1 - scene.size and scene.size < y < 1 - scene.size
    for _ in range(20):
        scene = sample_scene(rng, "heldout")
        frames = render(scene)
        bg = np.rint(background_image(scene.background, 64, 64)).astype(np.uint8)
        for edge in (np.s_[:, 0], np.s_[:, -1], np.s_[:, :, 0], np.s_[:, :, -1]):
            np.testing.assert_array_equal(frames[edge], np.broadcast_to(bg[edge[1:]], frames[edge].shape))


def test_pixels_match_the_scene():
    rng = np.random.default_rng(1)
    for i in range(50):
        scene = sample_scene(rng, "train" if i % 2 else "heldout")
        got = measure_scene(render(scene))
        assert {k: got[k] for k in ("color", "shape", "motion")} == _attrs(scene), (scene, got)
    fills = {
        s: measure_scene(render(Scene(s, "white", "still", "navy gradient", 0.14, 0.5, 0.5, 0.0)))["fill"]
        for s in SHAPES
    }
    assert fills["circle"] == pytest.approx(np.pi / 4, abs=0.03)
    assert fills["square"] == pytest.approx(1.0, abs=0.03) and fills["triangle"] == pytest.approx(0.5, abs=0.07)


# ----------------------------------------------------------------------------------------------------- captions


def test_canonical_captions():
    assert caption(Scene("circle", "red", "right", "black", 0.1, 0.5, 0.5, 0.1)) == "a red circle moves to the right"
    assert caption(Scene("square", "white", "still", "black", 0.1, 0.5, 0.5, 0.0)) == "a white square stays still"


def test_every_synonym_and_template_parses_back():
    assert set(TRAIN_TEMPLATES) < set(WIDE_TEMPLATES) and len(set(WIDE_TEMPLATES)) == len(WIDE_TEMPLATES)
    held = set(HELDOUT_TEMPLATES) | set(FRESH_TEMPLATES)
    assert not set(WIDE_TEMPLATES) & held and len(held) == len(HELDOUT_TEMPLATES) + len(FRESH_TEMPLATES)
    # the word a held-out template tests ("... in colour ...") stays out of every training template
    assert not any(re.search(r"colou?r", t.replace("{color}", "")) for t in WIDE_TEMPLATES)
    words = [w for ws in [*COLOR_WORDS.values(), *SHAPE_WORDS.values()] for w in ws]
    assert len(words) == len(set(words))  # no word names two attributes
    for template in WIDE_TEMPLATES + HELDOUT_TEMPLATES + FRESH_TEMPLATES:
        cases = []  # (format fields, expected attributes): one attribute's wording varies, the others are fixed
        default = dict(color="crimson", shape="disc", finite="rises up", participle="climbing up")
        cases += [(dict(default, color=w), dict(color=c)) for c, ws in COLOR_WORDS.items() for w in ws]
        cases += [(dict(default, shape=w), dict(shape=s)) for s, ws in SHAPE_WORDS.items() for w in ws]
        for m in MOTIONS:
            cases += [
                (dict(default, finite=p, participle=MOTION_PARTICIPLE[m][0]), dict(motion=m)) for p in MOTION_FINITE[m]
            ]
            cases += [
                (dict(default, finite=MOTION_FINITE[m][0], participle=p), dict(motion=m)) for p in MOTION_PARTICIPLE[m]
            ]
        for fields, want in cases:
            text = template.format(**fields)
            assert parse_caption(text) == {**dict(color="red", shape="circle", motion="up"), **want}, text


def test_random_paraphrases_parse_back_with_articles():
    rng = np.random.default_rng(2)
    for i in range(400):
        scene = sample_scene(rng, "train" if i % 2 else "heldout")
        text = caption(scene, rng, "paraphrase", "heldout" if i % 3 else "train")
        assert parse_caption(text) == _attrs(scene), text
        assert not any(f" a {v}" in f" {text}" for v in "aeiou"), text
    ivory = Scene("square", "white", "down", "black", 0.1, 0.5, 0.5, 0.1)
    texts = {caption(ivory, np.random.default_rng(s), "paraphrase") for s in range(200)}
    assert any(" an ivory " in f" {t} " for t in texts)
    assert parse_caption("a crimson ball drifting right") == dict(color="red", shape="circle", motion="right")
    assert parse_caption("something") == dict(color=None, shape=None, motion=None)


# ----------------------------------------------------------------------------------------------------- splits


def test_heldout_combos_never_in_train_split():
    rng = np.random.default_rng(3)
    train = [sample_scene(rng, "train") for _ in range(2000)]
    assert not any(is_heldout(s.color, s.shape, s.motion) for s in train)
    assert {s.color for s in train} == set(COLORS) and {s.shape for s in train} == set(SHAPES)
    assert {s.motion for s in train} == set(MOTIONS)
    held = [sample_scene(rng, "heldout") for _ in range(300)]
    assert all(is_heldout(s.color, s.shape, s.motion) for s in held)
    seen = {(s.color, s.shape) for s in held} | {(s.color, s.motion) for s in held}
    assert set(HELDOUT_COMBOS["color_shape"]) | set(HELDOUT_COMBOS["color_motion"]) <= seen
    with pytest.raises(ValueError):
        sample_scene(rng, "test")


# ----------------------------------------------------------------------------------------------------- long videos


def test_long_video_keeps_its_character_and_stays_in_frame():
    rng = np.random.default_rng(4)
    for split in ("train", "heldout"):
        long = sample_long(rng, seconds=60, scene_seconds=(4, 8), split=split)
        assert isinstance(long, LongScene) and long.seconds == pytest.approx(60.0)
        assert all(4 <= d <= 8 for d in long.durations[:-1]) and 0 < long.durations[-1] <= 8
        first = long.scenes[0]
        for j, s in enumerate(long.scenes):
            assert (s.shape, s.color, s.size, s.background) == (first.shape, first.color, first.size, first.background)
            if j:
                assert s.motion != long.scenes[j - 1].motion
                assert (s.x, s.y) == pytest.approx(
                    tuple(map(float, long.scenes[j - 1].position(long.durations[j - 1])))
                )
            if split == "train":
                assert not is_heldout(s.color, s.shape, s.motion)
        start = time.perf_counter()
        frames, segments = render_long(long, fps=8)
        assert time.perf_counter() - start < 5.0
        assert frames.shape == (481, 64, 64, 3)
        assert segments[0][0] == 0 and segments[-1][1] == len(frames)
        assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
        assert [m for _, _, m in segments] == long.motions
        for a, b, motion in segments:
            got = measure_scene(frames[a:b])
            assert (got["color"], got["shape"], got["motion"]) == (long.color, long.shape, motion)
        bg = np.rint(background_image(long.background, 64, 64)).astype(np.uint8)  # the border is never covered
        np.testing.assert_array_equal(frames[:, :, 0], np.broadcast_to(bg[:, 0], frames[:, :, 0].shape))
        np.testing.assert_array_equal(frames[:, 0], np.broadcast_to(bg[0], frames[:, 0].shape))
        assert len(long.captions()) == len(long.scenes)
        assert long.prompt.startswith(f"a {long.color} {long.shape} ")
        assert long.prompt.count(", then ") == len(long.scenes) - 1


# ----------------------------------------------------------------------------------------------------- dataset


def test_dataset_items_and_collation():
    world = ShapesWorld(6, seed=5, split="heldout", paraphrase=1.0, seconds=1.0, fps=8)
    item = world[2]
    assert item["frames"].shape == (9, 64, 64, 3)
    assert parse_caption(item["caption"]) == {k: item["attributes"][k] for k in ("color", "shape", "motion")}
    assert Scene(**item["scene"]).color == item["attributes"]["color"]
    batch = next(iter(torch.utils.data.DataLoader(world, batch_size=3)))
    assert batch["frames"].shape == (3, 9, 64, 64, 3) and len(batch["caption"]) == 3
    with pytest.raises(IndexError):
        world[6]


def test_write_dataset_pairs(tmp_path):
    paths = write_dataset(tmp_path / "data", 3, seed=6, paraphrase=0.0)
    world = ShapesWorld(3, seed=6, paraphrase=0.0)
    for i, path in enumerate(paths):
        text = path.with_suffix(".txt").read_text(encoding="utf-8").strip()
        assert text == world[i]["caption"]
        frames = read_video(path)
        assert frames.shape == (17, 64, 64, 3)
        got = measure_scene(frames)
        assert (got["color"], got["motion"]) == (world[i]["attributes"]["color"], world[i]["attributes"]["motion"])


def test_write_long_dataset_captions_each_segment(tmp_path):
    from semanticgen_core.lab.world import write_long_dataset
    from semanticgen_core.schedule import parse_caption
    from semanticgen_core.video_io import read_video

    (path,) = write_long_dataset(tmp_path, 1, seed=3, seconds=6.0, scene_seconds=(2, 3))
    schedule = parse_caption(path.with_suffix(".txt").read_text())
    starts = [t for t, _ in schedule]
    assert len(schedule) >= 2 and starts[0] == 0 and starts == sorted(starts) and starts[-1] < 6
    assert len({parse_caption_motion(c) for _, c in schedule}) >= 2  # the motion changes between segments
    assert read_video(path).shape == (49, 64, 64, 3)


def parse_caption_motion(text):
    from semanticgen_core.lab.world import parse_caption as attrs

    return attrs(text)["motion"]


def test_caption_manifest_gives_training_alternatives_of_the_same_scene(tmp_path):
    from semanticgen_core.lab.captions import caption_alternatives, caption_manifest
    from semanticgen_core.lab.world import template_of, write_long_dataset
    from train.data import discover_pairs

    write_dataset(tmp_path / "videos", 2, seed=1, paraphrase=1.0)
    write_long_dataset(tmp_path / "videos", 1, seed=2, seconds=6.0, scene_seconds=(2, 3))
    rows = caption_manifest(tmp_path / "videos", tmp_path, 6, seed=0)
    assert [r["video"] for r in rows] == ["videos/000000.mp4", "videos/000001.mp4", "videos/seg000000.mp4"]
    assert isinstance(rows[2]["caption"], str) and "\n" in rows[2]["caption"]  # a schedule is kept as it is
    heldout_starts = {t.split("{")[0] for t in HELDOUT_TEMPLATES if not t.startswith(("a {", "{"))}
    for row in rows[:2]:
        first, *rest = row["caption"]
        assert first == (tmp_path / row["video"]).with_suffix(".txt").read_text().strip() and len(rest) == 6
        assert {tuple(parse_caption(c).values()) for c in row["caption"]} == {tuple(parse_caption(first).values())}
        assert not any(c.startswith(tuple(heldout_starts)) for c in rest)  # training templates only
        assert all(template_of(c) in WIDE_TEMPLATES for c in rest)
        assert caption(Scene(**parse_caption(first), background="black", size=0.1, x=0.5, y=0.5, speed=0)) in rest
    (tmp_path / "m.jsonl").write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    assert [c for _, c in discover_pairs(tmp_path / "m.jsonl")] == [r["caption"] for r in rows]
    with pytest.raises(ValueError, match="does not name a colour, a shape and a motion"):
        caption_alternatives("a red thing", 3)
    wide = caption_alternatives("a red circle moves up", 200, rng=0)
    assert {template_of(c) for c in wide} == set(WIDE_TEMPLATES)  # the wider grammar is used, all of it
    assert {template_of(c) for c in caption_alternatives("a red circle moves up", 200, 0, "train")} == set(
        TRAIN_TEMPLATES
    )
    with pytest.raises(ValueError, match="training templates"):
        caption_alternatives("a red circle moves up", 3, templates="heldout")  # never train on held-out wording


def test_partial_captions_leave_exactly_one_attribute_unnamed_in_training_wording_only():
    import re

    from semanticgen_core.lab.captions import (
        COLOURLESS_TEMPLATES,
        GENERIC_SHAPE_WORDS,
        MOTIONLESS_TEMPLATES,
        caption_alternatives,
        partial_caption,
    )

    rng = np.random.default_rng(0)
    heldout_words = {w for t in HELDOUT_TEMPLATES + FRESH_TEMPLATES for w in re.findall(r"[a-z]+", t)}
    partial_words = {w for t in COLOURLESS_TEMPLATES + MOTIONLESS_TEMPLATES for w in re.findall(r"[a-z]+", t)}
    partial_words |= set(GENERIC_SHAPE_WORDS)
    training_words = {w for t in WIDE_TEMPLATES for w in re.findall(r"[a-z]+", t)}
    assert not (partial_words - training_words) & heldout_words  # no wording the evaluation tests is taught
    for _ in range(100):
        scene = sample_scene(rng, "train")
        no_shape, no_colour = partial_caption(scene, rng, "shape"), partial_caption(scene, rng, "color")
        no_motion = partial_caption(scene, rng, "motion")
        assert parse_caption(no_shape) == dict(color=scene.color, shape=None, motion=scene.motion), no_shape
        assert parse_caption(no_colour) == dict(color=None, shape=scene.shape, motion=scene.motion), no_colour
        assert parse_caption(no_motion) == dict(color=scene.color, shape=scene.shape, motion=None), no_motion
    alts = caption_alternatives("a red circle moves up", 4, rng=0, partial=3)
    assert len(alts) == 1 + 4 + 3 + 3
    assert [tuple(parse_caption(c).values()) for c in alts[5:]] == [("red", None, "up")] * 3 + [
        (None, "circle", "up")
    ] * 3
    assert caption_alternatives("a red circle moves up", 4, rng=0) == alts[:5]  # partial ones come after, same draws
    three = caption_alternatives("a red circle moves up", 0, rng=0, partial=2, unnamed=("shape", "color", "motion"))
    assert [c for c in three if parse_caption(c)["motion"] is None] == three[5:] and len(three) == 7
    with pytest.raises(ValueError, match="unnamed must be one of"):
        partial_caption(scene, rng, "background")


def test_template_of_names_the_template_of_any_paraphrase():
    from semanticgen_core.lab.world import template_of

    rng = np.random.default_rng(0)
    for templates, name in ((WIDE_TEMPLATES, "wide"), (HELDOUT_TEMPLATES, "heldout"), (FRESH_TEMPLATES, "fresh")):
        for _ in range(200):
            scene = sample_scene(rng, "heldout" if name != "wide" else "train")
            text = caption(scene, rng, "paraphrase", name)
            assert template_of(text) in templates, text
    assert template_of("a red circle moves to the right") == "a {color} {shape} {finite}"  # canonical
    assert template_of("an ivory disc, white in colour, stays still") is None  # not a phrase the grammar makes
    assert template_of("a red thing moves to the right") is None


def test_extra_colour_clips_pair_every_shape_with_off_palette_colours_named_in_their_captions(tmp_path):
    from semanticgen_core.lab.captions import extra_colour_rows
    from semanticgen_core.lab.world import EXTRA_COLOR_WORDS, EXTRA_COLORS

    palette = np.asarray(list(COLORS.values()), np.float32)
    assert all(np.linalg.norm(palette - np.float32(c), axis=1).min() >= 80 for c in EXTRA_COLORS.values())
    rows = extra_colour_rows(tmp_path / "extra", tmp_path, 12, seed=3, alternatives=2, partial=1)
    palette_words = {w for ws in COLOR_WORDS.values() for w in ws}
    seen = set()
    for row in rows:
        frames = read_video(tmp_path / row["video"])
        assert frames.shape == (17, 64, 64, 3) and len(row["caption"]) == 1 + 2 + 3
        words = {w for c in row["caption"] for w in re.findall(r"[a-z]+", c)}
        assert not words & palette_words  # no palette colour is named, so no held-out pair is ever shown
        name = [n for n, ws in EXTRA_COLOR_WORDS.items() if words & set(ws)]
        shape = parse_caption(row["caption"][0])["shape"]  # the first caption names the shape
        assert len(name) == 1 and shape is not None, row["caption"]
        drawn = np.abs(frames[0].reshape(-1, 3).astype(int) - EXTRA_COLORS[name[0]]).max(1) <= 2
        assert drawn.sum() > 20  # the object is drawn in that colour (lossless)
        seen.add((name[0], shape))
    assert seen == {(n, s) for n in EXTRA_COLORS for s in SHAPES}  # every extra colour with every shape
