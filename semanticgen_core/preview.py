"""Pictures of feature maps: semantic plans and encoder features shown as colours (nodes' previews, debugging)."""

from __future__ import annotations

import torch
from einops import rearrange


def features_to_rgb(x: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """Features [B, C, T, H, W] -> colours [B, T, H, W, 3] in 0..1: the top 3 principal components over all tokens.

    Components are sign-fixed (largest loading positive) and scaled to the [low, high] quantiles of each, so the same
    features always give the same colours; fewer than 3 channels leave the other colours at 0.5.
    """
    b, c, t, h, w = x.shape
    flat = rearrange(x.detach().float(), "b c t h w -> (b t h w) c")
    flat = flat - flat.mean(0, keepdim=True)
    _, vecs = torch.linalg.eigh(flat.T @ flat)  # ascending eigenvalues; columns are components
    comps = vecs.flip(1)[:, : min(3, c)]  # [C, 3]
    comps = comps * torch.sign(comps.gather(0, comps.abs().argmax(0, keepdim=True)))
    proj = flat @ comps  # [N, <=3]
    sample = proj[:: max(1, proj.shape[0] // 100_000)]
    lo, hi = torch.quantile(sample, low, dim=0), torch.quantile(sample, high, dim=0)
    rgb = torch.full((flat.shape[0], 3), 0.5)
    span = hi - lo
    ok = span > 1e-6 * (proj.abs().amax(0) + 1e-12)
    rgb[:, : comps.shape[1]] = torch.where(ok, ((proj - lo) / span.clamp_min(1e-12)).clamp(0, 1), 0.5)
    return rearrange(rgb, "(b t h w) k -> b t h w k", b=b, t=t, h=h, w=w)
