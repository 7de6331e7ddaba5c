"""Encode a video dataset once with the frozen VAE, semantic encoder and text encoder; write safetensors shards.

    python train/prepare.py --videos data/clips --out cache --vae Wan2.1_VAE.safetensors \
        --semantic-encoder qwen2_5_vl --semantic-encoder-path Qwen2.5-VL-7B-Instruct \
        --text-encoder umt5 --text-encoder-path umt5-xxl --sizes 480x832,832x480 --frames 49,81 --device cuda

Videos are read twice (paper Sec. 4): at `vae_fps` (24) for the VAE and at `sem_fps` (1.6) for the semantic
encoder, over the same time span, resized and centre-cropped to the size bucket of nearest aspect ratio and cut to
the longest frame bucket that fits. `--semantic-source vae` makes the plan of the VAE latents instead (folded onto
`--vae-plan-grid` tokens per latent frame; no semantic encoder): the paper's compressed-VAE-space ablation (Fig. 9).
Output goes to CACHE/<key>/ where the key hashes every setting that changes
the content, so a changed setting never reuses stale tensors; rerunning with the same settings reuses the samples
already encoded (a crashed run resumes); a new caption of an unchanged video re-encodes only its text (recaptioning
a dataset, or a JSONL manifest whose captions are lists of alternatives for training to draw from). Unreadable,
too-short, truncated and captionless videos are reported and skipped with their reasons; a missing folder or a cache
with no sample is a clear error. Several processes share the videos: `accelerate launch --num_processes N
train/prepare.py ...` (one per GPU, or CPU processes with ACCELERATE_USE_CPU=1 --multi_gpu); the run prints clips/s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from safetensors import safe_open
from tqdm.auto import tqdm

if __package__ in (None, ""):  # `python train/prepare.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core.checkpoint import DTYPES, atomic_save_file  # noqa: E402
from semanticgen_core.config import SemanticSpec, VideoSpec  # noqa: E402
from semanticgen_core.schedule import ScheduleError, parse_caption  # noqa: E402
from semanticgen_core.video_io import VideoReadError, read_video, resize_center_crop  # noqa: E402
from train.data import CACHE_FORMAT, INDEX_NAME, NULL_CTX_NAME, discover_pairs  # noqa: E402
from train.utils import add_dataclass_args, atomic_write_text, from_args, opt  # noqa: E402


@dataclass
class PrepareConfig:
    """What to encode and how; every field except shard_size and device is part of the cache key."""

    vae: str = opt("", "VAE weights (file or folder) for semanticgen_core.vae.load_vae")
    semantic_encoder: str = opt("qwen2_5_vl", "semantic encoder kind (qwen2_5_vl | vjepa2)")
    semantic_encoder_path: str = opt("", "semantic encoder weights (Hugging Face folder)")
    text_encoder: str = opt("umt5", "text encoder kind for semanticgen_core.text.load_text_encoder")
    text_encoder_path: str = opt("", "text encoder weights")
    vae_fps: float = opt(24.0, "frames per second fed to the VAE (paper: 24)")
    sem_fps: float = opt(1.6, "frames per second fed to the semantic encoder (paper: 1.6)")
    sizes: str = opt("480x832", "size buckets HxW, comma separated; each video goes to the nearest aspect ratio")
    frames: str = opt("49", "VAE frame-count buckets (4k+1), comma separated; each video gets the longest that fits")
    dtype: str = opt("bf16", "storage dtype of cached tensors: fp32 | bf16 | fp16")
    semantic_source: str = opt(
        "encoder",
        "what the plan is made of: 'encoder' (semantic features) or 'vae' (the VAE latents folded onto a plan grid: "
        "the paper's compressed-VAE-space ablation, Fig. 9; no semantic encoder is loaded)",
    )
    vae_plan_grid: str = opt("1x1", "semantic_source vae: plan tokens HxW per latent frame (latent pixels -> channels)")
    foreground_mask: str = opt(
        "",
        "'' or 'row-median': also store fg_mask [T, H, W] per latent cell (1 where a covered pixel lies more than 24 "
        "levels from its row's median colour: the object over a background constant along rows, as in the shapes "
        "lab) for stage 1's --object-weight",
    )
    shard_size: int = opt(64, "samples per safetensors shard")
    device: str = opt("cpu", "device the frozen encoders run on")

    def size_buckets(self) -> list[tuple[int, int]]:
        """[(height, width), ...] parsed from `sizes`."""
        try:
            return [tuple(int(v) for v in s.lower().split("x")) for s in self.sizes.split(",")]
        except ValueError as err:
            raise ValueError(f"sizes must look like 480x832,832x480; got {self.sizes!r}") from err

    def plan_grid(self) -> tuple[int, int]:
        """(H_s, W_s) parsed from `vae_plan_grid`."""
        try:
            hs, ws = (int(v) for v in self.vae_plan_grid.lower().split("x"))
        except ValueError as err:
            raise ValueError(f"vae_plan_grid must look like 1x1 or 4x4; got {self.vae_plan_grid!r}") from err
        return hs, ws

    def frame_buckets(self) -> list[int]:
        """Sorted VAE frame counts parsed from `frames`; each must be 4k + 1 (the causal VAE's valid lengths)."""
        out = sorted(int(f) for f in self.frames.split(","))
        bad = [f for f in out if f < 1 or (f - 1) % 4]
        if bad:
            raise ValueError(f"frame buckets must be 4k+1 (1, 5, 9, ... 49, 81), got {bad}")
        return out


VIDEO_TENSORS = ("latents", "sem_feats", "fg_mask")  # what a clip's video gives (the rest comes from its caption)


class ClipError(ValueError):
    """A readable video that cannot make a training clip (e.g. too short for every frame bucket)."""


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def _fingerprint(path: str) -> str:
    """A weights path as it enters the key: resolved, plus its size when it is a file (a replaced file differs)."""
    if not path:
        return ""
    p = Path(path).expanduser().resolve()
    return f"{p}:{p.stat().st_size}" if p.is_file() else str(p)


def cache_key(cfg: PrepareConfig) -> str:
    """16 hex digits hashing every setting that changes the cached content."""
    content = {k: v for k, v in asdict(cfg).items() if k not in ("shard_size", "device")}
    for k in ("vae", "semantic_encoder_path", "text_encoder_path"):
        content[k] = _fingerprint(content[k])
    content.update(sizes=cfg.size_buckets(), frames=cfg.frame_buckets(), format=CACHE_FORMAT)
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def sample_id(video: Path, caption: str | list[str]) -> str:
    """Entry key: the video file (path, size, mtime) and its caption; a changed file or caption is re-encoded (only
    its text when the video is unchanged)."""
    st = video.stat()
    # per-segment captions (several lines) and alternatives (a list) are cached differently from one caption: mark
    # them; single lines keep their ids
    if isinstance(caption, list):
        caption, mark = json.dumps(caption), "|alternatives"
    else:
        mark = "|segments" if len(caption.strip().splitlines()) > 1 else ""
    key = f"{video.resolve()}|{st.st_size}|{st.st_mtime_ns}|{caption}{mark}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def nearest_size(height: int, width: int, sizes: list[tuple[int, int]]) -> tuple[int, int]:
    """The size bucket whose aspect ratio is nearest (in log ratio) to height x width."""
    return min(sizes, key=lambda s: abs(math.log((s[0] / s[1]) / (height / width))))


def load_components(cfg: PrepareConfig):
    """(vae, semantic encoder or None for semantic_source vae, text encoder) from the configured weights."""
    from semanticgen_core.encoders import load_semantic_encoder
    from semanticgen_core.text import load_text_encoder
    from semanticgen_core.vae import load_vae

    if cfg.semantic_source not in ("encoder", "vae"):
        raise ValueError(f"semantic_source must be 'encoder' or 'vae', got {cfg.semantic_source!r}")
    if cfg.foreground_mask not in ("", "row-median"):
        raise ValueError(f"foreground_mask must be '' or 'row-median', got {cfg.foreground_mask!r}")
    vae = load_vae(cfg.vae, device=cfg.device).eval()
    sem = None
    if cfg.semantic_source == "encoder":
        sem = load_semantic_encoder(cfg.semantic_encoder, cfg.semantic_encoder_path, device=cfg.device)
    text = load_text_encoder(cfg.text_encoder, cfg.text_encoder_path, device=cfg.device)
    return vae, sem, text


def encode_text(text_encoder, caption: str) -> torch.Tensor:
    """Text features [S, D] of one caption with the zero padding trimmed (collate restores it)."""
    ctx, mask = text_encoder.encode([caption])  # [1, S, D], [1, S]
    return ctx[0, : max(1, int(mask[0].sum()))].float().cpu()


def _stack(feats: list[torch.Tensor]) -> torch.Tensor:
    """[N, S, D] from N features [S_i, D], zero-padded to the longest."""
    s = max(f.shape[0] for f in feats)
    return torch.stack([torch.nn.functional.pad(f, (0, 0, 0, s - f.shape[0])) for f in feats])


def encode_captions(text_encoder, caption, seconds: float, what: str = "caption") -> dict[str, torch.Tensor]:
    """{"ctx": [S, D]} for a one-line caption; for per-segment lines (`START: caption`, see semanticgen_core.schedule)
    starting before the clip ends (`seconds`): {"ctx": [G, S, D] zero-padded, "ctx_starts": [G] seconds}; for a
    list of alternatives: {"ctx": the first's [S, D], "ctx_alts": [V, S, D] zero-padded}."""
    if isinstance(caption, list):
        feats = [encode_text(text_encoder, c) for c in caption]
        return {"ctx": feats[0], "ctx_alts": _stack(feats)}
    schedule = [(t, c) for t, c in parse_caption(caption, what) if t < seconds]
    if len(schedule) == 1:
        return {"ctx": encode_text(text_encoder, schedule[0][1])}
    ctx = _stack([encode_text(text_encoder, c) for _, c in schedule])  # [G, S, D]
    return {"ctx": ctx, "ctx_starts": torch.tensor([t for t, _ in schedule], dtype=torch.float32)}


def vae_plan_features(latents: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Normalised latents [C, T, H, W] folded onto a plan grid: [C * H/H_s * W/W_s, T, H_s, W_s] (one plan frame per
    latent frame). Nothing is thrown away before the learned compressor, as with the semantic encoder's features."""
    c, t, h, w = latents.shape
    hs, ws = grid
    if h % hs or w % ws:
        raise ValueError(f"vae_plan_grid {hs}x{ws} must divide the latent grid {h}x{w}")
    return rearrange(latents, "c t (hs ph) (ws pw) -> (c ph pw) t hs ws", hs=hs, ws=ws)


def foreground_mask(frames: np.ndarray, latent_shape: tuple[int, int, int], threshold: float = 24.0) -> torch.Tensor:
    """fg_mask [T, H, W] (0/1) of uint8 frames [F, H_px, W_px, 3] on the latent grid (T, H, W) of the causal VAE
    (latent frame 0 covers frame 0, latent frame i frames 4i-3..4i): 1 where any covered pixel differs from its
    row's median colour by more than `threshold` levels in some channel."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float()  # [F, H_px, W_px, 3]
    fg = (x - x.median(dim=2, keepdim=True).values).abs().amax(-1).gt(threshold).float()  # [F, H_px, W_px]
    t, h, w = latent_shape
    if t > 1:
        rest = fg[1:]
        if rest.shape[0] % (t - 1):
            raise ValueError(f"{len(frames)} frames do not map onto {t} latent frames of the causal VAE")
        fg = torch.cat([fg[:1], rest.reshape(t - 1, -1, *rest.shape[1:]).amax(1)])  # [T, H_px, W_px]
    return F.adaptive_max_pool2d(fg[:t, None], (h, w))[:, 0]  # [T, H, W]


@torch.inference_mode()
def encode_clip(path: Path, caption: str, cfg: PrepareConfig, components) -> tuple[dict[str, torch.Tensor], dict]:
    """({latents [C, T, H, W], sem_feats [d, T_s, H_s, W_s], ctx [S, D]}, clip info) of one video's first clip."""
    vae, sem_encoder, text_encoder = components
    buckets = cfg.frame_buckets()
    frames = read_video(path, fps=cfg.vae_fps, max_frames=buckets[-1])  # uint8 [F, H, W, 3]
    n = max((f for f in buckets if f <= len(frames)), default=None)
    if n is None:
        raise ClipError(f"too short: {len(frames)} frames at {cfg.vae_fps} fps, the shortest bucket is {buckets[0]}")
    h, w = nearest_size(frames.shape[1], frames.shape[2], cfg.size_buckets())
    frames = resize_center_crop(frames[:n], h, w)
    video = torch.from_numpy(frames).permute(3, 0, 1, 2)[None].float().div(127.5).sub(1)  # [1, 3, F, H, W]
    latents = vae.encode(video.to(cfg.device))[0].float().cpu()  # [C, T, H/8, W/8] normalised
    if cfg.semantic_source == "vae":  # the compressed-VAE-space ablation: the plan is made of the latents themselves
        sem_feats, sem_frames = vae_plan_features(latents, cfg.plan_grid()), latents.shape[1]
    else:  # the same time span at the semantic rate, the same crop: the plan describes exactly these pixels
        frames_s = resize_center_crop(read_video(path, fps=cfg.sem_fps, duration=n / cfg.vae_fps), h, w)
        sem_feats, sem_frames = sem_encoder.encode(frames_s)[0].float().cpu(), len(frames_s)  # [d, T_s, H_s, W_s]
    clip = {"latents": latents, "sem_feats": sem_feats, **encode_captions(text_encoder, caption, n / cfg.vae_fps, path)}
    if cfg.foreground_mask == "row-median":
        clip["fg_mask"] = foreground_mask(frames, tuple(latents.shape[1:]))
    return clip, {"num_frames": n, "height": h, "width": w, "sem_frames": sem_frames}


def reusable_videos(folder: Path, known: dict) -> dict[str, str]:
    """Resolved video path -> id of a cached entry of that video, for videos unchanged since (the entry's id comes
    out again from the file's size and mtime): a new caption of such a video re-encodes only its text."""
    out = {}
    for sid, e in known.items():
        video = Path(e["video"])
        if video.is_file() and (folder / e["shard"]).is_file() and sample_id(video, e["caption"]) == sid:
            out[str(video.resolve())] = sid
    return out


def recaption_clip(folder: Path, sid: str, entry: dict, caption, cfg: PrepareConfig, text_encoder):
    """encode_clip's result for a new caption of a cached video: its tensors read back, only the text encoded."""
    with safe_open(str(folder / entry["shard"]), framework="pt") as f:
        clip = {k: f.get_tensor(f"{sid}.{k}").float() for k in VIDEO_TENSORS if k in entry["shapes"]}
    info = {k: entry[k] for k in ("num_frames", "height", "width", "sem_frames")}
    clip.update(encode_captions(text_encoder, caption, info["num_frames"] / cfg.vae_fps, entry["video"]))
    return clip, info


def specs(cfg: PrepareConfig, sem_encoder, clip: dict, info: dict, vae=None) -> dict:
    """SemanticSpec and VideoSpec dicts of the cache (the encoder's own spec, else read off the first clip); the
    VideoSpec records the VAE's latent statistics, so every model trained on the cache knows its latent space."""
    (c, t, lh, _), (d, ts, hs, _) = clip["latents"].shape, clip["sem_feats"].shape
    t_factor = (info["num_frames"] - 1) // (t - 1) if t > 1 else 4
    if cfg.semantic_source == "vae":  # one plan frame per latent frame: the grid rule of SemanticSpec.grid gives T
        sem = SemanticSpec(kind="vae_latent", dim=d, compressed_dim=d, fps=cfg.vae_fps / t_factor, temporal_patch=1,
                           spatial_patch=info["height"] // hs)  # fmt: skip
    elif hasattr(sem_encoder, "spec"):
        sem = sem_encoder.spec
    else:  # an encoder without a spec (e.g. a test double): patch sizes from its grid
        sem = SemanticSpec(kind=getattr(sem_encoder, "kind", cfg.semantic_encoder), dim=d, compressed_dim=d)
        sem.temporal_patch, sem.spatial_patch = math.ceil(info["sem_frames"] / ts), info["height"] // hs
    if cfg.semantic_source != "vae":
        sem.fps = cfg.sem_fps
    video = VideoSpec(fps=cfg.vae_fps, temporal_factor=t_factor, spatial_factor=info["height"] // lh, z_dim=c)
    vae_cfg = getattr(vae, "config", None) or {}
    if vae_cfg.get("latents_mean") is not None:
        video.latents_mean, video.latents_std = list(vae_cfg["latents_mean"]), list(vae_cfg["latents_std"])
    return {"semantic": sem.to_dict(), "video": video.to_dict()}


# ----------------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------------


def _read_json(path: Path, default: dict) -> dict:
    return json.loads(path.read_text()) if path.is_file() else default


def prepare(cfg: PrepareConfig, pairs: list[tuple[Path, str]], out: str | Path, components=None, rank: int = 0,
            world: int = 1, barrier=None) -> dict:  # fmt: skip
    """Encode `pairs` into OUT/<key>/ and return the index (plus `dir`, `encoded`, `reused`, `skipped`).

    Several processes (one call each, e.g. under `accelerate launch`; `barrier()` waits for all of them): process
    `rank` of `world` encodes pairs rank, rank + world, ... into its own shards (`shard-r<rank>-N`) and records them
    in `index.part<rank>.json` after every shard; then the main process merges the parts into index.json, with the
    samples in the order of `pairs`: the same cache as one process makes, but for shard file names. Entries of
    index.json and of parts left by a crashed run are reused, whatever number of processes made them.
    """
    components = components or load_components(cfg)
    folder = Path(out) / cache_key(cfg)
    index_path = folder / INDEX_NAME
    index = _read_json(index_path, {"entries": {}})
    parts = sorted(folder.glob("index.part*.json"))
    known = {**index["entries"], **{k: v for q in parts for k, v in _read_json(q, {"entries": {}})["entries"].items()}}
    own_path = index_path if world == 1 else folder / f"index.part{rank}.json"
    own = index if world == 1 else _read_json(own_path, {"entries": {}})
    own.update(format=CACHE_FORMAT, key=folder.name, settings=asdict(cfg), complete=False)
    prefix = "shard-" if world == 1 else f"shard-r{rank}-"
    numbers = [
        int(q.stem[len(prefix) :]) for q in folder.glob(f"{prefix}*.safetensors") if q.stem[len(prefix) :].isdigit()
    ]
    shard_no = 1 + max(numbers, default=-1)  # never reused
    pending, skipped, encoded, text_only, t0 = {}, [], 0, 0, time.perf_counter()
    reusable = None  # reusable_videos(), computed once something needs encoding

    def flush():
        nonlocal shard_no
        if not pending:
            return
        name, tensors = f"{prefix}{shard_no:05d}.safetensors", {}
        for sid, (clip, entry) in pending.items():
            tensors.update({f"{sid}.{k}": v if k == "ctx_starts" else v.to(DTYPES[cfg.dtype]) for k, v in clip.items()})
            own["entries"][sid] = {**entry, "shard": name}
        meta = {"samples": json.dumps({sid: e for sid, (_, e) in pending.items()}), "cache_key": folder.name}
        atomic_save_file(tensors, folder / name, meta)
        atomic_write_text(own_path, json.dumps(own, indent=1))  # a crash from here on keeps this shard
        pending.clear()
        shard_no += 1

    for video, caption in tqdm(pairs[rank::world], desc=f"prepare {rank}/{world}", unit="video", position=rank):
        if not caption:  # None: no caption file / field; "": an empty one. Training on no text teaches nothing
            reason = "no caption (no .txt beside it, or no caption field)" if caption is None else "empty caption"
            skipped.append({"video": str(video), "reason": reason})
            tqdm.write(f"skipped {video}: {reason}")
            continue
        sid = sample_id(video, caption) if video.is_file() else None
        if sid is not None and (sid in known or sid in pending):
            continue
        if reusable is None:
            reusable = reusable_videos(folder, known)
        old = reusable.get(str(video.resolve())) if sid is not None else None
        try:
            if old is not None:
                clip, info = recaption_clip(folder, old, known[old], caption, cfg, components[2])
                text_only += 1
            else:
                clip, info = encode_clip(video, caption, cfg, components)
        except (VideoReadError, ClipError, ScheduleError) as err:  # each names the file and the reason
            skipped.append({"video": str(video), "reason": str(err)})
            tqdm.write(f"skipped {video}: {err}")
            continue
        if "semantic" not in own:
            own.update(specs(cfg, components[1], clip, info, components[0]))
            own["text_length"] = int(getattr(components[2], "max_length", 0)) or None
        shapes = {k: list(v.shape) for k, v in clip.items()}
        pending[sid] = (clip, {"caption": caption, "video": str(video), "shapes": shapes, **info})
        encoded += 1
        if len(pending) >= cfg.shard_size:
            flush()
    flush()
    if text_only:
        print(f"prepare {rank}/{world}: {text_only} of the encoded clips had a new caption only (video tensors reused)")
    seconds = time.perf_counter() - t0
    own.update(skipped=skipped, encoded=encoded, seconds=seconds)
    if world > 1:
        atomic_write_text(own_path, json.dumps(own, indent=1))
        barrier()
    if rank == 0:
        index = merge_parts(folder, index, pairs, components[2], world, seconds)
    if world > 1:
        barrier()  # the others return the merged index
        index = _read_json(index_path, {})
    return {**index, "dir": str(folder), "reused": len(index["samples"]) - index["encoded"]}


def merge_parts(folder: Path, index: dict, pairs, text_encoder, world: int, seconds: float) -> dict:
    """index.json from the main index and every part (main process): entries, specs, skipped videos, the sample
    order of `pairs`, the empty prompt's features; the parts are removed once index.json is complete."""
    parts = sorted(folder.glob("index.part*.json"))
    records = [index] + [_read_json(q, {"entries": {}}) for q in parts]
    this_run = [rec for q, rec in zip(parts, records[1:]) if int(q.stem[10:]) < world] if world > 1 else [index]
    for rec in records[1:]:
        index["entries"].update(rec["entries"])
        for k in ("format", "key", "settings", "semantic", "video", "text_length"):
            if k in rec and k not in index:
                index[k] = rec[k]
    skipped = [s for rec in this_run for s in rec.get("skipped", [])]
    encoded = sum(rec.get("encoded", 0) for rec in this_run)
    ids = [sample_id(v, c) for v, c in pairs if c and v.is_file()]
    samples = [sid for sid in ids if sid in index["entries"]]
    atomic_save_file({"ctx": encode_text(text_encoder, "")}, folder / NULL_CTX_NAME, {"cache_key": folder.name})
    index.update(samples=samples, skipped=skipped, encoded=encoded, complete=True)
    index.pop("seconds", None)
    atomic_write_text(folder / INDEX_NAME, json.dumps(index, indent=1))
    for q in parts:
        q.unlink()
    rate = encoded / seconds if seconds > 0 else 0.0
    print(f"cache {folder}: {encoded} encoded ({rate:.2f} clips/s over {world} process(es)), "
          f"{len(samples) - encoded} reused, {len(skipped)} skipped")  # fmt: skip
    for reason, count in sorted(Counter(r["reason"].split(":")[0] for r in skipped).items()):
        print(f"  skipped {count}: {reason}")
    return index


def main(args: argparse.Namespace) -> dict:
    from accelerate import PartialState

    cfg = from_args(PrepareConfig, args)
    try:
        pairs = discover_pairs(args.videos)
    except (OSError, ValueError) as err:
        raise SystemExit(str(err)) from err
    state = PartialState()  # one process, or one per GPU / CPU under `accelerate launch --num_processes N`
    if state.num_processes > 1 and cfg.device.startswith("cuda"):
        cfg.device = f"cuda:{state.local_process_index}"  # not part of the cache key
    result = prepare(cfg, pairs, args.out, None, state.process_index, state.num_processes, state.wait_for_everyone)
    if not result["samples"]:
        raise SystemExit(
            f"no usable videos in {args.videos}: all {len(result['skipped'])} were skipped (reasons above, and in "
            f"{result['dir']}/{INDEX_NAME}); stage 1 and 2 cannot train on this cache"
        )
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", required=True, help="folder of videos with .txt captions, or a .jsonl/.csv")
    parser.add_argument("--out", required=True, help="cache root; tensors go to OUT/<settings key>/")
    add_dataclass_args(parser, PrepareConfig)
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse_args())
