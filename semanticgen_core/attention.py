"""Attention: the one place that picks a kernel, plus shifted-window attention for long video (paper Fig. 5).

Tensors are `[B, L, N, E]` (batch, tokens, heads, head dim). Windowed attention never builds a mask: the token
sequence is laid out so that every window is a contiguous run, and runs of equal length are reshaped into
4-D windows `[B * nW, N, w, E]` for one kernel call. Cost is linear in the number of windows.

Long-video layout: the latent frames are cut into chunks of `T_w / 2` frames; each chunk is followed by the
semantic frames whose time span it covers (latent and semantic tokens of one time span interleaved). Even layers
attend within pairs of chunks (0 1)(2 3)..., odd layers within the pairs shifted by half a window (0)(1 2)(3 4)...
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from functools import lru_cache

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------------------------------------------
# Kernels
# ----------------------------------------------------------------------------------------------------------------

try:  # optional: used on CUDA with half precision when installed, never required
    from flash_attn import flash_attn_func as _flash_attn_func
except ImportError:
    _flash_attn_func = None
try:  # optional: SageAttention (quantised QK^T), CUDA fp16/bf16 only
    from sageattention import sageattn as _sageattn
except ImportError:
    _sageattn = None

BACKENDS = ("auto", "sdpa", "flash", "sage")
_INSTALL = {"flash": ("flash-attn", _flash_attn_func), "sage": ("sageattention", _sageattn)}
_backend: contextvars.ContextVar[str] = contextvars.ContextVar("semanticgen_attention_backend", default="auto")


def check_backend(name: str, device: str | torch.device | None = None) -> str:
    """Validate a backend name before any work: known, its package installed, and (flash / sage) a CUDA device."""
    if name not in BACKENDS:
        raise ValueError(f"unknown attention backend {name!r}; one of {BACKENDS}")
    if name in _INSTALL:
        package, fn = _INSTALL[name]
        if fn is None:
            raise ValueError(f"attention backend {name!r} needs the {package} package: pip install {package}")
        if device is not None and torch.device(device).type != "cuda":
            raise ValueError(f"attention backend {name!r} runs on CUDA only, but the device is {device}; use sdpa")
    return name


@contextlib.contextmanager
def attention_backend(name: str | None):
    """Run the enclosed model calls with one attention backend ('auto' | 'sdpa' | 'flash' | 'sage'; None: keep).

    The only switch between kernels: models never name a backend, `attention()` reads this context. Inside
    torch.compile the choice is a guard, so a change recompiles instead of silently keeping the old kernel.
    """
    if name is None:
        yield
        return
    token = _backend.set(check_backend(name))
    try:
        yield
    finally:
        _backend.reset(token)


def current_backend() -> str:
    """The backend chosen by the innermost `attention_backend` context ('auto' outside any)."""
    return _backend.get()


def _pick(q: torch.Tensor, bias: torch.Tensor | None, backend: str | None) -> str:
    """The kernel for one call. flash and sage take no logit bias: such calls (compacted text padding) use SDPA."""
    backend = backend or _backend.get()
    half_cuda = q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)
    if backend == "auto":
        return "flash" if bias is None and _flash_attn_func is not None and half_cuda else "sdpa"
    if backend in _INSTALL:
        if _INSTALL[backend][1] is None:
            check_backend(backend)  # raises: not installed
        if not half_cuda:
            raise RuntimeError(
                f"attention backend {backend!r} needs CUDA fp16/bf16 tensors, got {q.device} {q.dtype}; use sdpa"
            )
        return "sdpa" if bias is not None else backend
    return check_backend(backend)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str | None = None, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """Full softmax attention. q: [B, Lq, N, E]; k, v: [B, Lk, N, E] -> [B, Lq, N, E].

    backend: None (the `attention_backend` context; 'auto' there means flash-attn for fp16/bf16 CUDA tensors when
    installed, else PyTorch SDPA), 'sdpa', 'flash' or 'sage'. bias: additive logit bias broadcastable to
    [B, N, Lq, Lk] (SDPA only; flash and sage fall back to SDPA for biased calls).
    """
    backend = _pick(q, bias, backend)
    if backend == "flash":
        return _flash_attn_func(q, k, v)
    if backend == "sage":
        return _sageattn(q, k, v, tensor_layout="NHD", is_causal=False)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=bias)
    return out.transpose(1, 2)


def compact_padding(ctx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Collapse the trailing zero rows of a zero-padded context into one, exactly.

    Wan pads every text context to 512 tokens with zeros; the padded rows all embed to the same key and value, and
    n identical keys weigh as much as one key with logit + log(n). So cross-attention over [tokens, 1 pad row] with
    that log-count bias equals attention over the full padded context, at a fraction of the cost.
    ctx: [B, S, D] -> (ctx [B, S', D], bias [B, 1, 1, S'] or None when there is nothing to collapse).
    """
    b, s, _ = ctx.shape
    nonzero = ctx.abs().amax(dim=-1) > 0  # [B, S]
    idx = torch.arange(1, s + 1, device=ctx.device)
    lengths = (nonzero * idx).amax(dim=1)  # true length per row: last non-zero row + 1
    keep = min(s, int(lengths.max()) + 1)
    if keep >= s:
        return ctx, None
    n_pad = (s - lengths).float()  # padded rows per sample, all identical
    slots = (keep - lengths).float()  # pad rows kept per sample (>= 1)
    pos = torch.arange(keep, device=ctx.device)[None]
    bias = torch.where(pos >= lengths[:, None], torch.log(n_pad / slots)[:, None], torch.zeros((), device=ctx.device))
    return ctx[:, :keep], bias[:, None, None].to(ctx.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Windows: pure functions
# ----------------------------------------------------------------------------------------------------------------


def window(x: torch.Tensor, start: int, length: int, count: int) -> torch.Tensor:
    """`count` consecutive windows of `length` tokens from `start`: [B, L, ...] -> [B * count, length, ...]."""
    b = x.shape[0]
    return x[:, start : start + count * length].reshape(b * count, length, *x.shape[2:])


def unwindow(xw: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of `window`: [B * count, length, ...] -> [B, count * length, ...]."""
    return xw.reshape(batch, -1, *xw.shape[2:])


@lru_cache(maxsize=256)
def window_spans(chunk_lens: tuple[int, ...], shifted: bool) -> tuple[tuple[int, int], ...]:
    """(start, length) of each window over chunks of the given token lengths.

    Unshifted windows pair chunks (0 1)(2 3)...; shifted ones start half a window later: (0)(1 2)(3 4)...
    One chunk means one window (the whole sequence).
    """
    offsets = [0]
    for n in chunk_lens:
        offsets.append(offsets[-1] + n)
    if len(chunk_lens) == 1:
        return ((0, offsets[-1]),)
    first = 1 if shifted else 0
    bounds = [0] + list(range(first or 2, len(chunk_lens), 2)) + [len(chunk_lens)]
    bounds = sorted(set(bounds))
    return tuple((offsets[a], offsets[b] - offsets[a]) for a, b in zip(bounds[:-1], bounds[1:]))


def windowed_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, spans: tuple[tuple[int, int], ...], backend: str | None = None
) -> torch.Tensor:
    """Attention restricted to contiguous windows. q, k, v: [B, L, N, E]; spans tile [0, L) -> [B, L, N, E]."""
    if len(spans) == 1:
        return attention(q, k, v, backend)
    b = q.shape[0]
    out = torch.empty_like(q)
    groups: dict[int, list[int]] = {}
    for start, length in spans:
        groups.setdefault(length, []).append(start)
    for length, starts in groups.items():
        n = len(starts)
        if starts[-1] - starts[0] == (n - 1) * length:  # consecutive: a reshape, no gather
            s0 = starts[0]
            ow = attention(*(window(t, s0, length, n) for t in (q, k, v)), backend)
            out[:, s0 : s0 + n * length] = unwindow(ow, b)
        else:  # a few scattered windows of one length (the ends of a shifted layer): gather them
            qw, kw, vw = (torch.cat([t[:, s : s + length] for s in starts]) for t in (q, k, v))  # [n*B, w, N, E]
            ow = attention(qw, kw, vw, backend)
            for i, s in enumerate(starts):
                out[:, s : s + length] = ow[i * b : (i + 1) * b]
    return out


# ----------------------------------------------------------------------------------------------------------------
# Long-video token layout
# ----------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def interleaved_layout(
    lat_grid: tuple[int, int, int], sem_grid: tuple[int, int, int] | None, window_frames: int | None
) -> tuple[torch.Tensor | None, torch.Tensor | None, tuple[int, ...]]:
    """Token order for (shifted-)window attention over [latent tokens, semantic tokens] (both raster order).

    lat_grid: (T, H, W) latent token grid; sem_grid: (T_s, H_s, W_s) or None; window_frames: T_w latent frames
    per window, or None for full attention. Returns (perm, inverse, chunk_lens): `tokens[:, perm]` is the
    interleaved sequence, `seq[:, inverse]` puts it back, and chunk_lens are the token counts of the half-window
    chunks. perm is None when one window covers the whole video (full attention, no reordering).
    """
    t, h, w = lat_grid
    n_lat = t * h * w
    ts, hs, ws = sem_grid or (0, 0, 0)
    n_sem = ts * hs * ws
    if window_frames is None or window_frames >= t:
        return None, None, (n_lat + n_sem,)
    if window_frames < 2 or window_frames % 2:
        raise ValueError(
            f"window must be an even number >= 2 of latent frames (it shifts by half), got {window_frames}"
        )
    c = window_frames // 2
    n_chunks = math.ceil(t / c)
    # a semantic frame belongs to the chunk holding the centre of the time span it describes
    sem_chunk = [min(n_chunks - 1, int((j + 0.5) * t / ts) // c) for j in range(ts)]
    order, chunk_lens = [], []
    for k in range(n_chunks):
        f0, f1 = k * c, min(t, (k + 1) * c)
        order.append(torch.arange(f0 * h * w, f1 * h * w))
        frames = [j for j in range(ts) if sem_chunk[j] == k]
        if frames:
            order.append(n_lat + torch.arange(frames[0] * hs * ws, (frames[-1] + 1) * hs * ws))
        chunk_lens.append((f1 - f0) * h * w + len(frames) * hs * ws)
    perm = torch.cat(order)
    return perm, torch.argsort(perm), tuple(chunk_lens)
