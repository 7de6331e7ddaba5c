"""SemanticGenDiT: the Wan2.1 diffusion transformer with in-context semantic tokens (paper Sec. 3.2, Fig. 3).

Wan2.1 block: LayerNorm -> 6-way adaLN modulation from the timestep -> self-attention (RMS q/k norm, 3-D RoPE)
-> text cross-attention -> FFN, and a modulated output head. Parameter names follow the original Wan2.1 release,
so its checkpoints load as they are (diffusers' layout is converted in `checkpoint.py`).

In-context conditioning: optional semantic tokens `sem [B, C_sem, T_s, H_s, W_s]` get their own linear projection,
are appended to the latent tokens (`[z_t, z_sem]` along the token axis), carry RoPE positions on the latent
timeline and grid (a semantic token sits at the time and place it describes), attend jointly with the latent
tokens, and are dropped at the output. With `in_channels = k`, `patch_size = (1, 1, 1)` and `sem_channels = 0`
the same class is the semantic generator of stage A.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange
from torch.utils.checkpoint import checkpoint

from .attention import attention, compact_padding, interleaved_layout, window_spans, windowed_attention
from .config import DiTConfig

# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [B, dim] (cos first, as Wan) of timesteps t [B] on the 0..1000 scale."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rope_axes(head_dim: int) -> tuple[int, int, int]:
    """Head-dim split of 3-D RoPE between (t, h, w): Wan gives h and w 2 * (E // 6) each, t the rest."""
    hw = 2 * (head_dim // 6)
    return head_dim - 2 * hw, hw, hw


def grid_positions(grid: tuple[int, int, int], span: tuple[int, int, int] | None = None) -> torch.Tensor:
    """Raster-order (t, h, w) positions [L, 3] of a token grid, in float64.

    With `span` (the latent token grid the tokens describe), cell i of n covers [i, i+1) * span / n and sits at its
    centre: (i + 0.5) * span / n - 0.5. Without it, positions are the integer indices (latent tokens).
    """
    axes = []
    for n, s in zip(grid, span or grid):
        i = torch.arange(n, dtype=torch.float64)
        axes.append((i + 0.5) * s / n - 0.5 if span is not None else i)
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)


@lru_cache(maxsize=64)
def rope_table(
    lat_grid: tuple[int, int, int], sem_grid: tuple[int, int, int] | None, head_dim: int, theta: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin [L, 1, E/2] (float32) for latent tokens followed by semantic tokens, raster order each."""
    pos = grid_positions(lat_grid)
    if sem_grid is not None:
        pos = torch.cat([pos, grid_positions(sem_grid, span=lat_grid)])
    angles = []
    for axis, d in enumerate(rope_axes(head_dim)):
        freqs = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)  # [d/2]
        angles.append(pos[:, axis, None] * freqs[None])
    angles = torch.cat(angles, dim=1)  # [L, E/2]
    return angles.cos().float()[:, None], angles.sin().float()[:, None]


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate adjacent channel pairs of x [B, L, N, E] by angles with cos, sin [L, 1, E/2]."""
    x0, x1 = x.float().unflatten(-1, (-1, 2)).unbind(-1)
    return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2).type_as(x)


def token_segments(
    segments: torch.Tensor, grid: tuple[int, int, int], sem_grid: tuple[int, int, int] | None
) -> torch.Tensor:
    """Text segment of every token [B, L (+ L_sem)] (raster order) from the segment of each latent token frame
    segments [B, T]. A semantic frame takes the segment of the latent frame at the centre of the span it describes,
    the frame `attention.interleaved_layout` puts it next to."""
    t, h, w = grid
    out = segments.repeat_interleave(h * w, dim=1)
    if sem_grid is None:
        return out
    ts, hs, ws = sem_grid
    frame = torch.tensor([min(t - 1, int((j + 0.5) * t / ts)) for j in range(ts)], device=segments.device)
    return torch.cat([out, segments[:, frame].repeat_interleave(hs * ws, dim=1)], dim=1)


def segment_groups(tok_seg: torch.Tensor) -> list[tuple]:
    """Cross-attention calls for per-token segments tok_seg [B, L]: [(rows, g, where), ...].

    Rows with the same schedule share calls; `where` indexes q [B, L, ...] by (rows, tokens): a slice when a
    segment's tokens are one contiguous run (tokens are laid out by time), else an index tensor. Cost stays linear
    in L: each token is in exactly one call.
    """
    patterns, inverse = torch.unique(tok_seg, dim=0, return_inverse=True)
    groups = []
    for p, pattern in enumerate(patterns):
        rows = slice(None) if len(patterns) == 1 else (inverse == p).nonzero().squeeze(1)
        for g in pattern.unique().tolist():
            idx = (pattern == g).nonzero().squeeze(1)
            if int(idx[-1] - idx[0]) + 1 == len(idx):
                idx = slice(int(idx[0]), int(idx[-1]) + 1)
            where = (rows[:, None], idx) if torch.is_tensor(rows) and torch.is_tensor(idx) else (rows, idx)
            groups.append((rows, g, where))
    return groups


def _f32(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.float()


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the weights' dtype (Wan keeps norms in full precision)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), self.normalized_shape, _f32(self.weight), _f32(self.bias), self.eps).type_as(x)


class FP32RMSNorm(nn.RMSNorm):
    """RMSNorm computed in float32 whatever the weights' dtype (Wan's WanRMSNorm normalises x.float())."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x.float(), self.normalized_shape, _f32(self.weight), self.eps).type_as(x)


def fp32_mlp(mlp: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Run a Linear/activation stack in float32 whatever its weights' dtype and outside autocast (Wan computes the
    time embedding and its projection in float32). x: [B, C_in] -> [B, C_out] float32."""
    with torch.autocast(x.device.type, enabled=False):
        x = x.float()
        for layer in mlp:
            x = F.linear(x, layer.weight.float(), _f32(layer.bias)) if isinstance(layer, nn.Linear) else layer(x)
    return x


def modulation_table(rows: int, dim: int) -> torch.Tensor:
    """Wan's init of a modulation table [1, rows, dim]: randn / sqrt(dim). On the meta device (lean loading) there
    is nothing to draw, and a random op there would import torch._dynamo (seconds), so it stays empty."""
    table = torch.empty(1, rows, dim)
    return table if table.is_meta else torch.randn(1, rows, dim) / dim**0.5


def modulate(norm: nn.Module, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """norm(x) * (1 + scale) + shift in float32, cast back to x's dtype. x: [B, L, D]; shift, scale: [B, 1, D]."""
    return torch.addcmul(shift, norm(x.float()), 1 + scale).type_as(x)


# ----------------------------------------------------------------------------------------------------------------
# Blocks
# ----------------------------------------------------------------------------------------------------------------


class SelfAttention(nn.Module):
    """Multi-head self-attention with RMS q/k norm across heads, 3-D RoPE and optional windows."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = FP32RMSNorm(dim, eps=eps)
        self.norm_k = FP32RMSNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], spans) -> torch.Tensor:
        """x: [B, L, D]; rope: cos, sin [L, 1, E/2]; spans: windows (start, length) -> [B, L, D]."""
        q = apply_rope(self.norm_q(self.q(x)).unflatten(2, (self.num_heads, -1)), *rope)  # [B, L, N, E]
        k = apply_rope(self.norm_k(self.k(x)).unflatten(2, (self.num_heads, -1)), *rope)
        v = self.v(x).unflatten(2, (self.num_heads, -1))
        return self.o(windowed_attention(q, k, v, spans).flatten(2))


class CrossAttention(nn.Module):
    """Text cross-attention with RMS q/k norm (no RoPE); with a prompt schedule, each token reads its segment's text."""

    def __init__(self, dim: int, num_heads: int, eps: float):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q = FP32RMSNorm(dim, eps=eps)
        self.norm_k = FP32RMSNorm(dim, eps=eps)

    def forward(self, x: torch.Tensor, ctx: torch.Tensor, ctx_bias: torch.Tensor | None = None, groups=None):
        """x: [B, L, D]; ctx: [B, S, D] (already embedded), or [B, G, S, D] with `groups` (see `segment_groups`);
        ctx_bias: [B, 1, 1, S] (or [B, G, 1, 1, S]) logit bias -> [B, L, D]."""
        q = self.norm_q(self.q(x)).unflatten(2, (self.num_heads, -1))  # [B, L, N, E]
        k = self.norm_k(self.k(ctx)).unflatten(-1, (self.num_heads, -1))  # [B, (G,) S, N, E]
        v = self.v(ctx).unflatten(-1, (self.num_heads, -1))
        if groups is None:
            bias = ctx_bias.to(q.dtype) if ctx_bias is not None else None  # SDPA wants the query's dtype
            return self.o(attention(q, k, v, bias=bias).flatten(2))
        out = torch.empty_like(q)
        for rows, g, where in groups:  # one call per (batch rows sharing a schedule, segment): no mask
            bias = ctx_bias[rows, g].to(q.dtype) if ctx_bias is not None else None
            out[where] = attention(q[where], k[rows, g], v[rows, g], bias=bias)
        return self.o(out.flatten(2))


class DiTBlock(nn.Module):
    """Wan2.1 transformer block: modulated self-attention, cross-attention, modulated FFN."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        d = cfg.dim
        self.norm1 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.self_attn = SelfAttention(d, cfg.num_heads, cfg.eps)
        # Wan names the (affine) pre-cross-attention norm "norm3" and the pre-FFN norm "norm2"
        self.norm3 = FP32LayerNorm(d, cfg.eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.cross_attn = CrossAttention(d, cfg.num_heads, cfg.eps)
        self.norm2 = FP32LayerNorm(d, cfg.eps, elementwise_affine=False)
        self.ffn = nn.Sequential(nn.Linear(d, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, d))
        self.modulation = nn.Parameter(modulation_table(6, d))

    def forward(self, x, e, ctx, ctx_bias, rope, spans, text_groups=None):
        """x: [B, L, D]; e: [B, 6, D] float32 timestep projection; ctx: [B, (G,) S, D], ctx_bias, text_groups: see
        CrossAttention; rope, spans: see SelfAttention. Modulation and residual sums in float32, as Wan."""
        shift1, scale1, gate1, shift2, scale2, gate2 = (self.modulation.float() + e).chunk(6, dim=1)  # [B, 1, D]
        y = self.self_attn(modulate(self.norm1, x, shift1, scale1), rope, spans)
        x = torch.addcmul(x.float(), y.float(), gate1).type_as(x)
        x = x + self.cross_attn(self.norm3(x), ctx, ctx_bias, text_groups)
        y = self.ffn(modulate(self.norm2, x, shift2, scale2))
        return torch.addcmul(x.float(), y.float(), gate2).type_as(x)


class Head(nn.Module):
    """Modulated LayerNorm + linear projection to patch velocities."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.norm = FP32LayerNorm(cfg.dim, cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.out_channels * math.prod(cfg.patch_size))
        self.modulation = nn.Parameter(modulation_table(2, cfg.dim))

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """x: [B, L, D]; e: [B, D] float32 time embedding -> [B, L, C * pt * ph * pw]."""
        shift, scale = (self.modulation.float() + e[:, None]).chunk(2, dim=1)
        return self.head(modulate(self.norm, x, shift, scale))


# ----------------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------------


class SemanticGenDiT(nn.Module):
    """Wan2.1 DiT generating latents (or semantic plans), optionally conditioned in context on semantic tokens."""

    # parameters stored in float32 when the model is cast or loaded in half precision (precision.cast_module),
    # as diffusers' _keep_in_fp32_modules: small, and computed in float32 anyway
    keep_fp32 = ("time_embedding", "time_projection", "modulation", "norm3")

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.config = cfg
        d = cfg.dim
        self.patch_embedding = nn.Conv3d(cfg.in_channels, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(approximate="tanh"), nn.Linear(d, d))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.num_layers))
        self.head = Head(cfg)
        self.sem_embedding = nn.Linear(cfg.sem_channels, d) if cfg.sem_channels else None
        self.gradient_checkpointing = False
        self.compact_text = True  # collapse zero padding of the text context (exact; see attention.compact_padding)
        self.reset_new_layers()

    def reset_new_layers(self):
        """Zero-init the layers Wan lacks: semantic content has no effect on the output until training moves them."""
        if self.sem_embedding is not None:
            nn.init.zeros_(self.sem_embedding.weight)
            nn.init.zeros_(self.sem_embedding.bias)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: that of the token stream (the patch embedding's weights)."""
        return self.patch_embedding.weight.dtype

    def _check_inputs(self, x, t, context, sem, segments):
        cfg = self.config
        if x.ndim != 5 or x.shape[1] != cfg.in_channels:
            raise ValueError(f"x must be [B, {cfg.in_channels}, T, H, W], got {tuple(x.shape)}")
        bad = [(n, s, p) for n, s, p in zip("THW", x.shape[2:], cfg.patch_size) if s % p]
        if bad:
            raise ValueError(
                f"x {tuple(x.shape)}: {', '.join(f'{n}={s} is not a multiple of patch {p}' for n, s, p in bad)}"
            )
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be [B]={x.shape[0]} timesteps in [0, 1], got shape {tuple(t.shape)}")
        if context.ndim not in (3, 4) or context.shape[0] != x.shape[0] or context.shape[-1] != cfg.text_dim:
            raise ValueError(
                f"context must be [B={x.shape[0]}, S, {cfg.text_dim}] (or [B, G, S, {cfg.text_dim}] for G prompt "
                f"segments), got {tuple(context.shape)}"
            )
        if context.ndim == 4 and context.shape[1] > 1:
            nt, g = x.shape[2], context.shape[1]
            if segments is None or segments.shape not in ((nt,), (x.shape[0], nt)):
                got = None if segments is None else tuple(segments.shape)
                raise ValueError(f"a context of {g} segments needs segments [T={nt}] or [B, T]: the segment of each "
                                 f"latent frame; got {got}")  # fmt: skip
            if int(segments.min()) < 0 or int(segments.max()) >= g:
                raise ValueError(f"segments must index the {g} context segments, got values in "
                                 f"[{int(segments.min())}, {int(segments.max())}]")  # fmt: skip
        if sem is not None:
            if self.sem_embedding is None:
                raise ValueError("semantic tokens given, but this DiT has no semantic input (config sem_channels=0)")
            if sem.ndim != 5 or sem.shape[0] != x.shape[0] or sem.shape[1] != cfg.sem_channels:
                raise ValueError(
                    f"sem must be [B={x.shape[0]}, {cfg.sem_channels}, T_s, H_s, W_s] "
                    f"(the plan dim this model was trained on), got {tuple(sem.shape)}"
                )

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        context: torch.Tensor,
        sem: torch.Tensor | None = None,
        window: int | None = None,
        segments: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict the flow velocity.

        x: [B, C, T, H, W] noisy sample; t: [B] times in [0, 1] (1 = noise); context: [B, S, text_dim] text features,
        or [B, G, S, text_dim] for a prompt schedule of G segments; sem: [B, C_sem, T_s, H_s, W_s] in-context
        semantic plan or None; window: attention window in latent frames (shifted by half at odd layers) or None
        for full attention; segments: int [T] or [B, T], the context segment of each frame of x (G > 1 only; a
        semantic frame takes the segment of the latent frame at the centre of its span). Returns v: [B, C, T, H, W] in
        x's dtype (inputs of any floating dtype are cast to the model's; samplers keep x in float32).
        """
        if context.ndim == 4 and context.shape[1] == 1:
            context = context[:, 0]  # one segment: exactly the single-prompt path
        self._check_inputs(x, t, context, sem, segments)
        b, _, nt, nh, nw = x.shape
        pt, ph, pw = self.config.patch_size
        grid = (nt // pt, nh // ph, nw // pw)
        sem_grid = tuple(sem.shape[2:]) if sem is not None else None

        # 1. tokens: a conv with stride == kernel is a matmul over flattened patches
        patches = rearrange(x, "b c (t pt) (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw)
        w = self.patch_embedding.weight
        tokens = F.linear(patches.to(w.dtype), w.flatten(1), self.patch_embedding.bias)  # [B, L, D]
        if sem is not None:
            sem_tokens = self.sem_embedding(rearrange(sem, "b c t h w -> b (t h w) c").to(tokens.dtype))
            tokens = torch.cat([tokens, sem_tokens], dim=1)  # [B, L + L_sem, D]

        # 2. conditioning: timestep (Wan's 0..1000 scale, float32 throughout) and text (zero padding collapsed)
        e = fp32_mlp(self.time_embedding, timestep_embedding(t * 1000, self.config.freq_dim))  # [B, D]
        e6 = fp32_mlp(self.time_projection, e).unflatten(1, (6, -1))  # [B, 6, D]
        per_segment = context.ndim == 4
        flat = context.flatten(0, 1) if per_segment else context  # [B (* G), S, text_dim]
        flat, ctx_bias = compact_padding(flat) if self.compact_text else (flat, None)
        ctx = self.text_embedding(flat.to(tokens.dtype))  # [B (* G), S', D]
        if per_segment:
            ctx = ctx.unflatten(0, context.shape[:2])  # [B, G, S', D]
            ctx_bias = ctx_bias.unflatten(0, context.shape[:2]) if ctx_bias is not None else None

        # 3. positions and windows (latent and semantic tokens of one time span interleaved)
        cos, sin = (r.to(x.device) for r in rope_table(grid, sem_grid, self.config.head_dim, self.config.rope_theta))
        perm, inverse, chunk_lens = interleaved_layout(grid, sem_grid, window)
        if perm is not None:
            perm, inverse = perm.to(x.device), inverse.to(x.device)
            tokens, cos, sin = tokens.index_select(1, perm), cos.index_select(0, perm), sin.index_select(0, perm)
        groups = None
        if per_segment:  # each token reads the text of its own time span
            seg = segments.to(x.device, torch.long).expand(b, -1)[:, ::pt]  # [B, T / pt]
            tok_seg = token_segments(seg, grid, sem_grid)
            groups = segment_groups(tok_seg.index_select(1, perm) if perm is not None else tok_seg)

        # 4. transformer
        for i, block in enumerate(self.blocks):
            spans = window_spans(chunk_lens, shifted=i % 2 == 1)
            if self.gradient_checkpointing and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, e6, ctx, ctx_bias, (cos, sin), spans, groups, use_reentrant=False)
            else:
                tokens = block(tokens, e6, ctx, ctx_bias, (cos, sin), spans, groups)

        # 5. drop the semantic tokens, predict patch velocities, unpatchify
        n_lat = math.prod(grid)
        tokens = tokens.index_select(1, inverse[:n_lat]) if perm is not None else tokens[:, :n_lat]
        out = self.head(tokens, e).to(x.dtype)  # [B, L, pt * ph * pw * C]
        return rearrange(
            out,
            "b (t h w) (pt ph pw c) -> b c (t pt) (h ph) (w pw)",
            t=grid[0],
            h=grid[1],
            w=grid[2],
            pt=pt,
            ph=ph,
            pw=pw,
        )

    # ------------------------------------------------------------------------------------------------------------
    # Loading
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    def from_wan_pretrained(
        cls, path: str | Path, sem_channels: int = 0, dtype=torch.float32, device="cpu", **overrides
    ) -> SemanticGenDiT:
        """Load Wan2.1 T2V weights from a diffusers folder (config.json + safetensors) or an original single file
        (also ComfyUI's, including its fp8 files), built on the meta device and filled tensor by tensor.

        dtype: compute dtype ('auto': the file's; fp8 files: bfloat16); the weights listed in `keep_fp32` stay
        float32 and fp8 Linear weights stay fp8 (upcast per layer). sem_channels > 0 adds the zero-initialised
        semantic projection; other overrides (e.g. in_channels=8, patch_size=(1, 1, 1) for a semantic generator)
        re-initialise the layers whose shapes change (listed in `model.reinitialised`). Every other key must match
        exactly: a missing or unexpected key is an error that names it.
        """
        from .checkpoint import load_into, wan_weight_index
        from .precision import resolve_dtype

        cfg, index = wan_weight_index(path)
        cfg = DiTConfig.from_dict({**cfg.to_dict(), "sem_channels": sem_channels, **overrides})
        with torch.device("meta"):
            model = cls(cfg)
        own = model.state_dict()
        reinit = {k for k, (_, _, meta) in index.items() if k in own and own[k].shape != meta.shape}
        new = {k for k in own if k.startswith("sem_embedding.")}
        file_dtype = max(index.values(), key=lambda v: v[2].numel())[2].dtype  # of the largest tensor
        model = load_into(model, index, resolve_dtype(dtype, file_dtype), device, path, reinit | new)
        model.reset_new_layers()
        model.reinitialised = sorted(reinit)  # e.g. patch_embedding / head for a new channel count
        return model
