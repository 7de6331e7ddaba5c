"""Samplers: pure functions with a k-diffusion-style signature (paper Eq. 4).

`model_fn(x, t, **extra_args) -> v` predicts the velocity for x [B, ...] at times t [B] (t = 1 noise, t = 0 data;
see `flow.py`). `callback(info)` is called after every step with a dict: i, steps, t, x, v, denoised.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .flow import predict_x0

ModelFn = Callable[..., torch.Tensor]


def sample_euler(
    model_fn: ModelFn,
    x: torch.Tensor,
    ts: torch.Tensor,
    extra_args: dict | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
) -> torch.Tensor:
    """Euler integration of dx/dt = v from ts[0] (noise) to ts[-1] (data). x: [B, ...]; ts: [steps + 1]."""
    extra_args = extra_args or {}
    steps = len(ts) - 1
    iterator = range(steps)
    if disable is False:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=steps, leave=False)
    for i in iterator:
        t = ts[i].expand(x.shape[0]).to(x.device)
        v = model_fn(x, t, **extra_args)
        if callback is not None:
            callback({"i": i, "steps": steps, "t": ts[i], "x": x, "v": v, "denoised": predict_x0(x, v, t)})
        x = x + (ts[i + 1] - ts[i]).to(x.dtype) * v
    return x


def pad_context(ctx: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad text features [B, S, D] to `length` tokens (Wan pads its text context with zeros)."""
    if ctx.shape[1] > length:
        raise ValueError(f"context has {ctx.shape[1]} tokens, more than the requested {length}")
    return F.pad(ctx, (0, 0, 0, length - ctx.shape[1]))


def guided(
    model_fn: ModelFn, context: torch.Tensor, uncond_context: torch.Tensor | None, scale: float, parts=None
) -> ModelFn:
    """Classifier-free guidance: v = v_u + scale (v_c - v_u), cond and uncond in one batched forward.

    `context` [B, S, D] (or [B, G, S, D]: a prompt schedule of G segments) and `uncond_context` [B or 1, S', D] are
    zero-padded to one length; the unconditional context is one text for every segment. With scale == 1 or no
    uncond context, one plain conditional forward is made. `parts` (compose.encode_parts: contexts [B, K, S, D],
    weights [B, K]) adds scale w_k (v_k - v_u) per part (compose.py), all in the same batched forward.
    """
    if parts is not None:
        return _composed(model_fn, context, uncond_context, scale, *parts)
    if uncond_context is None or scale == 1.0:
        return lambda x, t, **kw: model_fn(x, t, context=context, **kw)
    b = context.shape[0]
    s = max(context.shape[-2], uncond_context.shape[1])
    if context.ndim == 4:  # [B, G, S, D]: the empty prompt in every segment reads as one empty prompt
        cond = torch.stack([pad_context(c, s) for c in context.unbind(1)], dim=1)
        uncond = pad_context(uncond_context, s)[:, None].expand(b, context.shape[1], -1, -1)
        both = torch.cat([cond, uncond])  # [2B, G, S, D]
    else:
        both = torch.cat([pad_context(context, s), pad_context(uncond_context, s).expand(b, -1, -1)])  # [2B, S, D]

    def fn(x, t, **kw):
        kw = {k: torch.cat([v, v]) if torch.is_tensor(v) and v.shape[:1] == (b,) else v for k, v in kw.items()}
        v_c, v_u = model_fn(torch.cat([x, x]), torch.cat([t, t]), context=both, **kw).chunk(2)
        return v_u + scale * (v_c - v_u)

    return fn


def _composed(model_fn: ModelFn, context, uncond_context, scale: float, part_ctx, weights) -> ModelFn:
    """guided() with parts: v = v_u + scale (v_c - v_u) + sum_k scale w_k (v_k - v_u); K + 2 contexts per sample."""
    if context.ndim != 3 or uncond_context is None:
        raise ValueError("a composed prompt (A AND B) needs one text context per video and the empty prompt's, not "
                         f"a prompt schedule: got a context of shape {tuple(context.shape)}")  # fmt: skip
    b, k = part_ctx.shape[:2]
    s = max(context.shape[1], part_ctx.shape[2], uncond_context.shape[1])
    parts = [pad_context(part_ctx[:, i], s) for i in range(k)]
    every = torch.cat([pad_context(context, s), *parts, pad_context(uncond_context, s).expand(b, -1, -1)])
    n = k + 2

    def fn(x, t, **kw):
        kw = {key: torch.cat([v] * n) if torch.is_tensor(v) and v.shape[:1] == (b,) else v for key, v in kw.items()}
        vs = model_fn(torch.cat([x] * n), torch.cat([t] * n), context=every, **kw).chunk(n)
        out = vs[-1] + scale * (vs[0] - vs[-1])
        for i in range(k):
            w = weights[:, i].to(x).view(b, *[1] * (x.ndim - 1))
            out = out + scale * w * (vs[1 + i] - vs[-1])
        return out

    return fn
