import math

import pytest
import torch

from semanticgen_core.compressor import SemanticCompressor, add_plan_noise


def test_shapes_sample_mode_kl():
    comp = SemanticCompressor(64, 8)
    feats = torch.randn(2, 64, 3, 4, 5)
    plan = comp(feats)
    assert plan.mean.shape == plan.logvar.shape == (2, 8, 3, 4, 5)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(plan.sample(g()), plan.sample(g()))
    assert not torch.equal(plan.sample(g()), plan.mode())
    assert plan.kl().shape == (2,) and torch.all(plan.kl() >= 0)


def test_kl_matches_closed_form_and_is_zero_at_standard_normal():
    from semanticgen_core.compressor import GaussianPlan

    mean, logvar = torch.full((1, 2, 1, 1, 1), 0.5), torch.full((1, 2, 1, 1, 1), math.log(2.0))
    expected = 0.5 * (0.25 + 2.0 - 1.0 - math.log(2.0))
    assert torch.allclose(GaussianPlan(mean, logvar).kl(), torch.tensor([expected]))
    assert GaussianPlan(torch.zeros(1, 2, 1, 1, 1), torch.zeros(1, 2, 1, 1, 1)).kl().item() == 0


def test_reparameterised_sample_carries_gradients():
    comp = SemanticCompressor(16, 4)
    plan = comp(torch.randn(1, 16, 2, 2, 2))
    (plan.sample().sum() + plan.kl().sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in comp.parameters())


def test_passthrough_is_identity():
    comp = SemanticCompressor(16, passthrough=True)
    feats = torch.randn(1, 16, 2, 2, 2)
    plan = comp(feats)
    assert comp.out_dim == 16 and torch.equal(plan.sample(), feats) and torch.equal(plan.mode(), feats)
    assert plan.kl().item() == 0 and not list(comp.parameters())


def test_wrong_feature_dim_is_named():
    with pytest.raises(ValueError, match=r"\[B, 64"):
        SemanticCompressor(64)(torch.randn(1, 32, 1, 1, 1))


def test_plan_noise_strength():
    z = torch.zeros(4, 8, 2, 3, 3)
    assert torch.equal(add_plan_noise(z, 0.0), z)
    noisy = add_plan_noise(z, torch.tensor([0.0, 0.1, 0.5, 1.0]), torch.Generator().manual_seed(0))
    stds = noisy.flatten(1).std(1)
    assert stds[0] == 0 and 0.05 < stds[1] < 0.15 and 0.35 < stds[2] < 0.65 and 0.7 < stds[3] < 1.3


def test_plan_starts_narrow_so_the_generator_can_read_it():
    from semanticgen_core.compressor import LOGVAR_INIT

    torch.manual_seed(0)
    plan = SemanticCompressor(64, 8)(torch.randn(4, 64, 2, 3, 3))
    std = plan.logvar.mul(0.5).exp()
    # the bias sets the start; the random weights only jitter it
    assert abs(plan.logvar.mean().item() - LOGVAR_INIT) < 0.5 and std.max() < 0.1
    assert plan.mean.std() > 2 * std.mean()  # sampled plans are mostly signal, not noise
