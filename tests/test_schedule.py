"""Prompt schedules: parsing, frames -> segments, per-segment text cross-attention in the DiT, the pipeline."""

import pytest
import torch
from conftest import randomize

from semanticgen_core.config import DIT_CONFIGS, DiTConfig, SemanticSpec, VideoSpec
from semanticgen_core.dit import CrossAttention, SemanticGenDiT, segment_groups, token_segments
from semanticgen_core.schedule import (
    ScheduleError,
    check_schedule,
    format_schedule,
    latent_frame_times,
    parse_caption,
    parse_schedule,
    plan_frame_times,
    segment_ids,
)

# ----------------------------------------------------------------------------------------------------------------
# Parsing
# ----------------------------------------------------------------------------------------------------------------


def test_parse_schedule_cli_syntax():
    s = parse_schedule(["a red square moves to the right", "6: the red square moves up", "14.5s: it stays still"])
    assert s == [(0.0, "a red square moves to the right"), (6.0, "the red square moves up"), (14.5, "it stays still")]
    assert parse_schedule("scene: a dog runs") == [(0.0, "scene: a dog runs")]  # not a number: part of the prompt
    assert parse_schedule(["0: first", "2: second"]) == [(0.0, "first"), (2.0, "second")]


@pytest.mark.parametrize(
    "entries, match",
    [
        (["a", "6: b", "3: c"], r"--prompt '3: c': starts at 3 s.*increasing"),
        (["4: late start"], r"--prompt '4: late start': the first prompt must start at 0"),
        (["a", "b"], r"--prompt 'b': starts at 0 s"),
        (["a", "5:   "], r"--prompt '5:   ': the prompt is empty"),
        ([], "no prompt"),
    ],
)
def test_parse_schedule_errors_name_the_entry(entries, match):
    with pytest.raises(ScheduleError, match=match):
        parse_schedule(entries)


def test_caption_files_single_line_verbatim_several_lines_a_schedule():
    assert parse_caption("a red circle moves right\n") == [(0.0, "a red circle moves right")]
    assert parse_caption("3: odd but one line") == [(0.0, "3: odd but one line")]  # one line: unchanged behaviour
    lines = "a red circle moves right\n\n4: it moves up\n7: it stays still\n"
    schedule = parse_caption(lines)
    assert schedule == [(0.0, "a red circle moves right"), (4.0, "it moves up"), (7.0, "it stays still")]
    assert parse_caption(format_schedule(schedule)) == schedule
    with pytest.raises(ScheduleError, match="clip.txt"):
        parse_caption("a\n2: b\n1: c", "clip.txt")
    with pytest.raises(ScheduleError, match="lasts 6 s"):
        check_schedule(schedule, seconds=6.0)


def test_frames_take_the_segment_of_their_centre_time():
    video = VideoSpec(fps=8, temporal_factor=4)
    t = latent_frame_times(5, video)  # latent 0 = frame 0; latent i covers frames 4i-3..4i
    assert torch.allclose(t, torch.tensor([0.0, 2.5, 6.5, 10.5, 14.5], dtype=torch.float64) / 8)
    sem = SemanticSpec(fps=2, temporal_patch=2)
    assert torch.allclose(plan_frame_times(3, sem), torch.tensor([0.25, 1.25, 2.25], dtype=torch.float64))
    assert segment_ids([0.0, 1.0], t).tolist() == [0, 0, 0, 1, 1]
    assert segment_ids(torch.tensor([[0.0, 1.0], [0.0, float("inf")]]), t).tolist() == [[0, 0, 0, 1, 1], [0] * 5]


# ----------------------------------------------------------------------------------------------------------------
# DiT
# ----------------------------------------------------------------------------------------------------------------


def data(b=2, t=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, tt = torch.randn(b, 16, t, 4, 4, generator=g), torch.rand(b, generator=g)
    sem = torch.randn(b, 8, 3, 1, 1, generator=g)
    ctx = torch.randn(b, 3, 5, 24, generator=g)  # three segments of text
    ctx[:, :, 3:] = 0  # zero padding (collapsed exactly)
    return x, tt, sem, ctx


def one_layer(cfg, seed=0):
    return randomize(SemanticGenDiT(DiTConfig.from_dict({**cfg.to_dict(), "num_layers": 1})).eval(), seed=seed)


def test_one_segment_is_bit_identical(tiny_dit):
    x, t, sem, ctx = data()
    with torch.no_grad():
        for window in (None, 2):
            plain = tiny_dit(x, t, ctx[:, 0], sem=sem, window=window)
            assert torch.equal(tiny_dit(x, t, ctx[:, :1], sem=sem, window=window), plain)
            assert torch.equal(tiny_dit(x, t, ctx[:, :1], sem=sem, window=window, segments=torch.zeros(6)), plain)
            # several segments, every frame in the first: the same up to float rounding
            same = tiny_dit(x, t, ctx, sem=sem, window=window, segments=torch.zeros(6, dtype=torch.long))
            assert torch.allclose(same, plain, atol=1e-5)


@pytest.mark.parametrize("window", [None, 2, 4])
def test_a_segment_text_changes_only_its_own_frames(tiny_cfg, window):
    """One block: self-attention, then cross-attention, then per-token layers: a frame's output reads only its own
    segment's text. Window 4 puts the cut (frame 3) inside a window chunk: gathered, not contiguous, tokens."""
    model = one_layer(tiny_cfg)
    x, t, sem, ctx = data()
    seg = torch.tensor([0, 0, 0, 1, 1, 2])
    other = ctx.clone()
    other[:, 1, :3] = torch.randn_like(other[:, 1, :3])  # change segment 1's text only (same padding)
    with torch.no_grad():
        a, b = (model(x, t, c, sem=sem, window=window, segments=seg) for c in (ctx, other))
    changed = (a - b).abs().amax(dim=(0, 1, 3, 4)) > 1e-6
    assert changed.tolist() == [False, False, False, True, True, False]


def test_stage_a_frames_read_their_segment_with_full_attention():
    model = one_layer(DIT_CONFIGS["tiny-sem"], seed=3)
    g = torch.Generator().manual_seed(1)
    z, t = torch.randn(1, 8, 5, 2, 2, generator=g), torch.rand(1, generator=g)
    ctx = torch.randn(1, 2, 4, 24, generator=g)
    seg = torch.tensor([0, 0, 1, 1, 1])
    other = ctx.clone()
    other[:, 0] += 1.0
    with torch.no_grad():
        d = (model(z, t, ctx, segments=seg) - model(z, t, other, segments=seg)).abs().amax(dim=(0, 1, 3, 4))
    assert (d > 1e-6).tolist() == [True, True, False, False, False]


def test_grouped_cross_attention_equals_per_token_reference():
    torch.manual_seed(0)
    attn = randomize(CrossAttention(32, 2, 1e-6), seed=4)
    x, ctx = torch.randn(3, 10, 32), torch.randn(3, 2, 4, 32)
    tok_seg = torch.tensor([[0] * 4 + [1] * 6, [0, 0, 1, 1, 0, 0, 1, 1, 1, 1], [0] * 4 + [1] * 6])  # rows 0, 2 alike
    groups = segment_groups(tok_seg)
    assert len(groups) == 4 and any(torch.is_tensor(w[1]) for _, _, w in groups)  # a gathered, non-contiguous group
    got = attn(x, ctx, None, groups)
    ref = torch.stack([attn(x, ctx[:, g]) for g in range(2)])  # [G, B, L, D]: every token with every text
    want = torch.gather(ref, 0, tok_seg[None, :, :, None].expand(1, -1, -1, 32))[0]
    assert torch.allclose(got, want, atol=1e-6)
    got.sum().backward()
    assert attn.k.weight.grad.abs().sum() > 0


def test_semantic_tokens_take_the_segment_at_their_centre():
    seg = torch.tensor([[0, 0, 0, 1, 1, 1]])  # 6 latent frames, 3 semantic frames centred on latent 1, 3, 5
    tok = token_segments(seg, (6, 1, 1), (3, 1, 2))
    assert tok[0, :6].tolist() == [0, 0, 0, 1, 1, 1] and tok[0, 6:].tolist() == [0, 0, 1, 1, 1, 1]


def test_bad_segments_are_named(tiny_dit):
    x, t, sem, ctx = data()
    with pytest.raises(ValueError, match="needs segments"):
        tiny_dit(x, t, ctx, sem=sem)
    with pytest.raises(ValueError, match="index the 3 context segments"):
        tiny_dit(x, t, ctx, sem=sem, segments=torch.full((6,), 3))


# ----------------------------------------------------------------------------------------------------------------
# Pipeline
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipe():
    from conftest import PatchMeanEncoder, TinyTextEncoder
    from test_pipeline import make_pipeline

    from semanticgen_core import SemanticGenPipeline

    _, sem, lat, comp, vae, cfg = make_pipeline()
    return SemanticGenPipeline(sem, lat, comp, vae, TinyTextEncoder(), PatchMeanEncoder(), cfg)


def test_pipeline_schedule(pipe):
    kw = dict(seconds=3.0, height=32, width=32, seed=1, return_latents=True)
    plain = pipe("a blue square", **kw)
    assert torch.equal(pipe([(0.0, "a blue square")], **kw), plain)  # a one-entry schedule is the plain prompt
    two = pipe([(0.0, "a blue square"), (1.5, "a red circle")], **kw)
    windowed = pipe([(0.0, "a blue square"), (1.5, "a red circle")], window=2, **kw)
    assert two.shape == plain.shape == windowed.shape and not torch.allclose(two, plain)
    with pytest.raises(ScheduleError, match="lasts 3 s"):
        pipe([(0.0, "a"), (3.0, "b")], **kw)
    ctx, uncond, starts = pipe.encode_schedule([(0.0, "a"), (1.5, "b")])
    assert ctx.shape[:2] == (1, 2) and uncond.shape[0] == 1 and starts == [0.0, 1.5]
    with pytest.raises(ValueError, match="needs their 2 start times"):
        pipe.generate_plan(ctx, uncond, (3, 2, 2))


# ----------------------------------------------------------------------------------------------------------------
# Training on per-segment captions
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def segment_cache(tmp_path_factory):
    import numpy as np
    from test_train_data import TINY, tiny_components

    from semanticgen_core.video_io import write_video
    from train.data import discover_pairs
    from train.prepare import PrepareConfig, prepare

    root = tmp_path_factory.mktemp("segments")
    captions = {
        "two": "a square moves right\n1: the square moves down",  # 17 frames at 8 fps: 2.125 s, cut at 1 s
        "one": "a square stays still",
        "late": "a square moves right\n1.5: it moves up\n9: beyond the clip",  # the 9 s segment is dropped
    }
    (root / "videos").mkdir()
    for i, (name, text) in enumerate(captions.items()):
        frames = np.zeros((18, 32, 32, 3), np.uint8)
        for t in range(18):
            frames[t, 8:20, t + i : t + i + 8] = 200
        write_video(root / "videos" / f"{name}.mp4", frames, fps=8)
        (root / "videos" / f"{name}.txt").write_text(text)
    cfg = PrepareConfig(**{**TINY, "sizes": "32x32", "frames": "17"})
    return prepare(cfg, discover_pairs(root / "videos"), root / "cache", tiny_components())["dir"]


def test_prepare_and_batches_carry_segments(segment_cache):
    from train.data import CachedLatentDataset, collate
    from train.loop import drop_captions

    ds = CachedLatentDataset(segment_cache)
    items = {e["video"].rsplit("/", 1)[1]: ds[i] for i, e in enumerate(ds.entries)}
    two, one, late = items["two.mp4"], items["one.mp4"], items["late.mp4"]
    assert two["ctx"].shape[:2] == (2, 12) and two["ctx_starts"].tolist() == [0.0, 1.0]
    assert late["ctx_starts"].tolist() == [0.0, 1.5] and one["ctx"].ndim == 2 and "ctx_starts" not in one
    # latent frames at (0, 2.5, 6.5, 10.5, 14.5) / 8 s; plan frames at (0.25, 1.25, 2.25) s
    assert two["lat_segments"].tolist() == [0, 0, 0, 1, 1] and two["sem_segments"].tolist() == [0, 1, 1]
    batch = collate([two, one, late])
    assert batch["ctx"].shape == (3, 2, 12, 24) and batch["ctx"][1, 1].abs().sum() == 0
    assert batch["lat_segments"].tolist() == [[0, 0, 0, 1, 1], [0] * 5, [0, 0, 0, 0, 1]]
    assert batch["ctx_starts"][1].tolist() == [0.0, float("inf")]
    assert collate([one, one])["ctx"].shape == (2, 12, 24)  # one-caption batches: unchanged
    dropped = drop_captions(batch["ctx"], ds.null_ctx, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(dropped[:, 1], dropped[:, 0]) and torch.equal(dropped[0, 0], ds.null_ctx)  # all segments go


def test_two_segment_clips_train_both_stages(segment_cache, tmp_path):
    from safetensors.torch import load_file

    from train import stage1, stage2

    fast = ["--data", segment_cache, "--max-steps", "2", "--batch-size", "3", "--warmup-steps", "1",
            "--caption-dropout", "0.5", "--ckpt-every", "2", "--sample-every", "2"]  # fmt: skip
    out1 = stage1.main(stage1.parse_args([*fast, "--out", str(tmp_path / "s1")]))
    out2 = stage2.main(stage2.parse_args([*fast, "--stage1", str(out1["export"]), "--out", str(tmp_path / "s2")]))
    for run, out in (("s1", out1), ("s2", out2)):
        assert out["step"] == 2
        sample = load_file(str(tmp_path / run / "samples" / "step-00000002.safetensors"))  # sampled with starts
        assert torch.isfinite(sample["latents"]).all()


def test_stage_losses_pass_segments_to_the_dit():
    from semanticgen_core import SemanticCompressor
    from train.stage1 import Stage1Model
    from train.stage2 import Stage2Model

    torch.manual_seed(0)
    lat = randomize(SemanticGenDiT(DIT_CONFIGS["tiny"]), seed=1)
    sem_gen = randomize(SemanticGenDiT(DIT_CONFIGS["tiny-sem"]), seed=2)
    comp = SemanticCompressor(16, 8)
    g = torch.Generator().manual_seed(0)
    ctx = torch.randn(1, 2, 5, 24, generator=g)
    batch = {"latents": torch.randn(1, 16, 6, 2, 2, generator=g), "sem_feats": torch.randn(1, 16, 3, 1, 1, generator=g),
             "ctx": ctx, "lat_segments": torch.tensor([[0, 0, 0, 1, 1, 1]]), "sem_segments": torch.tensor([[0, 1, 1]])}  # fmt: skip
    for model, key in ((Stage1Model(lat, comp), "lat_segments"), (Stage2Model(sem_gen, comp), "sem_segments")):
        with torch.no_grad():  # the same noise, frames in the schedule's segments vs. all in segment 0
            scheduled = model(batch, torch.Generator().manual_seed(0))[0]
            first = model(dict(batch, **{key: torch.zeros_like(batch[key])}), torch.Generator().manual_seed(0))[0]
        assert not torch.isclose(scheduled, first)
        model(batch, torch.Generator().manual_seed(0))[0].backward()
