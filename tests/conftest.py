"""Shared tiny components for CPU tests."""

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


@pytest.fixture
def tiny_cfg() -> DiTConfig:
    return DiTConfig.from_dict(DIT_CONFIGS["tiny"].to_dict())


@pytest.fixture
def tiny_dit(tiny_cfg) -> SemanticGenDiT:
    torch.manual_seed(0)
    return randomize(SemanticGenDiT(tiny_cfg).eval())
