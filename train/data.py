"""Training data: (video, caption) discovery, the cached-tensor dataset written by prepare.py, shape buckets.

Cache layout (one folder per settings key, see prepare.py):
    CACHE/<key>/index.json               settings, entries {id: {shard, caption, video, shapes}}, current sample ids
    CACHE/<key>/shard-00000.safetensors  tensors "<id>.latents" [C, T, H, W] (normalised VAE latents),
                                         "<id>.sem_feats" [d, T_s, H_s, W_s] (raw encoder features),
                                         "<id>.ctx" [S, D] (text features, zero padding trimmed), or
                                         [G, S, D] with "<id>.ctx_starts" [G] (seconds) for per-segment
                                         captions (caption lines `START: caption`, see semanticgen_core.schedule);
                                         "<id>.ctx_alts" [V, S, D] (zero-padded) for a list of caption
                                         alternatives (its first one is also "<id>.ctx");
                                         "<id>.fg_mask" [T, H, W] (optional, prepare --foreground-mask);
                                         metadata "samples": the JSON of the shard's entries (captions included)
    CACHE/<key>/null_ctx.safetensors     "ctx" [S0, D]: features of the empty prompt (caption dropout)
A batch always has one shape: samples are grouped by the shapes of the tensors a stage reads. Samples with
per-segment captions also give the segment of each latent frame and plan frame (`lat_segments`, `sem_segments`).
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file
from torch.utils.data import Dataset, Sampler

from semanticgen_core.config import SemanticSpec, VideoSpec
from semanticgen_core.schedule import latent_frame_times, plan_frame_times, segment_ids

VIDEO_EXTS = (".mp4", ".webm", ".mov", ".gif", ".mkv")
CACHE_FORMAT = 1
INDEX_NAME = "index.json"
NULL_CTX_NAME = "null_ctx.safetensors"
TENSOR_KEYS = ("latents", "sem_feats", "ctx")

# ----------------------------------------------------------------------------------------------------------------
# (video, caption) discovery
# ----------------------------------------------------------------------------------------------------------------


def _manifest_rows(path: Path) -> list[dict]:
    """Rows of a JSONL or CSV manifest as dicts."""
    if path.suffix == ".jsonl":
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def discover_pairs(source: str | Path) -> list[tuple[Path, str | list[str] | None]]:
    """(video path, caption) pairs from a folder (a `.txt` caption beside each video) or a JSONL / CSV manifest.

    Manifest rows need a `video` column; relative video paths are relative to the manifest's folder. A JSONL
    caption may be a list of one-line alternatives of the same video (a training step draws one). A video
    without a caption (no .txt beside it, or no caption in its row) gets None: prepare.py skips it and says why.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"--videos {source}: no such folder or manifest file")
    if source.is_dir():
        videos = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_EXTS and p.is_file())
        if not videos:
            raise ValueError(f"--videos {source}: no video files ({', '.join(VIDEO_EXTS)}) in this folder")
        txt = [v.with_suffix(".txt") for v in videos]
        return [(v, t.read_text(encoding="utf-8").strip() if t.is_file() else None) for v, t in zip(videos, txt)]
    if source.suffix not in (".jsonl", ".csv"):
        raise ValueError(f"{source}: expected a folder of videos with .txt captions, or a .jsonl / .csv manifest")
    pairs = []
    for i, row in enumerate(_manifest_rows(source)):
        if not row.get("video"):
            raise ValueError(f"{source}: row {i + 1} needs 'video' and 'caption' fields, got {sorted(row)}")
        video, caption = Path(row["video"]), row.get("caption")
        if isinstance(caption, list):  # alternatives: each training step draws one (train/loop.py pick_captions)
            caption = [str(c).strip() for c in caption]
            if not caption or not all(caption) or any("\n" in c for c in caption):
                raise ValueError(f"{source}: row {i + 1}: a caption list needs one or more non-empty one-line "
                                 f"captions (alternatives of the same video), got {row['caption']!r}")  # fmt: skip
        else:
            caption = None if caption is None else str(caption).strip()
        pairs.append((video if video.is_absolute() else source.parent / video, caption))
    if not pairs:
        raise ValueError(f"--videos {source}: the manifest has no rows")
    return pairs


# ----------------------------------------------------------------------------------------------------------------
# Cached tensors
# ----------------------------------------------------------------------------------------------------------------


def resolve_cache_dir(root: str | Path) -> Path:
    """The keyed cache folder: `root` itself if it holds an index, else its only keyed subfolder."""
    root = Path(root)
    if (root / INDEX_NAME).is_file():
        return root
    keyed = sorted(p.parent for p in root.glob(f"*/{INDEX_NAME}"))
    if len(keyed) == 1:
        return keyed[0]
    if not keyed:
        raise FileNotFoundError(f"{root}: no prepared cache here (no {INDEX_NAME}); run train/prepare.py first")
    raise ValueError(f"{root} holds caches for several settings {[p.name for p in keyed]}; pass one of them")


def read_cache_info(root: str | Path) -> dict:
    """index.json of a cache (settings, semantic spec, entries, sample ids), with `dir` set to its folder."""
    folder = resolve_cache_dir(root)
    info = json.loads((folder / INDEX_NAME).read_text())
    if info.get("format", 0) > CACHE_FORMAT:
        raise ValueError(f"{folder}: cache format {info['format']} is newer than this code ({CACHE_FORMAT})")
    if not info.get("complete"):
        raise ValueError(f"{folder}: the cache was not finished; rerun train/prepare.py (it reuses what is done)")
    if not info.get("samples"):
        skipped = info.get("skipped", [])
        why = f": all {len(skipped)} videos were skipped, e.g. {skipped[0]['reason']}" if skipped else ""
        raise ValueError(f"{folder}: the cache holds no samples{why}; prepare usable videos first")
    return {**info, "dir": str(folder)}


def cache_dims(info: dict) -> dict[str, int]:
    """Channel sizes of a cache: latent C, semantic feature d, text feature D (from its first sample)."""
    shapes = info["entries"][info["samples"][0]]["shapes"]
    return {"latent": shapes["latents"][0], "sem": shapes["sem_feats"][0], "text": shapes["ctx"][-1]}


class CachedLatentDataset(Dataset):
    """Samples of a prepared cache: dict of float32 tensors (`keys`) plus `caption`; shapes per sample vary."""

    def __init__(self, root: str | Path, keys: tuple[str, ...] = TENSOR_KEYS):
        unknown = set(keys) - set(TENSOR_KEYS)
        if unknown:
            raise ValueError(f"unknown cached tensors {sorted(unknown)}; the cache holds {TENSOR_KEYS}")
        self.info = read_cache_info(root)
        self.dir, self.keys = Path(self.info["dir"]), tuple(keys)
        self.entries = [{"id": i, **self.info["entries"][i]} for i in self.info["samples"]]
        if not self.entries:
            raise ValueError(f"{self.dir}: the cache holds no samples")
        null = self.dir / NULL_CTX_NAME
        d = self.entries[0]["shapes"]["ctx"][-1]
        self.null_ctx = load_file(str(null))["ctx"].float() if null.is_file() else torch.zeros(1, d)  # [S0, D]
        # the text encoder's fixed context length (Wan: 512): ctx is zero-padded to it, as at inference, so that the
        # model sees the same number of padding rows in training and sampling
        self.text_length = self.info.get("text_length")
        if self.text_length:
            self.null_ctx = F.pad(self.null_ctx, (0, 0, 0, self.text_length - self.null_ctx.shape[0]))

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, i: int) -> dict:
        e = self.entries[i]
        segmented = "ctx" in self.keys and "ctx_starts" in e["shapes"]
        with safe_open(str(self.dir / e["shard"]), framework="pt") as f:
            item = {k: f.get_tensor(f"{e['id']}.{k}").float() for k in self.keys}
            if "latents" in self.keys and "fg_mask" in e["shapes"]:  # prepare --foreground-mask
                item["fg_mask"] = f.get_tensor(f"{e['id']}.fg_mask").float()  # [T, H, W]
            if segmented:
                item["ctx_starts"] = f.get_tensor(f"{e['id']}.ctx_starts").float()  # [G]
            if "ctx" in self.keys and "ctx_alts" in e["shapes"]:
                item["ctx_alts"] = f.get_tensor(f"{e['id']}.ctx_alts").float()  # [V, S, D]
        if self.text_length:
            for k in ("ctx", "ctx_alts"):
                if k in item:
                    item[k] = F.pad(item[k], (0, 0, 0, self.text_length - item[k].shape[-2]))  # [(G|V,) S, D]
        if segmented:  # the text segment of every latent / plan frame, by the frame's centre time
            starts = item["ctx_starts"]
            if "latents" in item:
                times = latent_frame_times(item["latents"].shape[1], VideoSpec.from_dict(self.info["video"]))
                item["lat_segments"] = segment_ids(starts, times)  # [T]
            if "sem_feats" in item:
                times = plan_frame_times(item["sem_feats"].shape[1], SemanticSpec.from_dict(self.info["semantic"]))
                item["sem_segments"] = segment_ids(starts, times)  # [T_s]
        return {**item, "caption": e["caption"]}

    def shape_key(self, i: int) -> tuple[int, ...]:
        """Bucket key: the shapes of the read tensors except ctx (padded per batch), flattened."""
        shapes = self.entries[i]["shapes"]
        return tuple(n for k in self.keys if k != "ctx" for n in shapes[k])

    def buckets(self) -> dict[tuple[int, ...], list[int]]:
        """Sample indices grouped by shape key."""
        out = defaultdict(list)
        for i in range(len(self)):
            out[self.shape_key(i)].append(i)
        return dict(out)


def collate(items: list[dict]) -> dict:
    """Stack one-shape samples; zero-pad ctx to the longest in the batch (the DiT collapses zero padding exactly).

    Returns latents [B, C, T, H, W], sem_feats [B, d, T_s, H_s, W_s], ctx [B, S, D] (those present), captions.
    When a sample has per-segment captions: ctx [B, G, S, D] (G the most segments in the batch, unused ones zero),
    ctx_starts [B, G] (+inf for unused), lat_segments [B, T] / sem_segments [B, T_s] (0 for one-caption samples).
    When a sample has caption alternatives: ctx_alts [B, V, S, D] (zero-padded) and n_alts [B] (0: none; its ctx).
    """
    out = {"captions": [it["caption"] for it in items]}
    if any("ctx_alts" in it for it in items):  # caption alternatives: [B, V, S, D] and how many each sample has
        alts = [it.get("ctx_alts") for it in items]
        v, s = max(len(a) for a in alts if a is not None), max(a.shape[1] for a in alts if a is not None)
        d = next(a for a in alts if a is not None).shape[-1]
        pad = [torch.zeros(v, s, d) if a is None else F.pad(a, (0, 0, 0, s - a.shape[1], 0, v - len(a))) for a in alts]
        out.update(ctx_alts=torch.stack(pad), n_alts=torch.tensor([0 if a is None else len(a) for a in alts]))
        items = [{k: x for k, x in it.items() if k != "ctx_alts"} for it in items]
    if any("ctx_starts" in it for it in items):
        return {**out, **_collate_segments(items)}
    for k in items[0]:
        if k == "caption":
            continue
        if k == "ctx":
            s = max(it["ctx"].shape[0] for it in items)
            out[k] = torch.stack([F.pad(it["ctx"], (0, 0, 0, s - it["ctx"].shape[0])) for it in items])
        else:
            out[k] = torch.stack([it[k] for it in items])
    return out


def _collate_segments(items: list[dict]) -> dict:
    """collate for batches holding per-segment captions: every sample as G segments (one-caption ones: G = 1)."""
    ctxs = [it["ctx"] if it["ctx"].ndim == 3 else it["ctx"][None] for it in items]  # [G_i, S_i, D]
    g, s = max(c.shape[0] for c in ctxs), max(c.shape[1] for c in ctxs)
    out = {"ctx": torch.stack([F.pad(c, (0, 0, 0, s - c.shape[1], 0, g - c.shape[0])) for c in ctxs])}
    starts = [it.get("ctx_starts", torch.zeros(1)) for it in items]
    out["ctx_starts"] = torch.stack([F.pad(t, (0, g - len(t)), value=float("inf")) for t in starts])
    for k, like in (("lat_segments", "latents"), ("sem_segments", "sem_feats")):
        if like in items[0]:
            n = items[0][like].shape[1]
            out[k] = torch.stack([it.get(k, torch.zeros(n, dtype=torch.long)) for it in items])
    for k in items[0]:
        if k not in out and k not in ("caption", "lat_segments", "sem_segments"):
            out[k] = torch.stack([it[k] for it in items])
    return out


# ----------------------------------------------------------------------------------------------------------------
# Bucketed, resumable, sharded batch order
# ----------------------------------------------------------------------------------------------------------------


class BucketBatchSampler(Sampler[list[int]]):
    """One-shape batches: shuffled within buckets, then across; a function of (seed, epoch); split over ranks.

    Every rank computes the same global batch list of an epoch and takes batches rank, rank + world, ...; the
    list is cut to a multiple of the world size so that all ranks make the same number of steps. `set_position`
    skips the first `start` global batches of an epoch (resume); it must be a multiple of the world size.
    """

    def __init__(self, buckets: dict, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.buckets = {k: list(v) for k, v in sorted(buckets.items())}
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.epoch, self.start = 0, 0
        n = sum(-(-len(v) // batch_size) for v in self.buckets.values())
        if n < world_size:
            raise ValueError(f"the data makes {n} batches per epoch, fewer than the {world_size} processes")
        self.global_batches = n - n % world_size  # per epoch, all ranks together

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """The global batch order of an epoch (same on every rank)."""
        rng = np.random.default_rng([self.seed, epoch])
        batches = []
        for idx in self.buckets.values():
            idx = [idx[j] for j in rng.permutation(len(idx))]
            batches += [idx[s : s + self.batch_size] for s in range(0, len(idx), self.batch_size)]
        return [batches[j] for j in rng.permutation(len(batches))][: self.global_batches]

    def set_position(self, epoch: int, start: int = 0) -> None:
        """Next iteration yields epoch `epoch` from global batch `start` on."""
        if start % self.world_size:
            raise ValueError(f"start={start} must be a multiple of the world size {self.world_size}")
        self.epoch, self.start = epoch, start

    def __iter__(self):
        yield from self.epoch_batches(self.epoch)[self.start + self.rank :: self.world_size]

    def __len__(self) -> int:
        return (self.global_batches - self.start) // self.world_size
