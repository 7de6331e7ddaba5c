"""Plan files (save, load, checks against the model) and plan edits (take, splice, repeat, blend, regenerate,
replan)."""

import sys
from pathlib import Path

import pytest
import torch

from semanticgen_core.checkpoint import CheckpointError
from semanticgen_core.config import SemanticSpec, VideoSpec
from semanticgen_core.plan_edit import blend, frame_range, keep_mask, regenerate, repeat, replan, splice, take
from semanticgen_core.plan_io import SemanticPlan, check_plan, load_plan, plan_grid, plan_seconds, save_plan

SPEC = SemanticSpec(kind="test", dim=16, compressed_dim=8, fps=2, temporal_patch=2, spatial_patch=16)
VIDEO = VideoSpec(fps=8, z_dim=16)


def make(seconds=3.0, seed=0, spec=SPEC, video=VIDEO) -> SemanticPlan:
    grid = plan_grid(spec, video, seconds, 32, 32)
    z = torch.randn(1, spec.compressed_dim, *grid, generator=torch.Generator().manual_seed(seed))
    return SemanticPlan(z, spec, video, seconds, 32, 32, "generated", [(0.0, "a"), (1.0, "b")])


def test_plan_file_round_trip_and_checks(tmp_path):
    plan = make()
    path = save_plan(tmp_path / "p.safetensors", plan)
    back = load_plan(path)
    assert torch.equal(back.z, plan.z) and back.semantic == SPEC and back.video == VIDEO
    assert (back.seconds, back.height, back.width, back.schedule) == (3.0, 32, 32, [(0.0, "a"), (1.0, "b")])
    check_plan(back, SPEC, VIDEO)
    other = SemanticSpec(**{**SPEC.to_dict(), "kind": "qwen2_5_vl", "compressed_dim": 4})
    with pytest.raises(CheckpointError, match=r"kind 'test' vs 'qwen2_5_vl'.*compressed_dim 8 vs 4"):
        check_plan(back, other, VIDEO, "--plan p")
    with pytest.raises(CheckpointError, match="8 fps.*16 fps"):
        check_plan(back, SPEC, VideoSpec(fps=16))
    back.seconds = 6.0
    with pytest.raises(CheckpointError, match=r"grid .* expects"):
        check_plan(back, SPEC, VIDEO)
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_plan(tmp_path / "x.safetensors")
    with pytest.raises(ValueError, match=".safetensors"):
        save_plan(tmp_path / "p.pt", plan)


@pytest.mark.parametrize("video", [VideoSpec(fps=8), VideoSpec(fps=16), VideoSpec(fps=24)])
def test_plan_seconds_fits_every_length(video):
    spec = SemanticSpec(kind="test", fps=1.6, temporal_patch=2, spatial_patch=16)
    for n in range(1, 40):
        seconds = plan_seconds(n, spec, video, 32, 32)
        assert plan_grid(spec, video, seconds, 32, 32)[0] == n
        assert video.num_frames(seconds) / video.fps == pytest.approx(seconds)


def test_take_splice_repeat_blend():
    a, b = make(4.0, seed=0), make(3.0, seed=1)  # 1 s per semantic frame: 5 and 4 frames (4k + 1 video frames)
    assert a.grid[0] == 5 and b.grid[0] == 4 and a.frame_seconds == 1.0
    part = take(a, 1.0, 3.0)
    assert torch.equal(part.z, a.z[:, :, 1:3]) and plan_grid(SPEC, VIDEO, part.seconds, 32, 32) == part.grid
    with pytest.raises(ValueError, match="holds no semantic frame"):
        take(a, 7.0, 9.0)
    cut = splice(a, b, crossfade=1)
    assert cut.grid[0] == 8 and plan_grid(SPEC, VIDEO, cut.seconds, 32, 32) == cut.grid
    assert torch.equal(cut.z[:, :, :4], a.z[:, :, :4]) and torch.equal(cut.z[:, :, 5:], b.z[:, :, 1:])
    assert torch.allclose(cut.z[:, :, 4], 0.5 * (a.z[:, :, 4] + b.z[:, :, 0]))  # the one crossfaded frame
    hard = splice(a, b, crossfade=0)
    assert torch.equal(hard.z, torch.cat([a.z, b.z], dim=2))
    loop = repeat(b, 3)
    assert loop.grid[0] == 12 and torch.equal(loop.z[:, :, 8:], b.z)
    mix = blend(a, make(4.0, seed=2), 0.25)
    assert torch.allclose(mix.z, 0.75 * a.z + 0.25 * make(4.0, seed=2).z)
    with pytest.raises(ValueError, match="grids"):
        blend(a, b, 0.5)
    with pytest.raises(ValueError, match="crossfade"):
        splice(a, b, crossfade=9)


def test_regenerate_keeps_the_rest_exactly():
    from conftest import TinyTextEncoder
    from test_pipeline import make_pipeline

    from semanticgen_core import SemanticGenPipeline

    _, sem, lat, comp, vae, cfg = make_pipeline()
    pipe = SemanticGenPipeline(sem, lat, comp, vae, TinyTextEncoder(), None, cfg)
    plan = make(6.0)  # 7 semantic frames of 1 s
    assert frame_range(plan, 2.0, 4.0) == (2, 4) and keep_mask(plan, 2.0, 4.0).tolist() == [1, 1, 0, 0, 1, 1, 1]
    ctx, uncond = pipe.encode_text(["a red circle moves up"])
    new = regenerate(pipe, plan, 2.0, 4.0, ctx, uncond, generator=torch.Generator().manual_seed(0))
    keep = keep_mask(plan, 2.0, 4.0)
    assert new.grid == plan.grid and new.seconds == plan.seconds
    assert torch.equal(new.z[:, :, keep], plan.z[:, :, keep])  # kept frames: bit for bit
    assert not torch.allclose(new.z[:, :, ~keep], plan.z[:, :, ~keep])
    # the regenerated frames depend on the kept ones (they are generated knowing them), not only on the seed
    shifted = SemanticPlan(plan.z + 1.0, *list(vars(plan).values())[1:])
    other = regenerate(pipe, shifted, 2.0, 4.0, ctx, uncond, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(other.z[:, :, ~keep], new.z[:, :, ~keep])


def test_replan_starts_from_the_noised_plan_and_integrates_the_rest_of_the_schedule():
    from conftest import TinyTextEncoder
    from test_pipeline import make_pipeline

    from semanticgen_core import SemanticGenPipeline, flow
    from semanticgen_core.config import SamplerConfig

    _, sem, lat, comp, vae, cfg = make_pipeline()
    pipe = SemanticGenPipeline(sem, lat, comp, vae, TinyTextEncoder(), None, cfg)
    plan = make(3.0)
    ctx, uncond = pipe.encode_text(["a red circle moves up"])
    sampler = SamplerConfig(steps=10, cfg=2.0, shift=2.0)
    seen = []
    original = sem.forward
    sem.forward = lambda x, t, *a, **k: (seen.append((x.clone(), float(t[0]))), original(x, t, *a, **k))[1]
    gen = torch.Generator().manual_seed(0)
    new = replan(pipe, plan, 0.3, ctx, uncond, sampler, gen)
    ts = flow.schedule_from(0.3, 10, 2.0)
    assert ts[0] == 0.3 and ts[-1] == 0 and bool((ts.diff() < 0).all())
    assert set(ts[1:].tolist()) <= set(flow.schedule(10, 2.0).tolist())
    times = sorted({t for _, t in seen}, reverse=True)
    assert times == pytest.approx(ts[:-1].tolist())  # only the schedule's times below 0.3 (plus 0.3 itself)
    eps = torch.randn(plan.z.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(seen[0][0][:1], flow.interpolate(plan.z, eps, torch.tensor(0.3)), atol=1e-6)
    assert new.grid == plan.grid and new.seconds == plan.seconds and new.schedule == plan.schedule
    assert not torch.allclose(new.z, plan.z)
    # the result keeps more of the plan from a lower flow time; 0 is the plan itself; 1 is a new plan
    far = replan(pipe, plan, 0.9, ctx, uncond, sampler, torch.Generator().manual_seed(0))
    assert (new.z - plan.z).norm() < (far.z - plan.z).norm()
    assert replan(pipe, plan, 0.0, ctx, uncond, sampler) is plan
    fresh = pipe.generate_plan(ctx, uncond, plan.grid, sampler, torch.Generator().manual_seed(0))
    assert torch.equal(replan(pipe, plan, 1.0, ctx, uncond, sampler, torch.Generator().manual_seed(0)).z, fresh)
    with pytest.raises(ValueError, match=r"replan=1.5: must be a finite number in \[0, 1\]"):
        replan(pipe, plan, 1.5, ctx, uncond, sampler)


def test_cli_saves_and_renders_plans(tmp_path, capsys):
    from semanticgen_core.cli import main

    plan, out = tmp_path / "plan.safetensors", tmp_path / "a.mp4"
    common = ["generate", "--steps", "1", "--quiet"]
    argv = [*common, "--prompt", "a red circle moves right", "--prompt", "1: it moves up", "--seconds", "2"]
    assert main([*argv, "--out", str(out), "--save-plan", str(plan)]) == 0
    saved = load_plan(plan)
    assert saved.schedule == [(0.0, "a red circle moves right"), (1.0, "it moves up")] and saved.seconds == 2.0
    assert main([*common, "--prompt", "a blue square", "--plan", str(plan), "--out", str(tmp_path / "b.mp4")]) == 0
    assert main([*common, "--prompt", "x", "--plan", str(plan), "--seconds", "3", "--out", str(out)]) == 1
    assert "--seconds 3 (the plan: 2)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*common, "--prompt", "a", "--prompt", "1: b", "--prompt", "0.5: c"])
    assert "--prompt '0.5: c'" in capsys.readouterr().err


def test_plan_edits_lab_helpers_find_eight_segments_and_the_object():
    """benchmarks/plan_edits_lab.py: the 8-prompt schedules it draws, and the object track it times splices by."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from dataclasses import replace

    import numpy as np
    from plan_edits_lab import eight_segments, object_x

    from semanticgen_core.lab.world import render, sample_scene

    for i in range(3):
        long = eight_segments(0, i)
        motions = long.motions
        assert len(motions) == 8 and long.seconds == 60.0 and all(6 <= d <= 8 for d in long.durations)
        assert all(a != b for a, b in zip(motions, motions[1:]))
    scene = replace(sample_scene(np.random.default_rng(0), "train", 2.0), motion="still", speed=0.0, x=0.3, y=0.5)
    xs = object_x(render(scene, 2.0, fps=8))
    assert np.allclose(xs, 0.3 * 64, atol=1.5)  # the centroid of the drawn shape, in pixels
    assert np.isnan(object_x(np.zeros((2, 64, 64, 3), np.uint8))).all()  # no object: NaN, not 0
