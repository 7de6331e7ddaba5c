"""Evaluation metrics for shapes-world videos: flicker, drift, a learned attribute probe, and what it scores.

* ``temporal_flickering``: VBench's weights-free score, ``(255 - mean |frame[t+1] - frame[t]|) / 255`` with the mean
  over all consecutive pairs and all pixels / channels (VBench computes it on static-camera videos; 1.0 = no change).
* ``drift``: FramePack's Δ_drift^M = |mean(M over the first 15% of segments) - mean(M over the last 15%)|.
* ``AttributeProbe``: a small CNN over a clip that predicts colour (6-way), shape (3-way) and motion (5-way); it is
  trained by ``train_probe`` on freshly rendered train-split clips of ``lab.world`` and scores generated videos:
  ``text_adherence`` (probe vs. the prompt's attributes), ``subject_consistency`` (a long video keeps its character),
  ``motion_agreement`` (reference transfer keeps the reference's motion).
* ``measure_scene``: a pixel-level reading of a rendered clip (no learning), used to check that captions match pixels.

Videos are uint8 ``[T, H, W, 3]`` arrays (the ``video_io`` convention).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .world import BACKGROUNDS, COLORS, MOTIONS, SHAPES, background_image, parse_caption, render, sample_scene

ATTRIBUTES = {"color": tuple(COLORS), "shape": SHAPES, "motion": MOTIONS}

# ----------------------------------------------------------------------------------------------------------------
# Weights-free metrics
# ----------------------------------------------------------------------------------------------------------------


def temporal_flickering(frames) -> float:
    """VBench temporal flickering: (255 - mean absolute difference of consecutive frames) / 255, in [0, 1]."""
    arr = np.asarray(frames)
    if arr.ndim != 4 or len(arr) < 2:
        raise ValueError(f"need frames [T >= 2, H, W, C], got shape {arr.shape}")
    diffs = [np.abs(arr[t + 1].astype(np.float32) - arr[t].astype(np.float32)).mean() for t in range(len(arr) - 1)]
    return float((255.0 - np.mean(diffs)) / 255.0)


def drift(values: Sequence[float], frac: float = 0.15) -> float:
    """|mean of the first `frac` of values - mean of the last `frac`| (at least one value each; time order)."""
    v = np.asarray(values, np.float64)
    if v.ndim != 1 or len(v) == 0:
        raise ValueError(f"need a non-empty 1-D sequence of values, got shape {v.shape}")
    k = max(1, math.ceil(frac * len(v) - 1e-9))
    return float(abs(v[:k].mean() - v[-k:].mean()))


def measure_scene(frames, still_threshold: float = 0.05) -> dict:
    """Read colour, shape and motion of the one shape in a rendered clip from its pixels.

    Background: per-frame, per-row median (the shape covers under half of a row). Colour: median of the strongest
    foreground pixels -> nearest COLORS entry. Coverage alpha: projection on (colour - background). Shape: area over
    the alpha-weighted bounding box (circle ~0.785, square ~1, triangle ~0.5). Motion: displacement of the
    alpha-weighted centroid from the first to the last frame (fractions of the frame), 'still' under the threshold.
    """
    x = np.asarray(frames, np.float32)
    t, h, w, _ = x.shape
    diff = x - np.median(x, axis=2, keepdims=True)
    mag = np.linalg.norm(diff, axis=-1)
    strong = mag >= 0.8 * mag.reshape(t, -1).max(axis=1)[:, None, None]
    rgb = np.median(x[strong & (mag > 40)], axis=0) if np.any(strong & (mag > 40)) else np.zeros(3, np.float32)
    names = list(COLORS)
    color = names[int(np.argmin([np.linalg.norm(rgb - np.asarray(COLORS[n])) for n in names]))]
    bg = x - diff
    ref = np.asarray(COLORS[color], np.float32) - bg
    alpha = np.clip((diff * ref).sum(-1) / np.maximum((ref * ref).sum(-1), 1.0), 0.0, 1.0)
    alpha[mag < 10] = 0.0  # ignore compression noise
    area = alpha.sum(axis=(1, 2))
    box = alpha.max(axis=1).sum(axis=1) * alpha.max(axis=2).sum(axis=1)
    fill = float(np.median(area / np.maximum(box, 1e-6)))
    shape = "triangle" if fill < 0.67 else "circle" if fill < 0.9 else "square"
    ys, xs = (np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w
    cx = (alpha.sum(axis=1) * xs).sum(axis=1) / np.maximum(area, 1e-6)
    cy = (alpha.sum(axis=2) * ys).sum(axis=1) / np.maximum(area, 1e-6)
    dx, dy = float(cx[-1] - cx[0]), float(cy[-1] - cy[0])
    if max(abs(dx), abs(dy)) < still_threshold:
        motion = "still"
    else:
        motion = ("right" if dx > 0 else "left") if abs(dx) >= abs(dy) else ("down" if dy > 0 else "up")
    return dict(color=color, shape=shape, motion=motion, rgb=rgb.tolist(), fill=fill, displacement=(dx, dy))


# ----------------------------------------------------------------------------------------------------------------
# Attribute probe
# ----------------------------------------------------------------------------------------------------------------


def _cnn(c_in: int, w: int) -> nn.Sequential:
    """Four 3x3 convs (strides 2, 2, 2, 1; widths w, 2w, 4w, 4w) with GroupNorm and GELU."""
    layers = []
    for a, b, stride in [(c_in, w, 2), (w, 2 * w, 2), (2 * w, 4 * w, 2), (4 * w, 4 * w, 1)]:
        layers += [nn.Conv2d(a, b, 3, stride, 1), nn.GroupNorm(4, b), nn.GELU()]
    return nn.Sequential(*layers)


def _pool(h: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, 2C]: mean and max over space."""
    return torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)


class AttributeProbe(nn.Module):
    """Three heads over `frames` evenly sampled frames (resized to size x size), factorised so that no head can lean
    on another attribute (the held-out colour/shape and colour/motion pairs are then no harder than the rest):

    * foreground map m: per-pixel distance to the row's median colour, divided by the clip's maximum (colour-blind);
    * motion: strided CNN over m of all frames, their differences, the first-to-last change and two coordinate
      channels, then mean+max pooling;
    * shape: the same kind of CNN over m of the first and of the last frame separately (one frame shows no motion),
      features averaged;
    * colour: a per-pixel MLP over (RGB, RGB - row median) of the first and last frame at half size, averaged with
      weights m^2 (sees colours, not geometry).
    """

    def __init__(self, frames: int = 6, size: int = 64, width: int = 16):
        super().__init__()
        self.config = dict(frames=frames, size=size, width=width)
        w = width
        self.motion_body, self.shape_body = _cnn(2 * frames + 2, w), _cnn(1, w)
        self.pixel = nn.Sequential(nn.Conv2d(6, w, 1), nn.GELU(), nn.Conv2d(w, 2 * w, 1), nn.GELU())
        self.heads = nn.ModuleDict(
            {"color": nn.Linear(2 * w, len(COLORS)), "shape": nn.Linear(8 * w, 3), "motion": nn.Linear(8 * w, 5)}
        )

    def prepare(self, videos) -> torch.Tensor:
        """uint8 videos (a [T, H, W, 3] array or a list of them; T >= 2) -> float CPU [B, F, 3, S, S] in [0, 1]."""
        if isinstance(videos, (np.ndarray, torch.Tensor)) and np.ndim(videos) == 4:
            videos = [videos]
        n, s = self.config["frames"], self.config["size"]
        out = []
        for v in videos:
            v = torch.as_tensor(np.asarray(v))
            if v.ndim != 4 or v.shape[-1] != 3 or len(v) < 2:
                raise ValueError(f"expected frames [T >= 2, H, W, 3], got {tuple(v.shape)}")
            idx = torch.from_numpy(np.linspace(0, len(v) - 1, n).round().astype(np.int64))
            x = v[idx].permute(0, 3, 1, 2).float() / 255.0
            if x.shape[-2:] != (s, s):
                x = F.interpolate(x, size=(s, s), mode="bilinear", antialias=True, align_corners=False)
            out.append(x)
        return torch.stack(out)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """float clips [B, F, 3, S, S] in [0, 1] -> pooled features per head: color [B, 2w], shape / motion [B, 8w]."""
        b, f, _, s, _ = x.shape
        dev = x - x.median(dim=-1, keepdim=True).values
        m = dev.square().sum(dim=2).sqrt()
        m = m / m.flatten(1).amax(1).clamp_min(0.05)[:, None, None, None]
        grid = torch.linspace(-1, 1, s, device=x.device)
        coords = torch.stack(torch.meshgrid(grid, grid, indexing="ij")).expand(b, 2, s, s)
        motion = _pool(self.motion_body(torch.cat([m, (m[:, 1:] - m[:, :-1]) * 2, m[:, -1:] - m[:, :1], coords], 1)))
        ends = [0, f - 1]
        shape = _pool(self.shape_body(m[:, ends].flatten(0, 1).unsqueeze(1))).view(b, 2, -1).mean(1)
        pix = F.avg_pool2d(torch.cat([x[:, ends], dev[:, ends]], dim=2).flatten(0, 1), 2)  # half size is plenty
        pix = self.pixel(pix * 2 - 0.5)
        weight = F.avg_pool2d(m[:, ends].flatten(0, 1).unsqueeze(1), 2).square()
        col = (pix * weight).sum(dim=(2, 3)) / weight.sum(dim=(2, 3)).clamp_min(1e-6)
        return {"color": col.view(b, 2, -1).mean(1), "shape": shape, "motion": motion}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """float clips [B, F, 3, S, S] in [0, 1] -> logits per attribute."""
        return {k: self.heads[k](v) for k, v in self.features(x).items()}

    @torch.no_grad()
    def embed(self, videos, batch_size: int = 64) -> np.ndarray:
        """uint8 videos -> [N, 18w] probe features (all heads' inputs), for Frechet distances between clip sets."""
        self.eval()
        out = []
        for i in range(0, len(videos), batch_size):
            f = self.features(self.prepare(list(videos[i : i + batch_size])).to(self.heads["color"].weight.device))
            out.append(torch.cat([f["color"], f["shape"], f["motion"]], 1).double().cpu().numpy())
        return np.concatenate(out)

    @torch.no_grad()
    def predict(self, frames) -> dict[str, str]:
        """Attribute names predicted for one uint8 video [T, H, W, 3]."""
        return self.predict_batch([frames])[0]

    @torch.no_grad()
    def predict_batch(self, videos, batch_size: int = 64) -> list[dict[str, str]]:
        """Attribute names predicted for each uint8 video of a list."""
        was_training = self.training
        self.eval()
        out = []
        for i in range(0, len(videos), batch_size):
            logits = self(self.prepare(list(videos[i : i + batch_size])).to(self.heads["color"].weight.device))
            idx = {k: v.argmax(-1).tolist() for k, v in logits.items()}
            out += [{k: ATTRIBUTES[k][idx[k][j]] for k in ATTRIBUTES} for j in range(len(idx["color"]))]
        self.train(was_training)
        return out

    def save(self, path) -> None:
        """Write the probe as safetensors with its config in the metadata."""
        from ..checkpoint import atomic_save_file

        meta = {"semanticgen_format": "1", "role": "attribute_probe", "config": json.dumps(self.config)}
        meta["attributes"] = json.dumps(ATTRIBUTES)
        atomic_save_file(self.state_dict(), path, meta)

    @classmethod
    def load(cls, path, device="cpu") -> AttributeProbe:
        """Read a probe written by save (eval mode)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        if meta.get("role") != "attribute_probe":
            raise ValueError(f"{path}: not an attribute probe checkpoint (role {meta.get('role')!r})")
        if json.loads(meta.get("attributes", "null")) != {k: list(v) for k, v in ATTRIBUTES.items()}:
            raise ValueError(f"{path}: the probe was trained on different attribute classes")
        probe = cls(**json.loads(meta["config"]))
        probe.load_state_dict(load_file(str(path)))
        return probe.to(device).eval()


def _render_batch(rng: np.random.Generator, n: int, split: str, size: int, frames: int | None, seconds=(1.0, 4.0)):
    """n rendered clips (8 fps, or just `frames` evenly spaced instants) and their labels (index tensors)."""
    videos, labels = [], {k: [] for k in ATTRIBUTES}
    for _ in range(n):
        sec = float(rng.uniform(*seconds))
        scene = sample_scene(rng, split, sec)
        times = None if frames is None else np.linspace(0.0, sec, frames)
        videos.append(render(scene, sec, 8, size, size, times=times))
        for k, names in ATTRIBUTES.items():
            labels[k].append(names.index(getattr(scene, k)))
    return videos, {k: torch.tensor(v) for k, v in labels.items()}


def _augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Mild corruption of float clips [B, F, 3, S, S] so the probe tolerates imperfect generated videos."""
    b = x.shape[0]
    blur = torch.rand(b, generator=g) < 0.3
    if blur.any():
        flat = x[blur].flatten(0, 1)
        x[blur] = F.avg_pool2d(flat, 3, 1, 1, count_include_pad=False).view_as(x[blur])
    gain = 1 + 0.08 * (torch.rand(b, 1, 3, 1, 1, generator=g) * 2 - 1)
    noise = torch.randn(x.shape, generator=g) * torch.rand(b, 1, 1, 1, 1, generator=g) * 0.04
    return (x * gain + noise).clamp(0, 1)


def train_probe(
    steps: int = 600,
    seed: int = 0,
    batch_size: int = 32,
    lr: float = 3e-3,
    size: int = 64,
    device="cpu",
    log: Callable[[str], None] | None = None,
    **probe_kwargs,
) -> AttributeProbe:
    """Train an AttributeProbe on freshly rendered train-split clips (1-4 s at 8 fps); returns it in eval mode."""
    rng = np.random.default_rng([seed, 7])
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probe = AttributeProbe(size=size, **probe_kwargs).to(device)
    opt = torch.optim.AdamW(probe.parameters(), lr=lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(i, steps) / steps))
    )
    probe.train()
    start = time.perf_counter()
    for step in range(steps):
        videos, labels = _render_batch(rng, batch_size, "train", size, probe.config["frames"])
        logits = probe(_augment(probe.prepare(videos), g).to(device))
        loss = sum(F.cross_entropy(logits[k], labels[k].to(device)) for k in ATTRIBUTES)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if log and (step % 50 == 0 or step == steps - 1):
            log(f"probe step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - start:.0f}s)")
    return probe.eval()


def probe_accuracy(probe: AttributeProbe, n: int = 300, seed: int = 1, split: str = "heldout") -> dict[str, float]:
    """Accuracy of the probe per attribute on n freshly rendered clips of `split`."""
    videos, labels = _render_batch(np.random.default_rng([seed, 11]), n, split, probe.config["size"], None)
    preds = probe.predict_batch(videos)
    return {k: float(np.mean([ATTRIBUTES[k][i] == p[k] for i, p in zip(labels[k].tolist(), preds)])) for k in labels}


# ----------------------------------------------------------------------------------------------------------------
# Probe-based scores
# ----------------------------------------------------------------------------------------------------------------


def text_adherence(probe: AttributeProbe, videos, prompts: Sequence[str]) -> dict[str, float]:
    """Fraction of videos whose predicted colour / shape / motion match the prompt (parse_caption); 'all': all three.

    An attribute the prompt does not name is left out of that attribute's rate (nan if no prompt names it).
    """
    if len(videos) != len(prompts):
        raise ValueError(f"got {len(videos)} videos but {len(prompts)} prompts")
    preds = probe.predict_batch(list(videos))
    truth = [parse_caption(p) for p in prompts]
    out = {}
    for k in ATTRIBUTES:
        hits = [p[k] == t[k] for p, t in zip(preds, truth) if t[k] is not None]
        out[k] = float(np.mean(hits)) if hits else float("nan")
    out["all"] = float(np.mean([all(p[k] == t[k] for k in ATTRIBUTES if t[k]) for p, t in zip(preds, truth)]))
    return out


def segment_predictions(probe: AttributeProbe, frames, segments=None, window_seconds: float = 4.0, fps: float = 8):
    """Probe predictions for each segment (start_frame, end_frame, ...) of a long video, or fixed windows."""
    if segments is None:
        win = max(2, round(window_seconds * fps))
        segments = [(s, min(s + win, len(frames))) for s in range(0, len(frames), win) if len(frames) - s >= 2]
    return probe.predict_batch([frames[s[0] : s[1]] for s in segments])


def subject_consistency(
    probe: AttributeProbe, frames, segments=None, window_seconds: float = 4.0, fps: float = 8, target=None
) -> float:
    """Fraction of segments whose predicted colour AND shape equal `target` (default: the first segment's)."""
    preds = segment_predictions(probe, frames, segments, window_seconds, fps)
    target = target or preds[0]
    return float(np.mean([p["color"] == target["color"] and p["shape"] == target["shape"] for p in preds]))


def segment_motion_accuracy(probe: AttributeProbe, frames, segments) -> float:
    """Fraction of segments (start_frame, end_frame, motion) whose predicted motion is the segment's motion."""
    preds = segment_predictions(probe, frames, segments)
    return float(np.mean([p["motion"] == s[2] for p, s in zip(preds, segments)]))


def motion_agreement(probe: AttributeProbe, ref_frames, gen_frames) -> float:
    """1.0 if the probe predicts the same motion for the reference and the generated video, else 0.0."""
    return motion_agreement_rate(probe, [ref_frames], [gen_frames])


def motion_agreement_rate(probe: AttributeProbe, refs, gens) -> float:
    """Fraction of (reference, generated) pairs whose predicted motions agree."""
    if len(refs) != len(gens) or not refs:
        raise ValueError(f"need equal, non-zero numbers of references and generations, got {len(refs)}, {len(gens)}")
    preds = probe.predict_batch(list(refs) + list(gens))
    return float(np.mean([a["motion"] == b["motion"] for a, b in zip(preds[: len(refs)], preds[len(refs) :])]))


# ----------------------------------------------------------------------------------------------------------------
# Distribution-level and pixel-level scores
# ----------------------------------------------------------------------------------------------------------------


def wilson_interval(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a rate hits / n (stays inside [0, 1], sensible at 0 % and 100 %)."""
    if n <= 0:
        return float("nan"), float("nan")
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets a [N, D] and b [M, D] (FID's formula).

    tr(sqrt(S_a S_b)) is computed as the sum of sqrt(eigenvalues) of sqrt(S_a) S_b sqrt(S_a) (symmetric, no scipy).
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    cross = np.linalg.eigvalsh(root_a @ s_b @ root_a)
    return float(
        ((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.sqrt(np.clip(cross, 0, None)).sum()
    )


def edge_sharpness(frames, top: float = 0.01) -> float:
    """Mean of the strongest `top` fraction of luma gradient magnitudes per frame (levels per pixel), averaged.

    A crisp anti-aliased edge changes by the full contrast within one or two pixels; a soft blob spreads it out, so
    its strongest gradients are weaker. Compare against real renders of the same kind of scene.
    """
    x = np.asarray(frames, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # [T, H, W]
    gx, gy = np.zeros_like(x), np.zeros_like(x)
    gx[:, :, 1:-1], gy[:, 1:-1] = (x[:, :, 2:] - x[:, :, :-2]) / 2, (x[:, 2:] - x[:, :-2]) / 2
    mag = np.sqrt(gx * gx + gy * gy).reshape(len(x), -1)
    k = max(1, round(mag.shape[1] * top))
    return float(np.sort(mag, axis=1)[:, -k:].mean())


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio (dB) between two uint8 arrays of one shape."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def colour_trace(frames, rgb, radius: float = 60.0, min_pixels: int = 3) -> float:
    """Fraction of frames with at least `min_pixels` pixels within RGB distance `radius` of colour `rgb`."""
    x = np.asarray(frames, np.float32)
    near = np.linalg.norm(x - np.asarray(rgb, np.float32), axis=-1) < radius  # [T, H, W]
    return float(np.mean(near.reshape(len(x), -1).sum(1) >= min_pixels))


def background_of(frames) -> str:
    """The BACKGROUNDS name nearest to a clip's background: the median colour of each pixel row over the clip (the
    object covers a few pixels of a row) against each background's vertical gradient."""
    x = np.asarray(frames, np.float32)  # [T, H, W, 3]
    rows = np.median(x, axis=(0, 2))  # [H, 3]
    names = list(BACKGROUNDS)
    grads = np.stack([background_image(b, x.shape[1], 1)[:, 0] for b in names])  # [N, H, 3]
    return names[int(((grads - rows[None]) ** 2).sum(-1).mean(-1).argmin())]
