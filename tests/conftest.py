"""Shared tiny components for CPU tests."""

import numpy as np
import pytest
import torch

from semanticgen_core.config import DIT_CONFIGS, DiTConfig
from semanticgen_core.dit import SemanticGenDiT


def randomize(model: torch.nn.Module, std: float = 0.2, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter with noise so zero-initialised layers cannot hide a bug."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


class TinyTextEncoder(torch.nn.Module):
    """Deterministic toy text encoder: byte embeddings, zero-padded to max_length (test double)."""

    def __init__(self, dim: int = 24, max_length: int = 12):
        super().__init__()
        self.dim, self.max_length = dim, max_length
        self.emb = torch.nn.Embedding(256, dim)
        torch.nn.init.normal_(self.emb.weight, generator=torch.Generator().manual_seed(1))

    def encode(self, prompts):
        ctx = torch.zeros(len(prompts), self.max_length, self.dim)
        mask = torch.zeros(len(prompts), self.max_length, dtype=torch.bool)
        for i, p in enumerate(prompts):
            ids = torch.tensor(list(p.encode()[: self.max_length]), dtype=torch.long)
            ctx[i, : len(ids)] = self.emb(ids).detach()
            mask[i, : len(ids)] = True
        return ctx, mask


# a tiny AutoencoderKLWan config: 8x spatial, 4x temporal, 16 latent channels
TINY_VAE = dict(base_dim=8, z_dim=16, dim_mult=[1, 2, 2, 2], num_res_blocks=1, temperal_downsample=[False, True, True])


class PatchMeanEncoder:
    """Test double of a semantic encoder: frame pairs (an odd count padded with the last frame, as Qwen2.5-VL does),
    16x16 patch means, fixed projection 3 -> 16. frames uint8 [T, H, W, 3] -> [1, 16, ceil(T/2), H/16, W/16]."""

    kind, dim = "test", 16

    def __init__(self):
        self.proj = torch.randn(3, self.dim, generator=torch.Generator().manual_seed(7))

    def encode(self, frames):
        x = torch.as_tensor(np.asarray(frames)).float().div(255)  # [T, H, W, 3]
        x = torch.cat([x, x[-1:]]) if len(x) % 2 else x
        t, h, w, _ = x.shape
        x = x.reshape(t // 2, 2, h // 16, 16, w // 16, 16, 3).mean(dim=(1, 3, 5))  # [T/2, H/16, W/16, 3]
        return (x @ self.proj).permute(3, 0, 1, 2)[None]  # [1, d, T_s, H_s, W_s]


@pytest.fixture
def tiny_cfg() -> DiTConfig:
    return DiTConfig.from_dict(DIT_CONFIGS["tiny"].to_dict())


@pytest.fixture
def tiny_dit(tiny_cfg) -> SemanticGenDiT:
    torch.manual_seed(0)
    return randomize(SemanticGenDiT(tiny_cfg).eval())
