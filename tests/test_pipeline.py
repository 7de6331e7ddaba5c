import math

import numpy as np
import pytest
import torch
from conftest import TINY_VAE, PatchMeanEncoder, TinyTextEncoder, randomize

from semanticgen_core import DIT_CONFIGS, PipelineConfig, SamplerConfig, SemanticCompressor, SemanticGenDiT
from semanticgen_core.checkpoint import CheckpointError
from semanticgen_core.config import SemanticSpec, VideoSpec

vae_mod = pytest.importorskip("semanticgen_core.vae")


def make_pipeline(encoder_dim=16):
    torch.manual_seed(0)
    sem = randomize(SemanticGenDiT(DIT_CONFIGS["tiny-sem"]).eval(), std=0.1, seed=1)
    lat = randomize(SemanticGenDiT(DIT_CONFIGS["tiny"]).eval(), std=0.1, seed=2)
    vae = vae_mod.WanVAE.from_config(TINY_VAE).eval()
    comp = SemanticCompressor(encoder_dim, 8).eval()
    cfg = PipelineConfig(
        video=VideoSpec(fps=8, z_dim=16),
        semantic=SemanticSpec(
            kind="test", dim=encoder_dim, compressed_dim=8, fps=2, temporal_patch=2, spatial_patch=16
        ),
        sem_sampler=SamplerConfig(steps=2, cfg=3.0, shift=2.0),
        lat_sampler=SamplerConfig(steps=2, cfg=3.0, shift=2.0),
    )
    return vae_mod, sem, lat, comp, vae, cfg


@pytest.fixture(scope="module")
def pipe():
    from semanticgen_core import SemanticGenPipeline

    _, sem, lat, comp, vae, cfg = make_pipeline()
    return SemanticGenPipeline(sem, lat, comp, vae, TinyTextEncoder(), PatchMeanEncoder(), cfg)


def test_text_to_video_end_to_end(pipe):
    steps = []
    frames = pipe("a red circle moves right", seconds=1.0, height=32, width=32, seed=3, callback=steps.append)
    assert frames.dtype == np.uint8 and frames.shape == (1, 9, 32, 32, 3)  # 8 fps * 1 s -> 4k+1 = 9 frames
    assert [(s["stage"], s["i"]) for s in steps] == [("plan", 0), ("plan", 1), ("latent", 0), ("latent", 1)]
    # plan grid: 9 frames at 8 fps span 1.125 s -> 3 semantic frames at 2 fps -> 2 temporal patches; 32 / 16 pixels
    assert steps[0]["x"].shape == (1, 8, 2, 2, 2)
    again = pipe("a red circle moves right", seconds=1.0, height=32, width=32, seed=3)
    other = pipe("a red circle moves right", seconds=1.0, height=32, width=32, seed=4)
    assert np.array_equal(frames, again) and not np.array_equal(frames, other)


def test_long_video_windowed_and_chunked_decode(pipe):
    z_full = pipe("a blue square", seconds=3.0, height=32, width=32, seed=1, return_latents=True)
    assert z_full.shape == (1, 16, 7, 4, 4)
    z_same = pipe("a blue square", seconds=3.0, height=32, width=32, seed=1, window=8, return_latents=True)
    assert torch.equal(z_full, z_same)  # a window covering the video is full attention
    z_win = pipe("a blue square", seconds=3.0, height=32, width=32, seed=1, window=2, return_latents=True)
    assert z_win.shape == z_full.shape and not torch.allclose(z_win, z_full)
    chunks = list(pipe.iter_decode(z_win, chunk=2))
    assert len(chunks) > 1
    assert np.array_equal(np.concatenate(chunks), pipe.decode(z_win)[0])


def test_reference_transfer_uses_the_reference_plan(pipe):
    rng = np.random.default_rng(0)
    ref_a = rng.integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    ref_b = 255 - ref_a
    plan = pipe.plan_from_video(ref_a)
    assert plan.shape == (1, 8, 2, 2, 2)
    a = pipe("anything", seconds=1.0, height=32, width=32, reference=ref_a, return_latents=True)
    b = pipe("anything", seconds=1.0, height=32, width=32, reference=ref_b, return_latents=True)
    assert not torch.allclose(a, b)


def test_reference_transfer_samples_stage_b_with_the_transfer_sampler(pipe):
    from dataclasses import replace

    ref = np.random.default_rng(1).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    config = pipe.config
    try:
        base = pipe("anything", seconds=1.0, height=32, width=32, reference=ref, return_latents=True)
        pipe.config = replace(config, transfer_sampler=SamplerConfig(steps=2, cfg=1.0, shift=2.0))
        own = pipe("anything", seconds=1.0, height=32, width=32, reference=ref, return_latents=True)
        pipe.config = replace(config, lat_sampler=SamplerConfig(steps=2, cfg=1.0, shift=2.0))
        same = pipe("anything", seconds=1.0, height=32, width=32, reference=ref, return_latents=True)
        pipe.config = replace(config, transfer_sampler=SamplerConfig(steps=2, cfg=1.0, shift=2.0))
        text = pipe("anything", seconds=1.0, height=32, width=32, seed=0, return_latents=True)
    finally:
        pipe.config = config
    assert torch.equal(own, same) and not torch.allclose(own, base)  # transfer_sampler = lat_sampler of cfg 1
    assert torch.equal(text, pipe("anything", seconds=1.0, height=32, width=32, seed=0, return_latents=True))


def test_reference_transfer_replans_the_reference_plan_with_stage_a(pipe):
    from dataclasses import replace

    ref = np.random.default_rng(1).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    config, plans = pipe.config, []
    original = pipe.generate_latents
    pipe.generate_latents = lambda z_sem, *a, **k: (plans.append(z_sem.clone()), original(z_sem, *a, **k))[1]
    try:
        kw = dict(seconds=1.0, height=32, width=32, reference=ref, return_latents=True)
        as_encoded = pipe("a red circle", **kw)  # config.transfer_replan is 0: the reference's plan as encoded
        pipe.config = replace(config, transfer_replan=0.3, replan_sampler=SamplerConfig(steps=4, cfg=2.0, shift=2.0))
        replanned = pipe("a red circle", **kw)
        again = pipe("a red circle", **kw, replan=0.0)  # the call's replan wins over the config's
        with pytest.raises(ValueError, match=r"replan=-0.1"):
            pipe("a red circle", **kw, replan=-0.1)
    finally:
        pipe.config = config
        del pipe.generate_latents
    encoded = pipe.plan_from_video(ref)
    assert torch.equal(plans[0], encoded) and torch.equal(plans[2], encoded) and torch.equal(as_encoded, again)
    assert plans[1].shape == encoded.shape and not torch.allclose(plans[1], encoded)
    assert not torch.allclose(replanned, as_encoded)
    assert len(plans) == 3  # the bad replan failed before any stage ran


def test_reference_clip_lasts_as_long_as_the_reference_unless_capped(pipe):
    frames = np.zeros((9, 40, 48, 3), np.uint8)  # 9 frames at the semantic 2 fps of a 4.5 s reference
    clip, seconds = pipe.reference_clip(frames, 32, 32, duration=4.5)
    assert seconds == 33 / 8 and clip.shape == (9, 32, 32, 3)  # the longest 4k+1 frames at 8 fps within 4.5 s
    clip, seconds = pipe.reference_clip(frames, 32, 32, seconds=1.0, duration=4.5)  # capped: 9 frames, 1.125 s
    assert seconds == 9 / 8 and len(clip) == 3
    assert pipe.reference_clip(frames, 32, 32, seconds=60.0, duration=4.5)[1] == 33 / 8  # never longer
    with pytest.raises(ValueError, match="no frames"):
        pipe.reference_clip(frames[:0], 32, 32)


@pytest.mark.parametrize("duration", [1.0, 2.0, 2.5, 3.3, 5.0, 10.0])
def test_reference_plans_have_the_geometry_of_training_clips(pipe, duration):
    """A reference of D seconds gives the frame count and semantic frames prepare.py gives a clip of that length."""
    video, spec = pipe.config.video, pipe.config.semantic
    sem_frames = math.ceil(duration * spec.fps - 1e-9)  # read_video(fps=sem fps) of the whole reference
    clip, seconds = pipe.reference_clip(np.zeros((sem_frames, 32, 32, 3), np.uint8), 32, 32, duration=duration)
    # prepare.py: the longest 4k+1 bucket that fits, then the semantic frames in the same span
    n = max(f for f in range(1, 1000, 4) if f <= duration * video.fps + 1e-9)
    train_sem = len(np.arange(0, n / video.fps - 1e-9, 1 / spec.fps))
    assert seconds * video.fps == n and len(clip) == train_sem
    assert video.latent_shape(seconds, 32, 32)[1] == (n - 1) // 4 + 1
    assert pipe.plan_grid(seconds, 32, 32)[0] == math.ceil(train_sem / spec.temporal_patch)
    assert pipe.plan_from_video(clip).shape[2] == pipe.plan_grid(seconds, 32, 32)[0]


def test_mismatched_parts_are_named():
    from semanticgen_core import SemanticGenPipeline

    _, sem, lat, comp, vae, cfg = make_pipeline(encoder_dim=32)
    pipe = SemanticGenPipeline(sem, lat, comp, vae, TinyTextEncoder(), PatchMeanEncoder(), cfg)
    with pytest.raises(CheckpointError, match="dim 16.*dim 32"):
        pipe.plan_from_video(np.zeros((4, 32, 32, 3), dtype=np.uint8))
    cfg.semantic.compressed_dim = 64
    with pytest.raises(ValueError, match="dim 8"):
        SemanticGenPipeline(sem, lat, comp, vae, TinyTextEncoder(), None, cfg)
