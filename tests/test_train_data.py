"""Training data: discovery, prepare.py (real video files, tiny test-double encoders), cache keys, buckets."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VAE, PatchMeanEncoder, TinyTextEncoder

from semanticgen_core.video_io import write_video
from train.data import BucketBatchSampler, CachedLatentDataset, collate, discover_pairs
from train.prepare import PrepareConfig, cache_key, prepare


class PoolVAE:
    """Test double of the Wan VAE: keep frames 0, 4, 8, ..., 8x8 average pool, fixed projection 3 -> 16."""

    def __init__(self):
        self.proj = torch.randn(16, 3, generator=torch.Generator().manual_seed(3))

    def encode(self, video):
        x = torch.nn.functional.avg_pool3d(video[:, :, ::4], (1, 8, 8))  # [B, 3, T, H/8, W/8]
        return torch.einsum("oc,bcthw->bothw", self.proj, x)


def tiny_components():
    return PoolVAE(), PatchMeanEncoder(), TinyTextEncoder()


TINY = dict(semantic_encoder="test", text_encoder="tiny", vae_fps=8.0, sem_fps=2.0, sizes="32x32,32x48",
            frames="9,17", dtype="fp32", shard_size=3)  # fmt: skip


def make_videos(folder, n_square=4, n_wide=2):
    """Moving-square clips with captions, one unreadable file and one too-short clip."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n_square + n_wide):
        h, w = (40, 40) if i < n_square else (36, 60)
        frames = np.zeros((12 if i % 2 else 18, h, w, 3), np.uint8)
        for t in range(len(frames)):
            frames[t, 8:20, (2 * t + i) % (w - 12) : (2 * t + i) % (w - 12) + 12] = rng.integers(50, 255, 3)
        write_video(folder / f"clip{i}.mp4", frames, fps=8)
        (folder / f"clip{i}.txt").write_text(f"a square number {i} moves right")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "broken.txt").write_text("a broken file")
    write_video(folder / "short.mp4", np.zeros((3, 32, 32, 3), np.uint8), fps=8)
    (folder / "short.txt").write_text("too short")
    return folder


def build_cache(root):
    """A prepared cache of 6 tiny clips (two size buckets, two length buckets); returns the prepare() result."""
    videos = make_videos(root / "videos")
    return prepare(PrepareConfig(**TINY), discover_pairs(videos), root / "cache", tiny_components())


def build_cache_with_alternatives(root):
    """build_cache, then clips 0 and 2 recaptioned with two alternatives each (the others keep one caption)."""
    first = build_cache(root)
    rows = [{"video": Path(first["entries"][sid]["video"]).name, "caption": first["entries"][sid]["caption"]}
            for sid in first["samples"]]  # fmt: skip
    for row in rows:
        if row["video"] in ("clip0.mp4", "clip2.mp4"):
            row["caption"] = [row["caption"], row["caption"].replace("moves right", "slides to the right")]
    (root / "videos" / "alternatives.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = discover_pairs(root / "videos" / "alternatives.jsonl")
    return prepare(PrepareConfig(**TINY), pairs, root / "cache", tiny_components())


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return build_cache(tmp_path_factory.mktemp("train_data"))


def test_prepare_writes_keyed_shards_and_skips_bad_videos(cache):
    assert len(cache["samples"]) == 6 and cache["encoded"] == 6
    assert sorted(s["video"].rsplit("/", 1)[1] for s in cache["skipped"]) == ["broken.mp4", "short.mp4"]
    assert "too short" in json.dumps(cache["skipped"])
    ds = CachedLatentDataset(cache["dir"])
    shapes = {tuple(e["shapes"]["latents"]) for e in ds.entries}
    assert shapes == {(16, 3, 4, 4), (16, 5, 4, 4), (16, 3, 4, 6), (16, 5, 4, 6)}  # 9 / 17 frames, 32x32 / 32x48
    for e in ds.entries:  # the same time span at the semantic rate: 9 frames -> 3 sem frames -> T_s 2; 17 -> 5 -> 3
        assert e["shapes"]["sem_feats"][:2] == [16, {9: 2, 17: 3}[e["num_frames"]]]
    item = ds[0]
    assert item["ctx"].shape[1] == 24 and "square" in item["caption"]
    assert cache["semantic"]["kind"] == "test" and cache["semantic"]["spatial_patch"] == 16
    assert cache["video"]["fps"] == 8.0 and cache["video"]["z_dim"] == 16


def test_rerun_reuses_and_changed_setting_gets_a_new_key(cache):
    videos = discover_pairs(Path(cache["entries"][cache["samples"][0]]["video"]).parent)
    again = prepare(PrepareConfig(**TINY), videos, Path(cache["dir"]).parent, tiny_components())
    assert again["dir"] == cache["dir"] and again["encoded"] == 0 and again["reused"] == 6
    other = PrepareConfig(**{**TINY, "sem_fps": 4.0})
    assert cache_key(other) != cache_key(PrepareConfig(**TINY))
    assert cache_key(PrepareConfig(**{**TINY, "shard_size": 99})) == cache_key(PrepareConfig(**TINY))


def test_manifests(tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "a.mp4").write_bytes(b"")
    (tmp_path / "m.jsonl").write_text(json.dumps({"video": "v/a.mp4", "caption": "hi"}) + "\n")
    (tmp_path / "m.csv").write_text('video,caption\nv/a.mp4,"hello, world"\n')
    assert discover_pairs(tmp_path / "m.jsonl") == [(tmp_path / "v" / "a.mp4", "hi")]
    assert discover_pairs(tmp_path / "m.csv") == [(tmp_path / "v" / "a.mp4", "hello, world")]
    assert discover_pairs(tmp_path / "v") == [(tmp_path / "v" / "a.mp4", None)]  # no caption: prepare skips it
    with pytest.raises(FileNotFoundError, match="--videos .*nowhere: no such folder"):
        discover_pairs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty: no video files"):
        discover_pairs(tmp_path / "empty")


def test_captionless_videos_are_skipped_with_reasons_and_an_empty_cache_says_so(tmp_path, capsys):
    from train import stage1

    videos = tmp_path / "v"
    videos.mkdir()
    write_video(videos / "a.mp4", np.zeros((9, 32, 32, 3), np.uint8), fps=8)
    write_video(videos / "b.mp4", np.zeros((9, 32, 32, 3), np.uint8), fps=8)
    (videos / "b.txt").write_text("  \n")
    result = prepare(PrepareConfig(**TINY), discover_pairs(videos), tmp_path / "cache", tiny_components())
    reasons = {Path(r["video"]).name: r["reason"] for r in result["skipped"]}
    assert reasons == {"a.mp4": "no caption (no .txt beside it, or no caption field)", "b.mp4": "empty caption"}
    assert "skipped 1: empty caption" in capsys.readouterr().out
    with pytest.raises(ValueError, match="holds no samples: all 2 videos were skipped"):
        stage1.main(stage1.parse_args(["--data", str(tmp_path / "cache"), "--out", str(tmp_path / "run")]))


def test_bucket_sampler_is_deterministic_sharded_and_resumable(cache):
    ds = CachedLatentDataset(cache["dir"])
    buckets = ds.buckets()
    a = BucketBatchSampler(buckets, 2, seed=1)
    batches = list(a)
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(len({ds.shape_key(i) for i in b}) == 1 for b in batches)  # one shape per batch
    assert a.epoch_batches(0) == BucketBatchSampler(buckets, 2, seed=1).epoch_batches(0)
    assert a.epoch_batches(0) != a.epoch_batches(1) or a.epoch_batches(1) != a.epoch_batches(2)
    r0, r1 = (BucketBatchSampler(buckets, 1, seed=1, rank=r, world_size=2) for r in (0, 1))
    assert sorted(i for b in [*r0, *r1] for i in b) == list(range(6)) and len(r0) == len(r1) == 3
    r0.set_position(0, 2)
    assert list(r0) == r0.epoch_batches(0)[2::2]
    batch = collate([ds[i] for i in batches[0]])
    assert batch["latents"].ndim == 5 and batch["ctx"].shape[0] == len(batches[0])


def test_prepare_cli_with_real_tiny_components_then_train(tmp_path):
    """The CLI path end to end: a saved tiny Wan VAE, a umT5 folder and a V-JEPA 2 folder, then 2 stage-1 steps."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel, VJEPA2Config, VJEPA2Model

    from semanticgen_core.vae import WanVAE
    from train import prepare as prepare_cli
    from train import stage1

    torch.manual_seed(0)
    stats = dict(latents_mean=[0.1 * i for i in range(16)], latents_std=[1.0 + 0.1 * i for i in range(16)])
    WanVAE.from_config({**TINY_VAE, **stats}).eval().save(tmp_path / "vae.safetensors")
    words = ["<pad>", "</s>", "<unk>", "a", "square", "number", "moves", "right", *"0123456789"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    t5 = UMT5Config(vocab_size=len(words), d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=4,
                    relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)  # fmt: skip
    UMT5EncoderModel(t5).save_pretrained(tmp_path / "t5" / "text_encoder")
    tok.save_pretrained(tmp_path / "t5" / "tokenizer")
    vj = VJEPA2Config(crop_size=32, frames_per_clip=4, hidden_size=32, num_attention_heads=2, num_hidden_layers=1)
    vj.update(dict(mlp_ratio=2.0, pred_hidden_size=16, pred_num_attention_heads=2, pred_num_hidden_layers=1))
    VJEPA2Model(vj).save_pretrained(tmp_path / "vjepa2")

    videos = make_videos(tmp_path / "videos", n_square=2, n_wide=1)
    args = ["--videos", videos, "--out", tmp_path / "cache", "--vae", tmp_path / "vae.safetensors"]
    args += ["--semantic-encoder", "vjepa2", "--semantic-encoder-path", tmp_path / "vjepa2", "--text-encoder", "umt5"]
    args += ["--text-encoder-path", tmp_path / "t5", "--vae-fps", "8", "--sem-fps", "2", "--sizes", "32x32,32x48"]
    args += ["--frames", "9,17", "--dtype", "bf16"]
    out = prepare_cli.main(prepare_cli.parse_args([str(a) for a in args]))
    assert len(out["samples"]) == 3 and len(out["skipped"]) == 2
    assert out["semantic"]["kind"] == "vjepa2" and out["semantic"]["dim"] == 32 and out["semantic"]["fps"] == 2.0
    # the cache records the VAE's latent statistics: models trained on it carry their latent space along
    assert out["video"]["latents_mean"] == stats["latents_mean"] and out["video"]["latents_std"] == stats["latents_std"]
    ds = CachedLatentDataset(out["dir"])
    item = ds[0]
    assert item["latents"].shape[0] == 16 and item["sem_feats"].shape[0] == 32 and item["ctx"].shape[1] == 16
    # the empty prompt is its end-of-sequence token, zero-padded to umT5's fixed 512 like every cached caption
    assert ds.null_ctx.shape == (512, 16) and ds.null_ctx[1:].abs().sum() == 0 and ds.null_ctx[0].abs().sum() > 0
    assert item["ctx"].shape[0] == 512

    config = tmp_path / "dit.json"  # a DiTConfig JSON that fits this cache (text features of size 16)
    config.write_text(
        json.dumps({"dim": 32, "ffn_dim": 64, "freq_dim": 32, "text_dim": 16, "num_heads": 2, "num_layers": 1})
    )
    result = stage1.main(stage1.parse_args(["--data", str(tmp_path / "cache"), "--out", str(tmp_path / "run"),
                                            "--config", str(config), "--max-steps", "2", "--log-every", "1"]))  # fmt: skip
    assert result["step"] == 2 and result["export"].is_file()


def _prepare_worker(rank, world, videos, out, barrier):
    """One process of a sharded prepare run (spawned: module-level)."""
    prepare(PrepareConfig(**TINY), discover_pairs(videos), out, tiny_components(), rank, world, barrier.wait)


def run_sharded(videos, out, world=2):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(world)
    procs = [ctx.Process(target=_prepare_worker, args=(r, world, videos, out, barrier)) for r in range(world)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0] * world
    return json.loads((next(Path(out).glob("*/index.json"))).read_text())


def test_two_processes_make_the_same_cache_as_one_and_resume(tmp_path):
    videos = make_videos(tmp_path / "videos")
    one = prepare(PrepareConfig(**TINY), discover_pairs(videos), tmp_path / "one", tiny_components())
    two = run_sharded(videos, tmp_path / "two")
    assert two["complete"] and two["samples"] == one["samples"] and two["encoded"] == one["encoded"] == 6
    assert {s["video"] for s in two["skipped"]} == {s["video"] for s in one["skipped"]}
    assert (two["semantic"], two["video"], two["key"]) == (one["semantic"], one["video"], one["key"])
    strip = lambda entries: {k: {f: v for f, v in e.items() if f != "shard"} for k, e in entries.items()}  # noqa: E731
    assert strip(two["entries"]) == strip(one["entries"])
    assert {e["shard"][:9] for e in two["entries"].values()} == {"shard-r0-", "shard-r1-"}  # both processes wrote
    a, b = CachedLatentDataset(one["dir"]), CachedLatentDataset(tmp_path / "two")
    for i in range(len(a)):
        assert all(torch.equal(a[i][k], b[i][k]) for k in ("latents", "sem_feats", "ctx"))
    assert torch.equal(a.null_ctx, b.null_ctx) and not list(Path(b.dir).glob("index.part*"))
    # a second run (any process count) finds everything encoded
    again = prepare(PrepareConfig(**TINY), discover_pairs(videos), tmp_path / "two", tiny_components())
    assert again["encoded"] == 0 and again["reused"] == 6 and again["samples"] == one["samples"]


def test_foreground_mask_marks_the_latent_cells_the_object_covers():
    from train.prepare import foreground_mask

    # a background constant along rows (a vertical gradient), a 6x6 square at rows 10-15 that moves right 4 px a frame
    frames = np.repeat(np.linspace(10, 60, 32, dtype=np.uint8)[None, :, None, None], 9, 0).repeat(32, 2).repeat(3, 3)
    for t in range(9):
        frames[t, 10:16, 2 + 2 * t : 8 + 2 * t] = (200, 40, 40)
    mask = foreground_mask(frames, (3, 4, 4))  # causal VAE: latent frame 0 <- frame 0, 1 <- 1..4, 2 <- 5..8
    assert mask.shape == (3, 4, 4) and set(mask.unique().tolist()) <= {0.0, 1.0}
    expect = torch.zeros(3, 4, 4)
    expect[0, 1, 0] = 1  # rows 10-15 fall in cell rows 1 (8-15); frame 0 covers columns 2-7: cell 0
    expect[1, 1, 0:2] = 1  # frames 1-4: columns 4-15 -> cells 0-1
    expect[2, 1, 1:3] = 1  # frames 5-8: columns 12-23 -> cells 1-2
    assert torch.equal(mask, expect)


def test_prepare_stores_a_foreground_mask_on_the_latent_grid_when_asked(tmp_path):
    videos = make_videos(tmp_path / "videos")
    out = prepare(PrepareConfig(**TINY, foreground_mask="row-median"), discover_pairs(videos), tmp_path / "c",
                  tiny_components())  # fmt: skip
    plain = prepare(PrepareConfig(**TINY), discover_pairs(videos), tmp_path / "c", tiny_components())
    assert out["dir"] != plain["dir"]  # the mask setting is part of the cache key
    ds = CachedLatentDataset(out["dir"])
    for i in range(len(ds)):
        item = ds[i]
        assert item["fg_mask"].shape == item["latents"].shape[1:]
        assert 0 < item["fg_mask"].mean() < 0.6  # the square, not the whole frame
    assert "fg_mask" not in CachedLatentDataset(plain["dir"])[0]
    with pytest.raises(ValueError, match="foreground_mask must be"):
        prepare(PrepareConfig(**TINY, foreground_mask="rows"), discover_pairs(videos), tmp_path / "d")


class CountingVAE(PoolVAE):
    """PoolVAE that counts the clips it encodes."""

    calls = 0

    def encode(self, video):
        CountingVAE.calls += 1
        return super().encode(video)


def test_caption_alternatives_reencode_only_the_text_and_a_step_draws_one_of_them(tmp_path):
    from train.loop import pick_captions

    videos = make_videos(tmp_path / "videos", n_square=3, n_wide=0)
    vae, sem, text = CountingVAE(), PatchMeanEncoder(), TinyTextEncoder()
    first = prepare(PrepareConfig(**TINY), discover_pairs(videos), tmp_path / "cache", (vae, sem, text))
    assert CountingVAE.calls == 3
    rows = [{"video": "videos/clip0.mp4", "caption": ["a red square", "one crimson box, sliding"]},
            {"video": "videos/clip1.mp4", "caption": "a square number 1 moves right"},
            {"video": "videos/clip2.mp4", "caption": ["a new caption only"]}]  # fmt: skip
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs = discover_pairs(tmp_path / "m.jsonl")
    assert pairs[0][1] == ["a red square", "one crimson box, sliding"]
    again = prepare(PrepareConfig(**TINY), pairs, tmp_path / "cache", (vae, sem, text))
    assert CountingVAE.calls == 3 and again["encoded"] == 2 and again["reused"] == 1  # clip1's caption is unchanged
    ds = CachedLatentDataset(again["dir"])
    by_name = {Path(e["video"]).name: i for i, e in enumerate(ds.entries)}
    old = CachedLatentDataset(first["dir"])
    old_item = old[[Path(e["video"]).name for e in old.entries].index("clip0.mp4")]
    item = ds[by_name["clip0.mp4"]]
    assert torch.equal(item["latents"], old_item["latents"]) and torch.equal(item["sem_feats"], old_item["sem_feats"])
    assert item["ctx_alts"].shape[0] == 2 and torch.equal(item["ctx"], item["ctx_alts"][0])
    assert not torch.equal(item["ctx_alts"][0], item["ctx_alts"][1])
    plain = {k: v for k, v in item.items() if k != "ctx_alts"}  # a one-caption sample of the same shape
    batch = collate([item, plain, ds[by_name["clip2.mp4"]]])
    assert batch["ctx_alts"].shape[:2] == (3, 2) and batch["n_alts"].tolist() == [2, 0, 1]
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(40):
        ctx = pick_captions(batch["ctx"], batch["ctx_alts"], batch["n_alts"], g)
        assert torch.equal(ctx[1], batch["ctx"][1]) and torch.equal(ctx[2], batch["ctx_alts"][2, 0])
        seen.add(next(v for v in range(2) if torch.equal(ctx[0], batch["ctx_alts"][0, v])))
    assert seen == {0, 1}  # both alternatives of clip0 are drawn
    ctx4 = torch.stack([batch["ctx"], torch.ones_like(batch["ctx"])], 1)  # per-segment [B, G=2, S, D]
    out4 = pick_captions(ctx4, batch["ctx_alts"], batch["n_alts"], g)
    assert torch.equal(out4[:, 1], ctx4[:, 1]) and torch.equal(out4[2, 0], batch["ctx_alts"][2, 0])
    (tmp_path / "bad.jsonl").write_text(json.dumps({"video": "videos/clip0.mp4", "caption": ["ok", " "]}) + "\n")
    with pytest.raises(ValueError, match=r"row 1: a caption list needs one or more non-empty one-line captions"):
        discover_pairs(tmp_path / "bad.jsonl")
