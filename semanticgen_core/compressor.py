"""Semantic space compression (paper Sec. 3.2): a small MLP maps encoder features d -> k as a diagonal Gaussian.

The compressor gives a low-dimensional, roughly N(0, I) space that the stage-A diffusion model learns easily.
`SemanticCompressor(d, k)` returns a `GaussianPlan` with `mean`, `logvar`, `sample()`, `mode()` and `kl()`;
`passthrough=True` skips compression (the paper's "w.o. compression" ablation).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from einops import rearrange

from .flow import randn

LOGVAR_INIT = -6.0  # initial log-variance of the compressed plan (std 0.05)


class GaussianPlan:
    """Diagonal Gaussian over compressed semantic features. mean, logvar: [B, k, T_s, H_s, W_s]."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor | None):
        self.mean = mean
        self.logvar = None if logvar is None else logvar.clamp(-30.0, 20.0)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised sample mean + std * eps (the mean itself for a pass-through)."""
        if self.logvar is None:
            return self.mean
        eps = randn(self.mean.shape, generator, self.mean.device, self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * eps

    def mode(self) -> torch.Tensor:
        """The most likely plan (the mean)."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per sample [B], averaged over elements (0 for a pass-through)."""
        if self.logvar is None:
            return torch.zeros(self.mean.shape[0], device=self.mean.device)
        kl = 0.5 * (self.mean.float().pow(2) + self.logvar.float().exp() - 1.0 - self.logvar.float())
        return kl.flatten(1).mean(1)


class SemanticCompressor(nn.Module):
    """MLP d -> 2k (mean, log-variance) applied per semantic token, or an identity pass-through."""

    def __init__(self, in_dim: int, out_dim: int = 8, hidden_dim: int | None = None, passthrough: bool = False):
        super().__init__()
        self.in_dim, self.passthrough = in_dim, passthrough
        self.out_dim = in_dim if passthrough else out_dim
        self.hidden_dim = hidden_dim or max(4 * out_dim, min(in_dim, 1024))
        if not passthrough:
            self.mlp = nn.Sequential(
                nn.LayerNorm(in_dim),
                nn.Linear(in_dim, self.hidden_dim),
                nn.GELU(),
                nn.Linear(self.hidden_dim, 2 * out_dim),
            )
            # start narrow (std 0.05): a plan drawn with unit variance at init is mostly noise, the generator
            # learns to ignore it and the KL then finishes the collapse; the KL widens it later as far as it can
            nn.init.constant_(self.mlp[-1].bias[out_dim:], LOGVAR_INIT)

    @property
    def config(self) -> dict:
        return {
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "hidden_dim": self.hidden_dim,
            "passthrough": self.passthrough,
        }

    def forward(self, feats: torch.Tensor) -> GaussianPlan:
        """feats: [B, d, T_s, H_s, W_s] encoder features -> GaussianPlan over [B, k, T_s, H_s, W_s]."""
        if feats.ndim != 5 or feats.shape[1] != self.in_dim:
            raise ValueError(f"compressor expects features [B, {self.in_dim}, T_s, H_s, W_s], got {tuple(feats.shape)}")
        if self.passthrough:
            return GaussianPlan(feats, None)
        b, _, t, h, w = feats.shape
        x = rearrange(feats, "b d t h w -> b t h w d")
        # the plan is float32 whatever the weights' dtype: samplers and the KL work on it in full precision
        mean, logvar = self.mlp(x.to(self.mlp[1].weight.dtype)).float().chunk(2, dim=-1)  # [B, T_s, H_s, W_s, k]
        return GaussianPlan(
            rearrange(mean, "b t h w k -> b k t h w").contiguous(),
            rearrange(logvar, "b t h w k -> b k t h w").contiguous(),
        )


def add_plan_noise(
    z_sem: torch.Tensor, strength: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """RAE-style noise augmentation of a plan: z + strength * N(0, I). strength: scalar or per-sample [B].

    Training draws strength per sample in [0, max]; inference adds a fixed small strength to close the gap between
    encoder plans (seen in training) and generated plans (seen at inference).
    """
    s = torch.as_tensor(strength, dtype=z_sem.dtype, device=z_sem.device)
    if s.ndim:
        s = s.reshape(-1, *([1] * (z_sem.ndim - 1)))
    noise = randn(z_sem.shape, generator, z_sem.device, z_sem.dtype)
    return z_sem + s * noise
