"""The paper-claims experiments: their metrics (lab/claims_metrics.py), the flash event (lab/events.py), the hooks
they need in train/ (prepare --semantic-source vae, stage1 --no-plan), and a --tiny smoke run of the benchmark."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PatchMeanEncoder, TinyTextEncoder
from test_train_data import TINY, PoolVAE, make_videos

from semanticgen_core.checkpoint import CheckpointError, save_checkpoint
from semanticgen_core.config import SemanticSpec
from semanticgen_core.lab import claims_metrics as cm
from semanticgen_core.lab.events import FlashWorld, add_flash, flash_amplitude, flash_trace
from semanticgen_core.lab.world import Scene, ShapesWorld, background_image, render
from train import stage1
from train.data import CachedLatentDataset, discover_pairs
from train.prepare import PrepareConfig, prepare, vae_plan_features

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))  # the benchmark scripts are imported as modules below


def test_wilson_interval_matches_known_values():
    p, lo, hi = cm.wilson(5, 10)
    assert p == 0.5 and lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert cm.wilson(0, 10)[1] == 0.0 and cm.wilson(0, 10)[2] == pytest.approx(0.2775, abs=1e-4)
    with pytest.raises(ValueError):
        cm.wilson(3, 2)
    m, lo, hi = cm.bootstrap_ci([1.0, 2.0, 3.0, 4.0])
    assert m == 2.5 and 1.0 <= lo < 2.5 < hi <= 4.0


def test_broken_frames_none_on_renders_and_flags_missing_or_doubled_objects():
    world = ShapesWorld(n=40, seed=5, split="train")
    assert not any(cm.broken_frames(world[i]["frames"]).any() for i in range(40))  # every background, shape, size
    a = Scene("circle", "red", "still", "charcoal gradient", 0.1, 0.25, 0.3, 0.0)
    b = Scene("square", "blue", "still", "charcoal gradient", 0.1, 0.75, 0.7, 0.0)
    fa, fb = render(a, 1.0), render(b, 1.0)
    bg = np.rint(background_image("charcoal gradient", 64, 64)).astype(np.uint8)
    two = np.where((fb != bg[None]).any(-1, keepdims=True), fb, fa)
    assert cm.broken_frames(two).all()  # two objects
    assert cm.broken_frames(np.broadcast_to(bg, fa.shape)).all()  # no object
    tiny = Scene("circle", "red", "still", "black", 0.03, 0.5, 0.5, 0.0)  # a speck, not a recognisable object
    assert cm.broken_frames(render(tiny, 1.0)).all()


def test_object_track_follows_the_rendered_centre_and_colour():
    scene = Scene("square", "yellow", "right", "navy gradient", 0.12, 0.3, 0.5, 0.2)
    frames = render(scene, 2.0)
    centres, colours = cm.object_track(frames)
    xs, ys = scene.position(np.arange(len(frames)) / 8)
    assert np.abs(centres[:, 0] - xs).max() < 1.5 / 64 and np.abs(centres[:, 1] - ys).max() < 1.5 / 64
    assert np.abs(colours - np.array([240, 220, 40])).max() < 3
    assert cm.background_consistency(frames) == pytest.approx(1.0, abs=1e-3)


def test_frechet_distance_is_zero_for_equal_sets_and_sees_a_shift():
    x = np.random.default_rng(0).normal(size=(2000, 4))
    assert cm.frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert cm.frechet_distance(x, x + 1.0) == pytest.approx(4.0, rel=1e-3)  # |mean shift|^2, same covariance
    f = np.eye(3)[[0, 0, 1]]
    assert cm.feature_consistency(f) == pytest.approx(0.5)  # rows 1: (1 + 1) / 2; row 2: (0 + 0) / 2
    assert cm.feature_consistency(np.ones((4, 3))) == pytest.approx(1.0)


def test_flash_is_drawn_and_read_back_and_flash_world_is_deterministic():
    frames = render(Scene("circle", "green", "right", "black", 0.1, 0.3, 0.5, 0.2), 2.0)
    flashed = add_flash(frames, 7)
    assert flash_amplitude(flashed, 7, 0) == pytest.approx(0.6 * 255, rel=0.05)
    assert np.abs(flash_trace(frames)).max() < 3  # motion of a small shape is no flash
    assert flash_amplitude(flashed, 8) > 100  # one frame late still counts (tolerance 1)
    world = FlashWorld(n=20, seed=1, p=0.5, odd_only=True)
    idx = [world[i]["flash"] for i in range(20)]
    assert idx == [world[i]["flash"] for i in range(20)] and all(k is None or k % 2 for k in idx)
    assert 0 < sum(k is not None for k in idx) < 20


def test_prepare_vae_source_folds_latents_onto_the_plan_grid(tmp_path):
    videos = make_videos(tmp_path / "videos", n_square=3, n_wide=0)
    cfg = PrepareConfig(**{**TINY, "sizes": "32x32", "semantic_source": "vae", "vae_plan_grid": "2x2"})
    out = prepare(cfg, discover_pairs(videos), tmp_path / "cache", (PoolVAE(), None, TinyTextEncoder()))
    ds = CachedLatentDataset(out["dir"])
    for i in range(len(ds)):
        item = ds[i]
        assert torch.equal(item["sem_feats"], vae_plan_features(item["latents"], (2, 2)))  # [64, T, 2, 2]
        assert item["sem_feats"].shape[0] == 16 * 2 * 2
    spec = SemanticSpec.from_dict(out["semantic"])
    assert spec.kind == "vae_latent"
    for e in ds.entries:  # the plan grid rule gives one plan frame per latent frame
        assert spec.grid(e["num_frames"] / 8, 32, 32) == tuple(e["shapes"]["sem_feats"][1:])
    with pytest.raises(ValueError, match="vae_plan_grid"):
        vae_plan_features(torch.zeros(16, 3, 4, 6), (4, 4))


def test_stage1_without_plan_exports_a_plain_latent_generator(tmp_path):
    videos = make_videos(tmp_path / "videos", n_square=3, n_wide=0)
    out = prepare(PrepareConfig(**{**TINY, "sizes": "32x32"}), discover_pairs(videos), tmp_path / "cache",
                  (PoolVAE(), PatchMeanEncoder(), TinyTextEncoder()))  # fmt: skip
    run = tmp_path / "run"
    stage1.main(stage1.parse_args(["--data", out["dir"], "--out", str(run), "--no-plan", "--max-steps", "2",
                                   "--batch-size", "2", "--warmup-steps", "1", "--window", "2"]))  # fmt: skip
    lat, video = stage1.load_latent_generator(run / stage1.NO_PLAN_EXPORT)
    assert lat.config.sem_channels == 0 and lat.sem_embedding is None and video.z_dim == 16
    x = torch.randn(1, 16, 5, 4, 4)
    assert lat(x, torch.rand(1), torch.randn(1, 4, 24), window=2).shape == x.shape
    save_checkpoint(tmp_path / "other.safetensors", {"w": torch.zeros(1)}, "semantic_generator", {})
    with pytest.raises(CheckpointError, match="latent_generator was expected"):
        stage1.load_latent_generator(tmp_path / "other.safetensors")


@pytest.mark.slow
def test_paper_claims_tiny_runs_every_experiment_and_resumes(tmp_path, monkeypatch):
    """The whole benchmark at --tiny sizes (a smoke test: the numbers mean nothing), then a rerun that trains and
    evaluates nothing."""
    import paper_claims

    work = tmp_path / "claims"
    results = paper_claims.main(paper_claims.parse_args(["--tiny", "--work", str(work), "--threads", "1"]))
    for name in paper_claims.EXPERIMENTS:
        r = results[name]
        assert r["direction"] in ("yes", "partly", "no") and r["checks"] and r["table"][1]
    assert json.loads((work / "claims.json").read_text())["compression"]["claim"].startswith("Compressing")
    assert "| plan |" in (work / "claims.md").read_text()
    plots = {p.name for p in (work / "plots").glob("*.png")}
    assert {"compression_frames.png", "space_all.png", "long_kept.png", "transfer_frames.png"} <= plots
    budget = json.loads((work / "budget.json").read_text())
    assert budget["total_cpu_hours"] > 0 and set(budget["plan_cpu_seconds"]) == set(paper_claims.EXPERIMENTS)

    def refuse(*a, **k):
        raise AssertionError("a finished model or evaluation was redone")

    monkeypatch.setattr(stage1, "main", refuse)
    monkeypatch.setattr(paper_claims.Sampler, "text_to_video", refuse)
    again = paper_claims.main(paper_claims.parse_args(["--tiny", "--work", str(work), "--only", "compression"]))
    assert again["compression"]["rows"] == results["compression"]["rows"]


def test_sampler_sweep_compares_two_builds_paired_on_the_same_prompts(tmp_path):
    """benchmarks/sampler_sweep.py --against: differences per prompt (held-out pairs' None skipped); a file of other
    prompts is refused before any work."""
    import sampler_sweep

    old = {"shape": [1, 0, 1, 0], "shape_pairs": [1, None, None, 0]}
    new = {"shape": [1, 1, 1, 1], "shape_pairs": [1, None, None, 1]}
    line = sampler_sweep.paired(new, old)
    assert "shape +50.0 [" in line and "shape_pairs +50.0 [" in line
    assert sampler_sweep.paired(old, old).count("+0.0 [+0.0, +0.0]") == 2
    args = sampler_sweep.parse_args(["--settings", "[{}]", "--n", "4", "--seed", "1", "--against", "x"])
    f = tmp_path / "a.json"
    f.write_text(json.dumps([{"hits": old, "prompts": {"task": "generate", "n": 4, "seed": 2, "split": "heldout"}}]))
    with pytest.raises(SystemExit, match="same --n, --seed"):
        sampler_sweep.read_against(str(f), args)
    f.write_text(json.dumps([{"hits": old, "prompts": {"task": "generate", "n": 4, "seed": 1, "split": "heldout"}}]))
    assert sampler_sweep.read_against(str(f), args) == old
    with pytest.raises(SystemExit, match="not a --json file"):
        sampler_sweep.read_against(str(tmp_path / "missing.json"), args)
    f.write_text("[[1, 0]]")  # JSON, but not this script's rows
    with pytest.raises(SystemExit, match="needs per-prompt hits"):
        sampler_sweep.read_against(str(f), args)


def test_sampler_sweep_settings_reach_each_stage_and_the_long_task_is_offered():
    import sampler_sweep

    from semanticgen_core.config import PipelineConfig

    c = sampler_sweep.with_settings(PipelineConfig(), {"a": 2, "b": 6, "noise": 0.3, "r": 0.35})
    assert (c.sem_sampler.cfg, c.lat_sampler.cfg, c.transfer_sampler.cfg) == (2, 6, 6)
    assert c.plan_noise == 0.3 and c.transfer_replan == 0.35  # --task long reads the noise from the config
    assert sampler_sweep.with_settings(PipelineConfig(), {}).plan_noise == PipelineConfig().plan_noise
    with pytest.raises(SystemExit, match="unknown keys \\['cfg'\\]"):
        sampler_sweep.with_settings(PipelineConfig(), {"cfg": 3})
    assert sampler_sweep.parse_args(["--settings", "[{}]", "--task", "long", "--n", "40"]).task == "long"
    for argv, msg in ((["--task", "long", "--frechet"], "--frechet goes with --task generate"),
                      (["--control"], "--control goes with --task transfer"),
                      (["--task", "transfer", "--split", "train"], "held-out scenes only")):  # fmt: skip
        with pytest.raises(SystemExit, match=msg):  # refused before any model loads
            sampler_sweep.main(sampler_sweep.parse_args(["--settings", "[{}]", *argv]))


def test_frechet_scores_is_zero_for_the_real_clips_and_grows_for_altered_ones():
    """embedded_eval.frechet_scores (also sampler_sweep --frechet): generated vs real renders next to the floor."""
    import embedded_eval

    class MeanColourProbe:  # features: per-channel mean and spread of each clip
        def embed(self, videos):
            return np.stack([np.concatenate([v.mean((0, 1, 2)), v.std((0, 1, 2))]) for v in videos]).astype(np.float64)

    real = [ShapesWorld(n=24, seed=5, split="heldout")[i]["frames"].astype(np.float32) for i in range(24)]
    same = embedded_eval.frechet_scores(MeanColourProbe(), real, real, seed=5)
    assert same["generated_vs_real"] == pytest.approx(0.0, abs=1e-6) and same["real_vs_real"] > 0
    dark = embedded_eval.frechet_scores(MeanColourProbe(), [v * 0.5 for v in real], real, seed=5)
    assert dark["generated_vs_real"] > 4 * same["real_vs_real"]  # measured 8.6x
    import frechet_parts

    with pytest.raises(SystemExit, match="--n 5: needs >= 20"):  # refused before any model loads
        frechet_parts.main(["--n", "5"])


def test_plan_conflict_swaps_to_each_other_shape_and_refuses_no_scenes():
    """benchmarks/plan_conflict.py: the conflicting plan is always of another shape, both others in turn."""
    import plan_conflict

    from semanticgen_core.lab.world import SHAPES

    for shape in SHAPES:
        others = {plan_conflict.other_shape(i, shape) for i in range(4)}
        assert shape not in others and others == set(SHAPES) - {shape}
    with pytest.raises(SystemExit, match="--n 0: needs at least one scene"):
        plan_conflict.main(["--n", "0"])
