import pytest
import torch

from semanticgen_core import flow


def test_interpolation_endpoints_and_velocity():
    x0, eps = torch.randn(3, 4, 2, 2, 2), torch.randn(3, 4, 2, 2, 2)
    assert torch.equal(flow.interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(flow.interpolate(x0, eps, torch.ones(3)), eps)
    t = torch.rand(3)
    xt = flow.interpolate(x0, eps, t)
    v = flow.velocity_target(x0, eps)
    # the path is straight: d x_t / dt = v, and x0 / eps are recovered from (x_t, v)
    dt = 1e-3
    assert torch.allclose((flow.interpolate(x0, eps, t + dt) - xt) / dt, v, atol=1e-2)
    assert torch.allclose(flow.predict_x0(xt, v, t), x0, atol=1e-5)
    assert torch.allclose(flow.predict_eps(xt, v, t), eps, atol=1e-5)


def test_shift_and_schedule():
    t = torch.linspace(0, 1, 11)
    assert torch.equal(flow.shift_time(t, 1.0), t)
    s = flow.shift_time(t, 5.0)
    assert s[0] == 0 and s[-1] == 1 and torch.all(s >= t) and torch.all(s[1:] > s[:-1])
    ts = flow.schedule(4, shift=3.0)
    assert ts.shape == (5,) and ts[0] == 1 and ts[-1] == 0 and torch.all(ts[1:] < ts[:-1])
    with pytest.raises(ValueError):
        flow.schedule(0)


def test_time_sampling_range_and_determinism():
    for mode in ("uniform", "logit_normal"):
        a = flow.sample_time(1000, mode, shift=3.0, generator=torch.Generator().manual_seed(0))
        b = flow.sample_time(1000, mode, shift=3.0, generator=torch.Generator().manual_seed(0))
        assert torch.equal(a, b) and a.min() > 0 and a.max() < 1
    # logit-normal concentrates around the middle; the shift moves mass towards noise
    ln = flow.sample_time(20000, "logit_normal", generator=torch.Generator().manual_seed(0))
    assert abs(ln.mean().item() - 0.5) < 0.01 and ln.std() < 0.25
    assert flow.sample_time(20000, "uniform", shift=3.0).mean() > 0.6
    with pytest.raises(ValueError):
        flow.sample_time(3, "cosine")


def test_loss_is_zero_at_target_and_positive_elsewhere():
    x0, eps = torch.randn(2, 3, 4), torch.randn(2, 3, 4)
    assert flow.flow_loss(eps - x0, x0, eps) == 0
    assert flow.flow_loss(torch.zeros(2, 3, 4), x0, eps) > 0


def test_flow_loss_element_weight_is_a_weighted_mean_within_each_sample():
    g = torch.Generator().manual_seed(0)
    x0, eps, v = (torch.randn(2, 3, 4, 5, generator=g) for _ in range(3))
    assert torch.allclose(flow.flow_loss(v, x0, eps, element_weight=torch.full((2, 1, 4, 5), 7.0)),
                          flow.flow_loss(v, x0, eps))  # fmt: skip
    w = torch.zeros(2, 1, 4, 5)
    w[:, :, 0] = 1  # only row 0 counts
    err = (v - (eps - x0)).pow(2)
    assert torch.allclose(flow.flow_loss(v, x0, eps, element_weight=w), err[:, :, 0].mean())
