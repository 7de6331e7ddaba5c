"""Metrics of the paper-claims experiments (benchmarks/paper_claims.py), on top of ``metrics.py``:

* intervals: ``wilson`` (a rate of independent trials), ``bootstrap_ci`` (a mean over videos);
* pixels, no learning: ``foreground_mask`` (distance to a robust background estimate), ``frame_objects`` (connected
  components), ``broken_frames`` (no recognisable object, or two), ``object_track`` (centroid and colour of the
  object per frame), ``background_consistency`` (VBench's idea on the estimated background);
* the attribute probe's features: ``probe_features`` (the pooled inputs of its three heads), ``frechet_distance``
  between two sets of them, ``feature_consistency`` (VBench's subject consistency on them).

Generated videos have no known background, so the background is estimated from the frame itself: the world's
backgrounds are vertical gradients (constant along a row) and the one object covers under a third of any row, so the
per-row median colour is the background wherever the object is not. Videos are uint8 ``[T, H, W, 3]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage

from .metrics import AttributeProbe, wilson_interval
from .metrics import frechet_distance as _frechet

# ----------------------------------------------------------------------------------------------------------------
# Intervals
# ----------------------------------------------------------------------------------------------------------------


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float, float]:
    """(rate, low, high): k successes of n independent trials with the Wilson score interval (95 % for z=1.96)."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    return (k / n, *wilson_interval(k, n, z))


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, seed: int = 0, level: float = 0.95):
    """(mean, low, high): percentile bootstrap interval of the mean of independent values (e.g. one per video)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    means = v[np.random.default_rng(seed).integers(0, len(v), (n_boot, len(v)))].mean(1)
    a = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


# ----------------------------------------------------------------------------------------------------------------
# Pixels
# ----------------------------------------------------------------------------------------------------------------


def background_estimate(frames) -> np.ndarray:
    """Per-frame, per-row median colour: float32 [T, H, 3] (the world's backgrounds are constant along a row)."""
    return np.median(np.asarray(frames, np.float32), axis=2)


def foreground_mask(frames, threshold: float = 40.0) -> np.ndarray:
    """bool [T, H, W]: pixels whose largest channel differs from the row's background estimate by > threshold."""
    x = np.asarray(frames, np.float32)
    return np.abs(x - background_estimate(x)[:, :, None]).max(-1) > threshold


_EIGHT = np.ones((3, 3), bool)  # 8-connectivity


def frame_objects(mask: np.ndarray, min_area: int = 4) -> list[np.ndarray]:
    """Per frame of a mask [T, H, W]: the areas of its connected components of >= min_area pixels, largest first."""
    out = []
    for m in mask:
        labels, n = ndimage.label(m, _EIGHT)
        areas = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        out.append(np.sort(areas[areas >= min_area])[::-1])
    return out


def broken_frames(frames, min_object: int = 20, second_fraction: float = 0.25, threshold: float = 40.0) -> np.ndarray:
    """bool [T]: frames without a recognisable object (largest component < min_object pixels) or with two (the
    second largest >= second_fraction of the largest and >= min_object / 2 pixels).

    The world's smallest object (a triangle of radius 0.09 at 64 px) covers ~66 pixels; anti-aliased edges and codec
    noise stay under the threshold, so real renders score no broken frame (tests/test_claims.py).
    """
    flags = []
    for areas in frame_objects(foreground_mask(frames, threshold)):
        none = len(areas) == 0 or areas[0] < min_object
        two = len(areas) > 1 and areas[1] >= max(second_fraction * areas[0], min_object / 2)
        flags.append(bool(none or two))
    return np.asarray(flags)


def object_track(frames, threshold: float = 40.0, min_object: int = 20):
    """(centres float [T, 2] as (x, y) frame fractions, colours float [T, 3]) of the largest foreground component per
    frame; rows are nan where no component of >= min_object pixels exists."""
    x = np.asarray(frames)
    mask = foreground_mask(x, threshold)
    t, h, w = mask.shape
    centres, colours = np.full((t, 2), np.nan), np.full((t, 3), np.nan)
    for i, m in enumerate(mask):
        labels, n = ndimage.label(m, _EIGHT)
        if n == 0:
            continue
        areas = np.bincount(labels.ravel())[1:]
        j = int(np.argmax(areas)) + 1
        if areas[j - 1] < min_object:
            continue
        ys, xs = np.nonzero(labels == j)
        centres[i] = ((xs.mean() + 0.5) / w, (ys.mean() + 0.5) / h)
        colours[i] = np.median(x[i][ys, xs].astype(np.float32), axis=0)
    return centres, colours


def background_consistency(frames) -> float:
    """VBench-style background consistency in [0, 1]: for each frame t >= 1, the mean of its estimated background's
    similarity (1 - mean |difference| / 255) to frame 0's and to frame t-1's; averaged over t."""
    bg = background_estimate(frames)
    if len(bg) < 2:
        raise ValueError(f"need at least 2 frames, got {len(bg)}")
    sim = lambda a, b: 1.0 - np.abs(a - b).mean() / 255.0  # noqa: E731
    return float(np.mean([(sim(bg[t], bg[0]) + sim(bg[t], bg[t - 1])) / 2 for t in range(1, len(bg))]))


# ----------------------------------------------------------------------------------------------------------------
# Probe features
# ----------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def probe_features(probe: AttributeProbe, videos, batch_size: int = 64) -> dict[str, np.ndarray]:
    """The pooled features the probe's heads read, per video: {'color': [N, 2w], 'shape': [N, 8w], 'motion': [N, 8w],
    'logits': [N, 14]} (captured by forward pre-hooks, so they are exactly what the probe classifies)."""
    seen: dict[str, list] = {k: [] for k in probe.heads}
    hooks = [
        head.register_forward_pre_hook(lambda _m, args, k=k: seen[k].append(args[0].detach().cpu()))
        for k, head in probe.heads.items()
    ]
    logits = []
    was_training = probe.training
    probe.eval()
    try:
        device = probe.heads["color"].weight.device
        for i in range(0, len(videos), batch_size):
            out = probe(probe.prepare(list(videos[i : i + batch_size])).to(device))
            logits.append(torch.cat([out[k] for k in probe.heads], 1).cpu())
    finally:
        for h in hooks:
            h.remove()
        probe.train(was_training)
    feats = {k: torch.cat(v).numpy() for k, v in seen.items()}
    feats["logits"] = torch.cat(logits).numpy()
    return feats


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a [N, D] and b [M, D] (FID's formula)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two feature sets [N >= 2, D] of one D, got {a.shape} and {b.shape}")
    return _frechet(a, b)


def feature_consistency(feats) -> float:
    """VBench subject consistency on feature rows [S, D] in time order: mean over s >= 1 of the average cosine
    similarity of row s with row 0 and with row s-1."""
    f = np.asarray(feats, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"need features [S >= 2, D], got {f.shape}")
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return float(np.mean([(f[s] @ f[0] + f[s] @ f[s - 1]) / 2 for s in range(1, len(f))]))
