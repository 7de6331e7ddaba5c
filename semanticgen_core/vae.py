"""The Wan2.1 video VAE: encode/decode, latent normalisation, streamed decoding, offline loading.

`WanVAE` wraps diffusers' `AutoencoderKLWan`. Latent normalisation lives here and nowhere else:
- generators work on normalised latents `z_norm = (z_raw - latents_mean) / latents_std` (per channel),
- raw latents (what the autoencoder produces, and what ComfyUI's LATENT holds) are `denormalize(z_norm)`.

Shapes: video float [B, 3, F, H, W] in [-1, 1] with F = 4k + 1 and H, W multiples of 16 (VAE factor 8 x DiT
patch 2); latents [B, z_dim, (F - 1) / 4 + 1, H / 8, W / 8]. Frame counts are never adjusted silently:
`check_video_shape` raises, `fit_frames` pads or trims on request.

`load_vae` reads, without any network access: a diffusers folder (or a pipeline folder with `vae/`), a single
file in the original Wan2.1 layout (also ComfyUI's `wan_2.1_vae.safetensors`), or our own checkpoint (role "vae").
"""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, unpatchify
from safetensors import safe_open
from torch import nn

from .checkpoint import CheckpointError, load_into, read_header, save_checkpoint, tensor_index
from .config import VideoSpec
from .precision import resolve_dtype

_STRIP_PREFIXES = ("first_stage_model.", "vae.", "model.")  # wrappers some single files put around the VAE keys


def wan21_vae_config() -> dict:
    """The Wan2.1 VAE config (diffusers names); latents_mean/std are diffusers' AutoencoderKLWan defaults."""
    defaults = inspect.signature(AutoencoderKLWan.__init__).parameters
    structure = dict(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[], dropout=0.0)
    stats = {k: list(defaults[k].default) for k in ("latents_mean", "latents_std")}
    return {**structure, "temperal_downsample": [False, True, True], **stats}


def latent_space_stats(video: VideoSpec, source: str = "model") -> tuple[torch.Tensor, torch.Tensor]:
    """(latents_mean, latents_std) [C] of the VAE space a model was trained in, as its VideoSpec records them.

    Files written before the statistics were recorded fall back to Wan2.1's (the space of every Wan2.1-based model),
    with a warning; a model of another channel count without them is an error, not a guess.
    """
    if video.latents_mean is not None and video.latents_std is not None:
        mean, std = torch.tensor(video.latents_mean), torch.tensor(video.latents_std)
        if mean.shape != (video.z_dim,) or std.shape != (video.z_dim,):
            raise ValueError(f"{source}: latent statistics of length {len(mean)}/{len(std)}, expected {video.z_dim}")
        return mean, std
    if video.z_dim != 16:
        raise ValueError(f"{source}: no latent statistics recorded for its {video.z_dim}-channel VAE space")
    warnings.warn(f"{source}: no latent statistics recorded; assuming the Wan2.1 VAE's", stacklevel=2)
    cfg = wan21_vae_config()
    return torch.tensor(cfg["latents_mean"]), torch.tensor(cfg["latents_std"])


# ----------------------------------------------------------------------------------------------------------------
# Frame and size rules
# ----------------------------------------------------------------------------------------------------------------


def _channel_stats(mean: torch.Tensor, std: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel statistics shaped [1, C, 1, 1, 1] (float32, on z's device)."""
    return tuple(t.to(z.device, torch.float32).reshape(1, -1, 1, 1, 1) for t in (mean, std))


def normalize_latents(z_raw: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Raw latents [B, C, T, H, W] -> generator space: (z - mean) / std per channel, in float32."""
    mean, std = _channel_stats(mean, std, z_raw)
    return (z_raw.float() - mean) / std


def denormalize_latents(z_norm: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Generator-space latents [B, C, T, H, W] -> raw latents: z * std + mean per channel, in float32."""
    mean, std = _channel_stats(mean, std, z_norm)
    return z_norm.float() * std + mean


def check_video_shape(num_frames: int, height: int, width: int, temporal_factor: int = 4, multiple: int = 16) -> None:
    """Raise a ValueError unless frames = tk + 1 and height, width are multiples of `multiple`."""
    t = temporal_factor
    if num_frames < 1 or (num_frames - 1) % t:
        below = (num_frames - 1) // t * t + 1
        above = below + t if below < num_frames else below
        hint = f"{below} or {above}" if below >= 1 else f"{above}"
        raise ValueError(
            f"got {num_frames} frames; the Wan VAE needs {t}k+1 frames, e.g. {hint} "
            f"(fit_frames(video, mode='pad' | 'trim') adjusts a clip explicitly)"
        )
    for name, v in (("height", height), ("width", width)):
        if v < multiple or v % multiple:
            down, up = v // multiple * multiple, (v // multiple + 1) * multiple
            hint = f"{down} or {up}" if down >= multiple else f"{up}"
            raise ValueError(f"{name} {v} is not a multiple of {multiple} (VAE factor x DiT patch); e.g. {hint}")


def fit_frames(video, mode: str, temporal_factor: int = 4, dim: int = 2):
    """Make the frame count tk + 1: 'pad' repeats the last frame, 'trim' drops frames from the end.

    `dim` is the frame axis: 2 for float video [B, 3, F, H, W], 0 for frames [T, H, W, 3]. Torch or numpy.
    """
    if mode not in ("pad", "trim"):
        raise ValueError(f"fit_frames: mode must be 'pad' or 'trim', got {mode!r}")
    n = video.shape[dim]
    if n < 1:
        raise ValueError("fit_frames: the video has no frames")
    extra = (n - 1) % temporal_factor
    if extra == 0:
        return video
    if mode == "trim":
        keep = n - extra
        return video.narrow(dim, 0, keep) if isinstance(video, torch.Tensor) else np.take(video, range(keep), dim)
    pad = temporal_factor - extra
    if isinstance(video, torch.Tensor):
        last = video.narrow(dim, n - 1, 1)
        return torch.cat([video, last.expand(*[pad if i == dim % video.ndim else -1 for i in range(video.ndim)])], dim)
    last = np.take(video, [n - 1], axis=dim)
    return np.concatenate([video, np.repeat(last, pad, axis=dim)], axis=dim)


def video_to_frames(video: torch.Tensor) -> np.ndarray:
    """Float video [B, 3, F, H, W] or [3, F, H, W] in [-1, 1] -> uint8 frames [B, F, H, W, 3] or [F, H, W, 3]."""
    if video.ndim not in (4, 5) or video.shape[-4] != 3:
        raise ValueError(f"expected video [B, 3, F, H, W] or [3, F, H, W], got {tuple(video.shape)}")
    x = ((video.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    x = x.movedim(-4, -1)  # channels last
    return np.ascontiguousarray(x.cpu().numpy())


def frames_to_video(frames) -> torch.Tensor:
    """uint8 frames [T, H, W, 3] (numpy or torch) -> float video [1, 3, T, H, W] in [-1, 1]."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != torch.uint8:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {x.dtype} {tuple(x.shape)}")
    return (x.permute(3, 0, 1, 2).float() / 127.5 - 1).unsqueeze(0)


# ----------------------------------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------------------------------


class WanVAE(nn.Module):
    """Frozen Wan2.1 VAE on normalised latents; `model` is the wrapped diffusers AutoencoderKLWan."""

    def __init__(self, model: AutoencoderKLWan):
        super().__init__()
        self.model = model
        cfg = model.config
        mean, std = cfg.get("latents_mean"), cfg.get("latents_std")
        if mean is None or std is None or len(mean) != cfg.z_dim or len(std) != cfg.z_dim:
            raise ValueError(
                f"the VAE config needs latents_mean and latents_std with z_dim={cfg.z_dim} values each; got "
                f"{None if mean is None else len(mean)} and {None if std is None else len(std)}"
            )
        shape = (1, cfg.z_dim, 1, 1, 1)
        self.register_buffer("latents_mean", torch.tensor(mean, dtype=torch.float32).view(shape), persistent=False)
        self.register_buffer("latents_std", torch.tensor(std, dtype=torch.float32).view(shape), persistent=False)

    @classmethod
    def from_config(cls, config: dict) -> WanVAE:
        """A randomly initialised VAE from an AutoencoderKLWan config dict (e.g. to train a tiny VAE)."""
        return cls(AutoencoderKLWan.from_config(dict(config)))

    # -------------------------------------------------------------------------------------------- properties

    @property
    def config(self) -> dict:
        """The AutoencoderKLWan config as a plain JSON-able dict (no private diffusers keys)."""
        return {k: v for k, v in dict(self.model.config).items() if not k.startswith("_")}

    @property
    def z_dim(self) -> int:
        """Latent channels."""
        return int(self.model.config.z_dim)

    @property
    def temporal_factor(self) -> int:
        """Frames per latent frame after the first (4 for Wan2.1)."""
        cfg = self.model.config
        return 2 ** sum(bool(d) for d in cfg.temperal_downsample[: len(cfg.dim_mult) - 1])

    @property
    def spatial_factor(self) -> int:
        """Pixels per latent cell side (8 for Wan2.1)."""
        cfg = self.model.config
        return 2 ** (len(cfg.dim_mult) - 1) * (cfg.patch_size or 1)

    @property
    def video_spec(self) -> VideoSpec:
        """A VideoSpec with this VAE's factors and channels (fps: the default 16)."""
        return VideoSpec(temporal_factor=self.temporal_factor, spatial_factor=self.spatial_factor, z_dim=self.z_dim)

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the weights."""
        return next(self.model.parameters()).dtype

    # --------------------------------------------------------------------------------------- normalisation

    def normalize(self, z_raw: torch.Tensor) -> torch.Tensor:
        """Raw latents (ComfyUI LATENT) -> normalised latents (generator space), computed in float32."""
        return normalize_latents(z_raw, self.latents_mean, self.latents_std)

    def denormalize(self, z_norm: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> raw latents, computed in float32."""
        return denormalize_latents(z_norm, self.latents_mean, self.latents_std)

    # --------------------------------------------------------------------------------------- encode / decode

    def check_video(self, video: torch.Tensor) -> None:
        """Raise a ValueError unless `video` is [B, 3, F, H, W] with valid frames and size."""
        if video.ndim != 5 or video.shape[1] != 3:
            raise ValueError(f"expected video [B, 3, F, H, W], got {tuple(video.shape)}")
        check_video_shape(*video.shape[2:], temporal_factor=self.temporal_factor, multiple=2 * self.spatial_factor)

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """Video [B, 3, F, H, W] in [-1, 1] -> normalised latents (posterior mode), float32."""
        self.check_video(video)
        posterior = self.model.encode(video.to(self.device, self.dtype)).latent_dist
        return self.normalize(posterior.mode())

    @torch.no_grad()
    def decode(self, z_norm: torch.Tensor) -> torch.Tensor:
        """Normalised latents [B, C, T, h, w] -> video [B, 3, 4(T-1)+1, 8h, 8w] in [-1, 1], float32."""
        self._check_latent(z_norm)
        z = self.denormalize(z_norm).to(self.device, self.dtype)
        return self.model.decode(z).sample.float()

    @torch.no_grad()
    def iter_decode(self, z_norm: torch.Tensor, chunk: int = 4) -> Iterator[torch.Tensor]:
        """Yield decoded blocks [B, 3, f, H, W] for `chunk` latent frames at a time; equals `decode` concatenated.

        This drives the loop of diffusers' `AutoencoderKLWan._decode` itself: the causal decoder is fed one latent
        frame per call with a feature cache (the last frames each causal conv saw) that is created once and kept
        across chunks, so memory stays bounded by the chunk, not the clip. The cache is a local list rather than
        the model's `_feat_map`, so a suspended generator and a concurrent `decode` do not share state. The
        internal signature used is `decoder(x, feat_cache=list, feat_idx=[0], first_chunk=bool)` (diffusers
        >= 0.33); `first_chunk=True` only for latent frame 0, as in `_decode`.
        """
        if chunk < 1:
            raise ValueError(f"iter_decode: chunk must be >= 1, got {chunk}")
        self._check_latent(z_norm)
        model, decoder = self.model, self.model.decoder
        cache = [None] * sum(isinstance(m, WanCausalConv3d) for m in decoder.modules())
        for start in range(0, z_norm.shape[2], chunk):
            z = self.denormalize(z_norm[:, :, start : start + chunk]).to(self.device, self.dtype)
            x = model.post_quant_conv(z)  # 1x1x1 conv: per frame, needs no cache
            outs = [
                decoder(x[:, :, i : i + 1], feat_cache=cache, feat_idx=[0], first_chunk=start + i == 0)
                for i in range(x.shape[2])
            ]
            out = torch.cat(outs, dim=2)
            if model.config.patch_size is not None:
                out = unpatchify(out, patch_size=model.config.patch_size)
            yield out.clamp(-1.0, 1.0).float()

    def iter_decode_uint8(self, z_norm: torch.Tensor, chunk: int = 4) -> Iterator[np.ndarray]:
        """Yield uint8 frame blocks [f, H, W, 3] of one latent [1, C, T, h, w] or [C, T, h, w] (streamed writing)."""
        z_norm = z_norm.unsqueeze(0) if z_norm.ndim == 4 else z_norm
        if z_norm.ndim != 5 or z_norm.shape[0] != 1:
            raise ValueError(f"expected one latent [1, C, T, h, w] or [C, T, h, w], got {tuple(z_norm.shape)}")
        for block in self.iter_decode(z_norm, chunk):
            yield video_to_frames(block[0])

    def decode_to_uint8(self, z_norm: torch.Tensor, chunk: int = 4) -> np.ndarray:
        """uint8 frames [F, H, W, 3] of a single latent [1, C, T, h, w] or [C, T, h, w], decoded chunk by chunk."""
        return np.concatenate(list(self.iter_decode_uint8(z_norm, chunk)), axis=0)

    def _check_latent(self, z: torch.Tensor) -> None:
        """Raise unless z is [B, z_dim, T, h, w]."""
        if z.ndim != 5 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected latents [B, {self.z_dim}, T, h, w], got {tuple(z.shape)}")

    # --------------------------------------------------------------------------------------- saving

    def save(self, path: str | Path, dtype: str | None = None) -> None:
        """Write our checkpoint format (role 'vae', config = the AutoencoderKLWan config)."""
        save_checkpoint(path, self.model.state_dict(), role="vae", config=self.config, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# Original Wan2.1 <-> diffusers key names
# ----------------------------------------------------------------------------------------------------------------

# Inside a residual block, original `residual` Sequential(RMS_norm, SiLU, Conv, RMS_norm, SiLU, Dropout, Conv).
_RESBLOCK = [("residual.0.", "norm1."), ("residual.2.", "conv1."), ("residual.3.", "norm2."), ("residual.6.", "conv2.")]
_RESBLOCK.append(("shortcut.", "conv_shortcut."))


def _prefix_pairs(config: dict) -> list[tuple[str, str]]:
    """(original prefix, diffusers prefix) for every module of a Wan2.1 VAE with this config."""
    if config.get("attn_scales") or config.get("is_residual") or config.get("patch_size"):
        raise CheckpointError("original-layout conversion supports the Wan2.1 VAE only (no attn_scales, Wan2.2)")
    levels, res = len(config["dim_mult"]), config["num_res_blocks"]
    pairs = [("conv1.", "quant_conv."), ("conv2.", "post_quant_conv.")]
    for side in ("encoder", "decoder"):
        pairs += [(f"{side}.conv1.", f"{side}.conv_in."), (f"{side}.head.0.", f"{side}.norm_out.")]
        pairs += [(f"{side}.head.2.", f"{side}.conv_out."), (f"{side}.middle.1.", f"{side}.mid_block.attentions.0.")]
        pairs += [
            (f"{side}.middle.0.", f"{side}.mid_block.resnets.0."),
            (f"{side}.middle.2.", f"{side}.mid_block.resnets.1."),
        ]
    # encoder: both layouts are one flat list (res blocks, then a downsample except after the last level)
    for k in range(levels * res + levels - 1):
        pairs.append((f"encoder.downsamples.{k}.", f"encoder.down_blocks.{k}."))
    # decoder: original flat list -> up_blocks[i].resnets[j] (res + 1 per level) and up_blocks[i].upsamplers.0
    k = 0
    for i in range(levels):
        for j in range(res + 1):
            pairs.append((f"decoder.upsamples.{k}.", f"decoder.up_blocks.{i}.resnets.{j}."))
            k += 1
        if i != levels - 1:
            pairs.append((f"decoder.upsamples.{k}.", f"decoder.up_blocks.{i}.upsamplers.0."))
            k += 1
    return sorted(pairs, key=lambda p: -len(p[0]))


def _rename(state: dict[str, torch.Tensor], pairs: list[tuple[str, str]], inner: list[tuple[str, str]]) -> dict:
    """Rename keys by the longest matching prefix pair, then the inner residual-block pair; others pass through."""
    out = {}
    for key, value in state.items():
        new = key
        for src, dst in pairs:
            if key.startswith(src):
                rest = key[len(src) :]
                for a, b in inner:
                    if rest.startswith(a):
                        rest = b + rest[len(a) :]
                        break
                new = dst + rest
                break
        out[new] = value
    return out


def original_to_diffusers(state: dict[str, torch.Tensor], config: dict | None = None) -> dict[str, torch.Tensor]:
    """Rename original Wan2.1 VAE keys (`encoder.conv1`, `decoder.upsamples.N`, `conv1`, `conv2`) to diffusers'."""
    pairs = _prefix_pairs(config or wan21_vae_config())
    return _rename(state, pairs, _RESBLOCK)


def diffusers_to_original(state: dict[str, torch.Tensor], config: dict | None = None) -> dict[str, torch.Tensor]:
    """Inverse of `original_to_diffusers` (export to the original / ComfyUI single-file layout)."""
    pairs = sorted(((d, o) for o, d in _prefix_pairs(config or wan21_vae_config())), key=lambda p: -len(p[0]))
    return _rename(state, pairs, [(b, a) for a, b in _RESBLOCK])


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def _build_strict(config: dict, index: dict, dtype: torch.dtype, device, source) -> AutoencoderKLWan:
    """An AutoencoderKLWan built on the meta device and filled tensor by tensor from `index` (checkpoint.tensor_index,
    diffusers names); missing/unexpected keys raise."""
    with torch.device("meta"):
        model = AutoencoderKLWan.from_config(config)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(index)), sorted(set(index) - expected)
    if missing or unexpected:
        more = " and more" if max(len(missing), len(unexpected)) > 20 else ""
        raise CheckpointError(
            f"{source}: VAE weights do not match the config: missing keys {missing[:20]}, unexpected keys "
            f"{unexpected[:20]}{more} (a different VAE size? pass config=...)"
        )
    try:
        load_into(model, index, dtype, device, source)
    except CheckpointError as err:  # size mismatches
        raise CheckpointError(f"{err} (a different VAE size? pass config=...)") from err
    return model.eval().requires_grad_(False)


def _folder_files(folder: Path) -> list[Path]:
    """Weight files of a diffusers model folder: the shard index, the plain file, or the only safetensors file."""
    index = folder / "diffusion_pytorch_model.safetensors.index.json"
    if index.is_file():
        return sorted({folder / f for f in json.loads(index.read_text())["weight_map"].values()})
    plain = folder / "diffusion_pytorch_model.safetensors"
    if plain.is_file():
        return [plain]
    found = sorted(folder.glob("*.safetensors"))
    if len(found) == 1:
        return found
    raise CheckpointError(f"{folder}: expected diffusion_pytorch_model.safetensors (found {[f.name for f in found]})")


def _single_file(path: Path, config: dict | None) -> tuple[dict, dict[str, torch.Tensor]]:
    """(config, diffusers-named state) of one safetensors file: our format, original Wan2.1, or diffusers keys."""
    state = tensor_index([path])  # headers only; raises CheckpointError for an unreadable file
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "semanticgen_format" in meta:
        header = read_header(path)
        if header["role"] != "vae":
            raise CheckpointError(f"{path}: holds a {header['role']}, but a vae was expected")
        return {**header["config"], **(config or {})}, state
    cfg = {**wan21_vae_config(), **(config or {})}
    for prefix in _STRIP_PREFIXES:
        if any(k.startswith(prefix + "decoder.") for k in state):
            state = {k[len(prefix) :] if k.startswith(prefix) else k: v for k, v in state.items()}
            break
    if "decoder.conv_in.weight" not in state:  # original Wan2.1 / ComfyUI names
        state = original_to_diffusers(state, cfg)
    return cfg, state


def load_vae(path: str | Path, dtype=torch.float32, device="cpu", config: dict | None = None) -> WanVAE:
    """Load a Wan VAE from local files only; `config` overrides (part of) the folder's / default config.

    Accepts a diffusers folder (config.json + diffusion_pytorch_model.safetensors), a pipeline folder with a
    `vae/` subfolder, a single original-layout file (Wan2.1_VAE / ComfyUI wan_2.1_vae.safetensors: the default
    config is the real Wan2.1 VAE), or one of our checkpoints with role 'vae'.
    """
    path, dtype = Path(path), resolve_dtype(dtype)
    if path.is_dir():
        folder = path / "vae" if (path / "vae").is_dir() else path
        cfg_file = folder / "config.json"
        if not cfg_file.is_file():
            raise CheckpointError(f"{folder}: no config.json (expected a diffusers AutoencoderKLWan folder)")
        cfg = {**json.loads(cfg_file.read_text()), **(config or {})}
        state, source = tensor_index(_folder_files(folder)), folder
    elif path.is_file():
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path}: only .safetensors weights are loaded (no pickles); convert the file first")
        (cfg, state), source = _single_file(path, config), path
    else:
        raise CheckpointError(f"{path}: no such file or folder")
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    return WanVAE(_build_strict(cfg, state, dtype, device, source)).to(device)  # .to: the latent statistics
