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
    flat = rearrange(x.detach().float(), "b c t h w -> (b t h w) c").nan_to_num(0.0, 0.0, 0.0)  # a preview never fails
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


# Wan 2.1 latent -> RGB, as ComfyUI's latent previews do it (comfy/latent_formats.py, Wan21): one linear map per
# latent pixel, applied to the normalised latents (ComfyUI's "process_in" space = our generator space), then
# (rgb + 1) / 2. Rows are latent channels, columns R, G, B.
WAN21_LATENT_RGB_FACTORS = (
    (-0.1299, -0.1692, 0.2932),
    (0.0671, 0.0406, 0.0442),
    (0.3568, 0.2548, 0.1747),
    (0.0372, 0.2344, 0.1420),
    (0.0313, 0.0189, -0.0328),
    (0.0296, -0.0956, -0.0665),
    (-0.3477, -0.4059, -0.2925),
    (0.0166, 0.1902, 0.1975),
    (-0.0412, 0.0267, -0.1364),
    (-0.1293, 0.0740, 0.1636),
    (0.0680, 0.3019, 0.1128),
    (0.0032, 0.0581, 0.0639),
    (-0.1251, 0.0927, 0.1699),
    (0.0060, -0.0633, 0.0005),
    (0.3477, 0.2275, 0.2950),
    (0.1984, 0.0913, 0.1861),
)
WAN21_LATENT_RGB_BIAS = (-0.1835, -0.0868, -0.3360)


def latent_to_rgb(z: torch.Tensor, factors=WAN21_LATENT_RGB_FACTORS, bias=WAN21_LATENT_RGB_BIAS) -> torch.Tensor:
    """Normalised latents [B, C, T, H, W] -> colours [B, T, H, W, 3] in 0..1 by a linear map per latent pixel (no
    VAE): the cheap step preview for a latent space with known factors (Wan 2.1's by default)."""
    w = torch.tensor(factors, dtype=torch.float32)  # [C, 3]
    if w.shape[0] != z.shape[1]:
        raise ValueError(f"latent-to-RGB factors for {w.shape[0]} channels, latents have {z.shape[1]}")
    rgb = torch.einsum("bcthw,ck->bthwk", z.detach().float().cpu(), w) + torch.tensor(bias)
    return ((rgb + 1) / 2).clamp(0, 1)
