"""WanVAE: normalisation, streamed decoding, frame rules, and offline loading from every supported layout."""

import json

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan
from diffusers.loaders.single_file_utils import convert_wan_vae_to_diffusers
from safetensors.torch import save_file

from semanticgen_core.checkpoint import CheckpointError, save_checkpoint
from semanticgen_core.vae import (
    WanVAE,
    check_video_shape,
    diffusers_to_original,
    fit_frames,
    frames_to_video,
    load_vae,
    original_to_diffusers,
    video_to_frames,
    wan21_vae_config,
)

TINY = {
    "base_dim": 8,
    "z_dim": 4,
    "dim_mult": [1, 2, 2, 2],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "latents_mean": [0.3, -0.5, 0.1, 0.7],
    "latents_std": [1.5, 0.5, 2.0, 0.8],
}


@pytest.fixture(scope="module")
def vae() -> WanVAE:
    torch.manual_seed(0)
    v = WanVAE.from_config(TINY).eval()
    with torch.no_grad():  # perturb every weight (RMS-norm gammas start at 1) so a swapped key cannot hide
        for p in v.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return v


def video(frames=9, h=32, w=32, b=1, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, frames, h, w, generator=g) * 2 - 1


def latent(vae, t=4, h=4, w=4, b=1, seed=1) -> torch.Tensor:
    return torch.randn(b, vae.z_dim, t, h, w, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------------------------
# Frame rules
# ----------------------------------------------------------------------------------------------------------------


def test_check_video_shape_messages():
    check_video_shape(33, 32, 48)
    with pytest.raises(ValueError, match=r"got 30 frames; the Wan VAE needs 4k\+1 frames, e.g. 29 or 33"):
        check_video_shape(30, 32, 32)
    with pytest.raises(ValueError, match=r"got 0 frames.*e.g. 1"):
        check_video_shape(0, 32, 32)
    with pytest.raises(ValueError, match="height 40 is not a multiple of 16.*32 or 48"):
        check_video_shape(9, 40, 32)
    with pytest.raises(ValueError, match="width 8 is not a multiple of 16"):
        check_video_shape(9, 32, 8)


def test_fit_frames_pad_and_trim():
    x = video(frames=30)
    padded, trimmed = fit_frames(x, "pad"), fit_frames(x, "trim")
    assert padded.shape[2] == 33 and trimmed.shape[2] == 29
    assert torch.equal(padded[:, :, :30], x) and torch.equal(padded[:, :, 30:], x[:, :, -1:].expand(-1, -1, 3, -1, -1))
    assert torch.equal(trimmed, x[:, :, :29])
    assert fit_frames(x[:, :, :29], "pad") is not None and fit_frames(x[:, :, :29], "pad").shape[2] == 29
    frames = np.arange(6 * 2 * 2 * 3, dtype=np.uint8).reshape(6, 2, 2, 3)  # [T, H, W, 3]
    assert fit_frames(frames, "pad", dim=0).shape[0] == 9 and (fit_frames(frames, "pad", dim=0)[-1] == frames[-1]).all()
    assert fit_frames(frames, "trim", dim=0).shape[0] == 5
    with pytest.raises(ValueError, match="mode"):
        fit_frames(x, "drop")


def test_encode_rejects_bad_frames(vae):
    with pytest.raises(ValueError, match="got 10 frames"):
        vae.encode(video(frames=10))


# ----------------------------------------------------------------------------------------------------------------
# Model behaviour
# ----------------------------------------------------------------------------------------------------------------


def test_properties(vae):
    assert (vae.z_dim, vae.temporal_factor, vae.spatial_factor) == (4, 4, 8)
    spec = vae.video_spec
    assert (spec.z_dim, spec.temporal_factor, spec.spatial_factor) == (4, 4, 8)


def test_normalize_roundtrip(vae):
    z = latent(vae)
    mean = torch.tensor(TINY["latents_mean"]).view(1, -1, 1, 1, 1)
    std = torch.tensor(TINY["latents_std"]).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(vae.normalize(z), (z - mean) / std)
    torch.testing.assert_close(vae.denormalize(vae.normalize(z)), z)


def test_encode_is_normalised_posterior_mode(vae):
    x = video(frames=9, h=32, w=48)
    z = vae.encode(x)
    assert z.shape == (1, 4, 3, 4, 6)
    torch.testing.assert_close(vae.encode(x), z)  # deterministic
    with torch.no_grad():
        raw = vae.model.encode(x).latent_dist.mean
    torch.testing.assert_close(vae.denormalize(z), raw)
    out = vae.decode(z)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("chunk", [1, 2, 4])
def test_iter_decode_equals_decode(vae, chunk):
    z = latent(vae, t=4, b=2)
    full = vae.decode(z)
    blocks = list(vae.iter_decode(z, chunk=chunk))
    first = 1 + 4 * (min(chunk, 4) - 1)
    assert blocks[0].shape[2] == first and len(blocks) == -(-4 // chunk)
    torch.testing.assert_close(torch.cat(blocks, dim=2), full, atol=1e-5, rtol=1e-5)
    assert vae.decode(z).equal(full)  # streaming left no state behind


def test_uint8_helpers(vae):
    z = latent(vae, t=3)
    frames = vae.decode_to_uint8(z, chunk=2)
    assert frames.dtype == np.uint8 and frames.shape == (9, 32, 32, 3)
    np.testing.assert_allclose(frames.astype(int), video_to_frames(vae.decode(z))[0].astype(int), atol=1)
    back = frames_to_video(frames)
    assert back.shape == (1, 3, 9, 32, 32) and back.min() >= -1 and back.max() <= 1


# ----------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------


def same_model(a: WanVAE, b: WanVAE) -> None:
    z = latent(a, t=2)
    torch.testing.assert_close(b.decode(z), a.decode(z), atol=0, rtol=0)
    x = video(frames=5)
    torch.testing.assert_close(b.encode(x), a.encode(x), atol=0, rtol=0)


def test_diffusers_folder_and_pipeline_folder(vae, tmp_path):
    vae.model.save_pretrained(tmp_path / "pipe" / "vae")
    assert (tmp_path / "pipe" / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    same_model(vae, load_vae(tmp_path / "pipe" / "vae"))
    loaded = load_vae(tmp_path / "pipe")
    same_model(vae, loaded)
    assert not loaded.model.training and not any(p.requires_grad for p in loaded.parameters())
    assert load_vae(tmp_path / "pipe", dtype="bf16").dtype == torch.bfloat16


def test_original_single_file(vae, tmp_path):
    original = diffusers_to_original(vae.model.state_dict(), TINY)
    for key in ("encoder.conv1.weight", "decoder.upsamples.0.residual.0.gamma", "conv1.weight", "conv2.bias"):
        assert key in original
    assert not any("up_blocks" in k or "down_blocks" in k or "mid_block" in k for k in original)
    save_file({k: v.contiguous() for k, v in original.items()}, tmp_path / "wan_vae.safetensors")
    same_model(vae, load_vae(tmp_path / "wan_vae.safetensors", config=TINY))
    prefixed = {"first_stage_model." + k: v.contiguous() for k, v in original.items()}  # merged-checkpoint style
    save_file(prefixed, tmp_path / "prefixed.safetensors")
    same_model(vae, load_vae(tmp_path / "prefixed.safetensors", config=TINY))
    with pytest.raises(CheckpointError, match="pass config"):  # default config is the real Wan2.1 VAE
        load_vae(tmp_path / "wan_vae.safetensors")


def test_conversion_matches_diffusers_reference():
    """Our renaming, run backwards on the real Wan2.1 key set, is undone exactly by diffusers' own converter."""
    with torch.device("meta"):
        real = AutoencoderKLWan.from_config(wan21_vae_config())
    keys = {k: torch.empty(0) for k in real.state_dict()}
    original = diffusers_to_original(keys)
    assert set(convert_wan_vae_to_diffusers(dict(original))) == set(keys)
    assert set(original_to_diffusers(original)) == set(keys)
    assert "decoder.upsamples.4.shortcut.weight" in original  # the real decoder's one shortcut


def test_strict_loading_names_keys(vae, tmp_path):
    original = {k: v.contiguous() for k, v in diffusers_to_original(vae.model.state_dict(), TINY).items()}
    broken = {k: v for k, v in original.items() if k != "decoder.head.2.bias"}
    broken["extra.weight"] = torch.zeros(1)
    save_file(broken, tmp_path / "broken.safetensors")
    with pytest.raises(CheckpointError, match=r"missing keys \['decoder.conv_out.bias'\].*'extra.weight'"):
        load_vae(tmp_path / "broken.safetensors", config=TINY)
    with pytest.raises(CheckpointError, match="no such file"):
        load_vae(tmp_path / "absent.safetensors")
    (tmp_path / "vae.pt").write_bytes(b"pickle")
    with pytest.raises(CheckpointError, match="no pickles"):
        load_vae(tmp_path / "vae.pt")


def test_own_checkpoint(vae, tmp_path):
    vae.save(tmp_path / "vae.safetensors")
    loaded = load_vae(tmp_path / "vae.safetensors")
    assert loaded.config["latents_mean"] == TINY["latents_mean"]
    same_model(vae, loaded)
    save_checkpoint(tmp_path / "comp.safetensors", {"w": torch.zeros(1)}, role="compressor", config={})
    with pytest.raises(CheckpointError, match="but a vae was expected"):
        load_vae(tmp_path / "comp.safetensors")


def test_stats_must_match_z_dim(tmp_path):
    with pytest.raises(ValueError, match="latents_mean and latents_std"):
        WanVAE.from_config({**TINY, "latents_mean": [0.0] * 16, "latents_std": [1.0] * 16})
    cfg = json.loads(json.dumps(wan21_vae_config()))
    assert cfg["base_dim"] == 96 and len(cfg["latents_mean"]) == 16 and cfg["latents_std"][0] == pytest.approx(2.8184)


def test_latent_space_stats_recorded_fallback_and_mismatch():
    from semanticgen_core.config import VideoSpec
    from semanticgen_core.vae import latent_space_stats, wan21_vae_config

    mean, std = latent_space_stats(VideoSpec(z_dim=4, latents_mean=[0.0, 1, 2, 3], latents_std=[1.0, 2, 3, 4]))
    assert mean.tolist() == [0, 1, 2, 3] and std.tolist() == [1, 2, 3, 4]
    with pytest.warns(UserWarning, match="assuming the Wan2.1"):
        mean, _ = latent_space_stats(VideoSpec(z_dim=16), "old.safetensors")
    assert mean.tolist() == pytest.approx(wan21_vae_config()["latents_mean"])
    with pytest.raises(ValueError, match="x.safetensors: no latent statistics recorded for its 4-channel"):
        latent_space_stats(VideoSpec(z_dim=4), "x.safetensors")
    with pytest.raises(ValueError, match="length 3/3, expected 4"):
        latent_space_stats(VideoSpec(z_dim=4, latents_mean=[0.0] * 3, latents_std=[1.0] * 3))
