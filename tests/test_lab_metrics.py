"""Metrics: flicker, drift, the attribute probe (quick training, save/load) and the probe-based scores."""

import numpy as np
import pytest
import torch

from semanticgen_core.lab.metrics import (
    AttributeProbe,
    drift,
    motion_agreement,
    motion_agreement_rate,
    probe_accuracy,
    segment_motion_accuracy,
    segment_predictions,
    subject_consistency,
    temporal_flickering,
    text_adherence,
    train_probe,
)
from semanticgen_core.lab.world import Scene, render, render_long, sample_long


class FakeProbe:
    """Returns fixed predictions in order (test double for the probe-based scores)."""

    def __init__(self, preds):
        self.preds, self.calls = list(preds), []

    def predict_batch(self, videos):
        self.calls.append([len(v) if hasattr(v, "__len__") else 0 for v in videos])
        out, self.preds = self.preds[: len(videos)], self.preds[len(videos) :]
        return out


def _p(color="red", shape="circle", motion="right"):
    return dict(color=color, shape=shape, motion=motion)


@pytest.fixture(scope="module")
def probe():
    """A probe trained briefly (a few seconds); the full-accuracy run is the benchmark's job."""
    return train_probe(steps=80, batch_size=16, seed=0)


# ----------------------------------------------------------------------------------------------------- weights-free


def test_temporal_flickering():
    static = np.full((6, 16, 16, 3), 77, np.uint8)
    assert temporal_flickering(static) == 1.0
    noise = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    assert temporal_flickering(noise) < 0.75
    flip = np.stack([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)] * 2)
    assert temporal_flickering(flip) == 0.0
    moving = render(Scene("circle", "red", "right", "black", 0.1, 0.3, 0.5, 0.2))
    assert 0.9 < temporal_flickering(moving) < 1.0
    with pytest.raises(ValueError):
        temporal_flickering(static[:1])


def test_drift():
    assert drift([0.7] * 20) == 0.0
    assert drift(list(range(20))) == pytest.approx(abs(np.mean([0, 1, 2]) - np.mean([17, 18, 19])))
    assert drift([1.0, 3.0]) == 2.0  # at least one value at each end
    assert drift(list(range(10)), frac=0.5) == 5.0
    with pytest.raises(ValueError):
        drift([])


# ----------------------------------------------------------------------------------------------------- probe


def test_probe_accepts_any_length_and_size():
    model = AttributeProbe()
    rng = np.random.default_rng(0)
    videos = [
        rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8) for t, h, w in [(2, 64, 64), (17, 48, 80), (40, 32, 32)]
    ]
    x = model.prepare(videos)
    assert x.shape == (3, 6, 3, 64, 64)
    logits = model(x)
    assert {k: v.shape[1] for k, v in logits.items()} == dict(color=6, shape=3, motion=5)
    assert set(model.predict(videos[0])) == {"color", "shape", "motion"}
    with pytest.raises(ValueError):
        model.prepare([videos[0][:1]])


def test_quick_probe_beats_chance_on_heldout_renders(probe):
    acc = probe_accuracy(probe, n=120, seed=1, split="heldout")
    assert acc["color"] > 0.6 and acc["motion"] > 0.6, acc  # chance: 1/6 and 1/5
    assert np.mean(list(acc.values())) > 0.55, acc


def test_probe_save_load_round_trip(probe, tmp_path):
    path = tmp_path / "probe.safetensors"
    probe.save(path)
    loaded = AttributeProbe.load(path)
    videos = [
        render(Scene(s, c, m, "navy gradient", 0.12, 0.5, 0.5, 0.1))
        for s, c, m in [("circle", "red", "left"), ("triangle", "blue", "still"), ("square", "white", "up")]
    ]
    assert loaded.predict_batch(videos) == probe.predict_batch(videos)
    x = probe.prepare(videos)
    with torch.no_grad():
        for k, v in probe(x).items():
            torch.testing.assert_close(loaded(x)[k], v, rtol=0, atol=0)
    from semanticgen_core.checkpoint import atomic_save_file

    atomic_save_file({"w": torch.zeros(1)}, tmp_path / "other.safetensors", {"role": "vae"})
    with pytest.raises(ValueError, match="not an attribute probe"):
        AttributeProbe.load(tmp_path / "other.safetensors")


def test_probe_scores_on_real_renders(probe):
    long = sample_long(3, seconds=24, scene_seconds=(4, 8))
    frames, segments = render_long(long)
    assert 0.0 <= subject_consistency(probe, frames, segments) <= 1.0
    assert segment_motion_accuracy(probe, frames, segments) >= 0.5
    clip = render(Scene("square", "green", "down", "black", 0.12, 0.5, 0.3, 0.15))
    assert motion_agreement(probe, clip, clip) == 1.0


# ----------------------------------------------------------------------------------------------------- scores


def test_text_adherence_counts_each_attribute():
    preds = [_p(), _p("blue", "square", "up"), _p("red", "triangle", "still")]
    prompts = ["a red circle moves to the right", "a cobalt box rising up", "a scarlet wedge sliding to the left"]
    got = text_adherence(FakeProbe(preds), [np.zeros(1)] * 3, prompts)
    assert got == dict(color=1.0, shape=1.0, motion=pytest.approx(2 / 3), all=pytest.approx(2 / 3))
    partial = text_adherence(FakeProbe([_p(), _p()]), [0, 0], ["a red thing", "something"])
    assert partial["color"] == 1.0 and np.isnan(partial["shape"]) and partial["all"] == 1.0
    with pytest.raises(ValueError):
        text_adherence(FakeProbe([]), [0], [])


def test_subject_consistency_and_segments():
    frames = np.zeros((100, 8, 8, 3), np.uint8)
    preds = [_p(), _p(motion="up"), _p("blue"), _p(shape="square")]
    fake = FakeProbe(preds)
    assert subject_consistency(fake, frames, window_seconds=4.0, fps=8) == 0.5
    assert fake.calls == [[32, 32, 32, 4]]
    assert (
        subject_consistency(FakeProbe(preds), frames, [(0, 10), (10, 20), (20, 30), (30, 40)], target=_p("blue"))
        == 0.25
    )
    assert (
        len(segment_predictions(FakeProbe(preds * 2), frames[:97], window_seconds=4.0)) == 3
    )  # a 1-frame tail is dropped
    segs = [(0, 50, "right"), (50, 100, "left")]
    assert segment_motion_accuracy(FakeProbe([_p(), _p()]), frames, segs) == 0.5


def test_motion_agreement():
    assert motion_agreement(FakeProbe([_p(), _p("blue")]), 0, 0) == 1.0
    assert motion_agreement(FakeProbe([_p(), _p(motion="up")]), 0, 0) == 0.0
    fake = FakeProbe([_p(), _p(motion="left"), _p(), _p()])  # refs first, then generations
    assert motion_agreement_rate(fake, [0, 0], [0, 0]) == 0.5
    with pytest.raises(ValueError):
        motion_agreement_rate(fake, [0], [])


def test_wilson_interval_known_values():
    from semanticgen_core.lab.metrics import wilson_interval

    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and abs(hi - 0.2775) < 1e-3
    lo, hi = wilson_interval(95, 100)
    assert abs(lo - 0.8882) < 1e-3 and abs(hi - 0.9785) < 1e-3


def test_frechet_distance_is_zero_for_equal_sets_and_sees_a_mean_shift():
    from semanticgen_core.lab.metrics import frechet_distance

    x = np.random.default_rng(0).normal(size=(400, 5))
    assert abs(frechet_distance(x, x)) < 1e-8
    assert abs(frechet_distance(x, x + np.array([3.0, 0, 0, 0, 0])) - 9.0) < 1e-6  # same covariance: |d|^2


def test_edge_sharpness_prefers_crisp_renders_and_psnr_and_colour_trace():
    from semanticgen_core.lab.metrics import colour_trace, edge_sharpness, psnr

    frames = render(Scene("square", "red", "right", "black", 0.15, 0.3, 0.5, 0.1), 1.0)
    blurred = frames.astype(np.float32)
    for axis in (1, 2):  # a 1-2-1 blur along each axis
        blurred = (np.roll(blurred, 1, axis) + 2 * blurred + np.roll(blurred, -1, axis)) / 4
    blurred = blurred.round().astype(np.uint8)
    assert edge_sharpness(frames) > 1.3 * edge_sharpness(blurred)
    assert psnr(frames, frames) == float("inf") and 20 < psnr(frames, blurred) < 40
    assert colour_trace(frames, (230, 40, 40)) == 1.0 and colour_trace(frames, (50, 100, 245)) == 0.0


def test_background_of_names_each_world_background_and_ignores_the_object():
    from semanticgen_core.lab.metrics import background_of
    from semanticgen_core.lab.world import BACKGROUNDS

    for i, bg in enumerate(BACKGROUNDS):
        frames = render(Scene(["circle", "square"][i % 2], "white", "right", bg, 0.16, 0.3, 0.5, 0.1), 2.0)
        assert background_of(frames) == bg
        noisy = np.clip(frames.astype(np.int16) + np.random.default_rng(i).integers(-6, 7, frames.shape), 0, 255)
        assert background_of(noisy.astype(np.uint8)) == bg  # generation noise does not move it
    shifted = render(Scene("circle", "red", "still", "black", 0.16, 0.5, 0.5, 0.0), 1.0).astype(np.int16) + 45
    assert background_of(np.clip(shifted, 0, 255).astype(np.uint8)) == "dark gray"  # a grey-lifted black reads gray
