"""Rectified flow: the one convention of this project (paper Eq. 1-3).

- t = 0 is data and t = 1 is noise
- x_t = (1 - t) * x0 + t * eps
- the network predicts the velocity v = eps - x0 (so dx_t/dt = v)
- the timestep shift is `shift_time` (Wan / SD3: t' = s t / (1 + (s - 1) t))

Every other module imports these functions instead of re-deriving them.
"""

from __future__ import annotations

import torch


def _bcast(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-sample times [B] -> broadcastable to x [B, ...]."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(-1, *([1] * (x.ndim - 1))) if t.ndim else t


def randn(
    shape, generator: torch.Generator | None = None, device: torch.device | str = "cpu", dtype=torch.float32
) -> torch.Tensor:
    """Gaussian noise drawn on the generator's device (so a CPU seed gives the same noise everywhere), then moved."""
    gen_device = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, device=gen_device, dtype=dtype).to(device)


def interpolate(x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t eps. x0, eps: [B, ...]; t: [B] or scalar in [0, 1]."""
    t = _bcast(t, x0)
    return (1 - t) * x0 + t * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The regression target v = eps - x0."""
    return eps - x0


def predict_x0(xt: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Clean sample implied by a velocity: x0 = x_t - t v."""
    return xt - _bcast(t, xt) * v


def predict_eps(xt: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Noise implied by a velocity: eps = x_t + (1 - t) v."""
    return xt + (1 - _bcast(t, xt)) * v


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan's timestep shift: t' = s t / (1 + (s - 1) t). s > 1 spends more steps near noise."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift}")
    return shift * t / (1 + (shift - 1) * t)


def sample_time(
    batch: int,
    mode: str = "logit_normal",
    shift: float = 1.0,
    mean: float = 0.0,
    std: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Training times t [batch] in (0, 1): 'uniform' or 'logit_normal' (sigmoid of N(mean, std)), then shifted."""
    if mode == "uniform":
        t = torch.rand(batch, generator=generator, device=device)
    elif mode == "logit_normal":
        t = torch.sigmoid(mean + std * torch.randn(batch, generator=generator, device=device))
    else:
        raise ValueError(f"unknown timestep sampling mode {mode!r}; use 'uniform' or 'logit_normal'")
    return shift_time(t, shift) if shift != 1.0 else t


def flow_loss(v_pred: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor, weight: torch.Tensor | None = None,
              element_weight: torch.Tensor | None = None):  # fmt: skip
    """Conditional flow-matching loss: mean ||v_pred - (eps - x0)||^2, optionally weighted per sample (`weight` [B])
    and per element (`element_weight`, broadcast to x0 [B, C, T, H, W]: a weighted mean within each sample)."""
    err = (v_pred.float() - velocity_target(x0, eps).float()).pow(2)
    if element_weight is None:
        err = err.flatten(1).mean(1)  # [B]
    else:
        ew = element_weight.float().expand_as(err)
        err = (err * ew).flatten(1).sum(1) / ew.flatten(1).sum(1).clamp_min(1e-12)  # [B]
    if weight is not None:
        err = err * weight
    return err.mean()


def schedule(steps: int, shift: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """Sampling times [steps + 1] from 1 (noise) down to 0 (data), shifted."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    t = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64, device=device)
    return shift_time(t, shift).float()


def schedule_from(t0: float, steps: int, shift: float = 1.0, device: torch.device | str = "cpu") -> torch.Tensor:
    """t0 then the times of schedule(steps, shift) below it [n + 1]: sampling that starts from x_t0 (SDEdit)."""
    ts = schedule(steps, shift, device)
    return torch.cat([ts.new_tensor([t0]), ts[ts < t0]])
