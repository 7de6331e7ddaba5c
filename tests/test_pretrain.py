"""Pretraining of the embedded model's frozen parts (train/pretrain.py) and the shared LR schedule."""

import json

import numpy as np
import pytest
import torch

from semanticgen_core.lab.world import COLORS
from train import pretrain
from train.loop import TrainConfig, lr_factor


def test_lr_schedule_warms_up_holds_and_decays_to_zero():
    cfg = TrainConfig(warmup_steps=10, max_steps=100, decay_steps=20)
    f = [lr_factor(s, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == 1.0 and f[50] == 1.0 and f[80] == 1.0
    assert f[90] == pytest.approx(0.5) and f[99] == pytest.approx(0.05) and lr_factor(100, cfg) == 0.0
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # never rises after warmup
    assert lr_factor(99, TrainConfig(warmup_steps=10, max_steps=100)) == 1.0  # no decay unless asked


def test_object_mask_covers_exactly_the_drawn_shape():
    clips = pretrain.WorldClips(3, seed=0, fps=8, num_frames=5, mask=True)
    for i in range(3):
        item = clips[i]
        mask, frames = item["mask"].numpy(), item["frames"].numpy().astype(np.int16)
        assert mask.shape == frames.shape[:3] and 0.002 < mask.mean() < 0.3
        colour = np.asarray(COLORS[clips.world.scene(i)[0].color])
        # the object's own colour fills the mask's interior; nothing outside the mask differs from the background
        assert np.abs(frames[mask] - colour).max(-1).min() <= 2
        assert not np.all(np.abs(frames[~mask] - colour).max(-1) <= 2)


def vae_and_batch():
    """A small random VAE, two 5-frame world clips with object masks, and a generator factory (seed 0)."""
    from semanticgen_core.vae import WanVAE

    torch.manual_seed(0)
    vae = WanVAE.from_config(pretrain.VAE_CONFIG).model
    clips = pretrain.WorldClips(2, seed=0, fps=8, num_frames=5, mask=True)
    batch = {k: torch.stack([clips[i][k] for i in range(2)]) for k in ("frames", "mask")}
    return vae, batch, lambda: torch.Generator().manual_seed(0)


def test_object_weight_moves_the_loss_towards_the_object_error():
    vae, batch, g = vae_and_batch()
    plain, logs_plain = pretrain.VAEObjective(vae, object_weight=0.0)(batch, g())
    weighted, logs = pretrain.VAEObjective(vae, object_weight=10.0)(batch, g())
    only_object, _ = pretrain.VAEObjective(vae, object_weight=1e6)(batch, g())
    assert "l1_object" in logs and "l1_object" not in logs_plain and logs["l1"] == logs_plain["l1"]
    # the weighted loss moves from the frame's mean error towards the object's, and only the mask can move it
    assert min(plain, only_object) < weighted < max(plain, only_object)
    assert abs(only_object - plain) > 0.05


def test_edge_loss_compares_spatial_gradients_weighted_like_the_pixels():
    x = torch.zeros(1, 3, 1, 8, 8)
    x[..., 2:6, 2:6] = 1.0  # a square with sharp edges
    soft = torch.nn.functional.avg_pool3d(x, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False)
    w = torch.ones(1, 1, 1, 8, 8)
    assert pretrain.spatial_grad_l1(x, x, w) == 0
    assert pretrain.spatial_grad_l1(soft, x, w) > 0.05  # a blurred copy: its edges are ramps
    assert float(pretrain.spatial_grad_l1(x + 0.3, x, w)) == pytest.approx(
        0, abs=1e-6
    )  # an offset changes pixels, not gradients
    heavy = w.clone()
    heavy[..., 2:6, 2:6] = 11.0  # an object weight moves the mean towards its edges' errors
    assert pretrain.spatial_grad_l1(soft, x, heavy) != pytest.approx(float(pretrain.spatial_grad_l1(soft, x, w)))
    vae, batch, g = vae_and_batch()
    plain, logs_plain = pretrain.VAEObjective(vae, object_weight=10.0)(batch, g())
    edged, logs = pretrain.VAEObjective(vae, object_weight=10.0, edge_weight=2.0)(batch, g())
    assert "edge" in logs and "edge" not in logs_plain
    assert edged.item() == pytest.approx(plain.item() + 2.0 * logs["edge"].item(), rel=1e-5)
    with pytest.raises(SystemExit, match="--edge-weight -1 .* must be >= 0"):
        pretrain.main(pretrain.parse_args(["vae", "--out", "unused", "--edge-weight", "-1"]))


def test_adversarial_term_trains_the_discriminator_apart_and_is_scaled_at_the_decoders_last_layer(tmp_path):
    import torch.nn.functional as F

    vae, batch, g = vae_and_batch()
    plain = pretrain.VAEObjective(vae, object_weight=10.0, decoder_only=True)
    adv = pretrain.VAEObjective(vae, object_weight=10.0, decoder_only=True, adv_weight=0.5)
    assert plain.disc is None and sum(p.numel() for p in adv.disc.parameters()) > 0
    plain(batch, g())[0].backward()
    g_rec = vae.decoder.conv_out.weight.grad.clone()
    vae.zero_grad()
    loss, logs = adv(batch, g())
    assert {"d_loss", "g_loss", "adv_scale"} <= set(logs) and logs["adv_scale"] > 0
    loss.backward()
    # the decoder's adversarial gradient at its last layer is adv_weight times the reconstruction's (adaptive weight)
    g_adv = vae.decoder.conv_out.weight.grad - g_rec
    assert float(g_adv.norm() / g_rec.norm()) == pytest.approx(0.5, rel=1e-3)
    # the discriminator learns from its hinge loss alone: the decoder's term (-D(rec)) does not pull it
    x = batch["frames"].permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample
    real, fake = (v.transpose(1, 2).flatten(0, 1) for v in (x, rec))
    d_only = F.relu(1 - adv.disc(real)).mean() + F.relu(1 + adv.disc(fake)).mean()
    expected = torch.autograd.grad(d_only, list(adv.disc.parameters()))
    assert all(torch.allclose(p.grad, e, atol=1e-6) for p, e in zip(adv.disc.parameters(), expected))
    # the export holds the VAE alone; a negative weight is refused before any work
    from semanticgen_core.vae import WanVAE, load_vae

    init = tmp_path / "init.safetensors"
    WanVAE.from_config(dict(pretrain.VAE_CONFIG, latents_mean=[0.1] * 16, latents_std=[0.5] * 16)).save(init)
    common = ["vae", "--out", str(tmp_path / "b"), "--init", str(init), "--decoder-only", "--clips", "2",
              "--frames", "5", "--batch-size", "1", "--max-steps", "1", "--log-every", "1", "--seed", "0"]  # fmt: skip
    with pytest.raises(SystemExit, match="--adv-weight -1: must be >= 0"):
        pretrain.main(pretrain.parse_args([*common, "--adv-weight", "-1"]))
    pretrain.main(pretrain.parse_args([*common, "--adv-weight", "0.5"]))
    out = load_vae(tmp_path / "b" / "shapes_vae.safetensors")
    assert out.config == load_vae(init).config and set(out.model.state_dict()) == set(vae.state_dict())


def test_vae_pretraining_runs_and_a_resumed_phase_takes_its_own_lr(tmp_path):
    common = ["--out", str(tmp_path), "--clips", "4", "--frames", "5", "--batch-size", "1", "--warmup-steps", "1",
              "--log-every", "1", "--ckpt-every", "2", "--seed", "0"]  # fmt: skip
    pretrain.main(pretrain.parse_args(["vae", "--max-steps", "2", "--lr", "1e-3", *common]))
    pretrain.main(pretrain.parse_args(["vae", "--max-steps", "4", "--lr", "1e-4", "--decay-steps", "2",
                                       "--object-weight", "5", "--resume", *common]))  # fmt: skip
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in log}
    assert lrs[1] == pytest.approx(1e-3) and lrs[3] == pytest.approx(1e-4) and lrs[4] == pytest.approx(5e-5)
    assert "l1_object" in log[-1] and (tmp_path / "shapes_vae.safetensors").is_file()


def test_encoder_aux_heads_train_attributes_and_positions_from_tokens():
    import torch

    from semanticgen_core.encoders.qwen2_5_vl import Qwen25VLEncoder
    from train.pretrain import ENCODER_CONFIG, ENCODER_FPS, ENCODER_PIXELS, ContrastiveObjective, WorldClips

    torch.manual_seed(0)
    enc = Qwen25VLEncoder.from_config(ENCODER_CONFIG, fps=ENCODER_FPS, **ENCODER_PIXELS)
    clips = WorldClips(4, seed=0, fps=ENCODER_FPS, num_frames=9)
    items = [clips[i] for i in range(4)]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("frames", "key", "labels", "position")}
    batch["text"] = torch.randn(4, 384)
    assert batch["position"].shape == (4, 9, 2) and batch["labels"].shape == (4, 4)
    assert enc.grid(9, 64, 64) == (5, 1, 1)  # one token per semantic frame: 1/16 of stage B's 4x4 per latent frame
    plain, logs_plain = ContrastiveObjective(enc)(batch, None)
    torch.manual_seed(0)
    full, logs = ContrastiveObjective(enc, aux_weight=1.0)(batch, None)
    assert "pos_rmse" in logs and "pos_rmse" not in logs_plain and full > plain  # the heads add their losses
    full.backward()
    assert enc.model.patch_embed.proj.weight.grad.abs().sum() > 0


def test_recoloured_clips_train_shape_but_not_colour_or_the_caption(tmp_path):
    from semanticgen_core.encoders.qwen2_5_vl import Qwen25VLEncoder
    from semanticgen_core.lab.world import Scene, background_image, off_palette_rgb, render
    from train.pretrain import ENCODER_CONFIG, ENCODER_FPS, ENCODER_PIXELS, ContrastiveObjective, WorldClips

    palette = np.asarray(list(COLORS.values()), np.float32)
    rgbs = np.asarray([off_palette_rgb(np.random.default_rng(i)) for i in range(200)], np.float32)
    assert np.linalg.norm(rgbs[:, None] - palette[None], axis=-1).min() >= 80 and rgbs.max(1).min() >= 110
    clips = WorldClips(12, seed=0, fps=ENCODER_FPS, num_frames=9, recolor=0.5)
    items = [clips[i] for i in range(12)]
    flags = [bool(it["recolored"]) for it in items]
    assert 0 < sum(flags) < 12 and flags == [bool(clips[i]["recolored"]) for i in range(12)]  # fixed per index
    i = flags.index(True)
    scene = Scene(**clips.world[i]["scene"])
    named = render(scene, fps=ENCODER_FPS, num_frames=9)
    moved = (items[i]["frames"].numpy() != named).any(-1)
    untouched = np.abs(named - background_image(scene.background, 64, 64)).max(-1) == 0  # no shape there
    assert moved.any() and not (moved & untouched).any()  # only the shape's pixels change colour

    torch.manual_seed(0)
    enc = Qwen25VLEncoder.from_config(ENCODER_CONFIG, fps=ENCODER_FPS, **ENCODER_PIXELS)
    objective = ContrastiveObjective(enc, aux_weight=1.0)
    batch = {k: torch.stack([it[k] for it in items]) for k in ("frames", "key", "labels", "position", "recolored")}
    batch["text"] = torch.randn(12, 384)
    loss = lambda b: objective(b, None)[0].item()  # noqa: E731
    base = loss(batch)
    other = dict(batch, text=batch["text"].clone(), labels=batch["labels"].clone())
    other["text"][i] = torch.randn(384)  # a recoloured clip's caption and colour label are not used...
    other["labels"][i, 0] = (other["labels"][i, 0] + 1) % len(COLORS)
    assert loss(other) == pytest.approx(base, rel=1e-6)
    other["labels"][i, 1] = (other["labels"][i, 1] + 1) % 3  # ...its shape label is
    assert abs(loss(other) - base) > 1e-4
    j = flags.index(False)
    other = dict(batch, labels=batch["labels"].clone())
    other["labels"][j, 0] = (other["labels"][j, 0] + 1) % len(COLORS)  # a clip in its named colour trains colour
    assert abs(loss(other) - base) > 1e-4
    with pytest.raises(SystemExit, match="--recolor 1: the share"):
        pretrain.main(pretrain.parse_args(["encoder", "--out", str(tmp_path), "--recolor", "1", "--aux-weight", "1"]))
    with pytest.raises(SystemExit, match="give --aux-weight > 0"):
        pretrain.main(pretrain.parse_args(["encoder", "--out", str(tmp_path), "--recolor", "0.5"]))


def test_decoder_only_fine_tune_keeps_the_latent_space(tmp_path):
    from semanticgen_core.vae import WanVAE, frames_to_video, load_vae

    common = ["--clips", "4", "--frames", "5", "--batch-size", "1", "--warmup-steps", "1", "--log-every", "1",
              "--ckpt-every", "2", "--seed", "0"]  # fmt: skip
    torch.manual_seed(0)
    init = tmp_path / "init.safetensors"
    stats = dict(latents_mean=[0.1] * 16, latents_std=[0.5] * 16)
    WanVAE.from_config(dict(pretrain.VAE_CONFIG, **stats)).save(init, dtype="fp16")
    with pytest.raises(SystemExit, match="--init"):
        pretrain.main(pretrain.parse_args(["vae", "--out", str(tmp_path / "b"), "--decoder-only", *common]))
    pretrain.main(pretrain.parse_args(["vae", "--out", str(tmp_path / "b"), "--init", str(init), "--decoder-only",
                                       "--max-steps", "2", "--lr", "1e-2", "--ema-decay", "0", *common]))  # fmt: skip
    before, after = load_vae(init), load_vae(tmp_path / "b" / "shapes_vae.safetensors")
    assert after.config == before.config  # the latent statistics included
    a, b = before.model.state_dict(), after.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith(("decoder.", "post_quant_conv.")))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("decoder."))
    video = frames_to_video(pretrain.WorldClips(1, seed=3, fps=8, num_frames=5)[0]["frames"].numpy())
    with torch.no_grad():
        assert torch.equal(before.encode(video), after.encode(video))
        assert not torch.equal(before.decode(before.encode(video)), after.decode(after.encode(video)))


def test_a_wider_decoder_trains_on_the_same_latents(tmp_path):
    from semanticgen_core.vae import WanVAE, frames_to_video, load_vae

    common = ["--clips", "4", "--frames", "5", "--batch-size", "1", "--warmup-steps", "1", "--log-every", "1",
              "--ckpt-every", "2", "--seed", "0", "--max-steps", "1"]  # fmt: skip
    torch.manual_seed(0)
    init = tmp_path / "init.safetensors"
    WanVAE.from_config(dict(pretrain.VAE_CONFIG, latents_mean=[0.1] * 16, latents_std=[0.5] * 16)).save(
        init, dtype="fp16"
    )
    with pytest.raises(SystemExit, match="--decoder-only"):
        pretrain.main(pretrain.parse_args(["vae", "--out", str(tmp_path / "a"), "--init", str(init),
                                           "--decoder-base-dim", "12", *common]))  # fmt: skip
    pretrain.main(pretrain.parse_args(["vae", "--out", str(tmp_path / "b"), "--init", str(init), "--decoder-only",
                                       "--decoder-base-dim", "12", *common]))  # fmt: skip
    before, after = load_vae(init), load_vae(tmp_path / "b" / "shapes_vae.safetensors")
    assert after.config["decoder_base_dim"] == 12 and before.config.get("decoder_base_dim") is None
    assert after.config["latents_mean"] == before.config["latents_mean"]
    a, b = before.model.state_dict(), after.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith(("decoder.", "post_quant_conv.")))
    assert b["decoder.conv_in.weight"].shape[0] > a["decoder.conv_in.weight"].shape[0]  # the decoder is wider
    video = frames_to_video(pretrain.WorldClips(1, seed=3, fps=8, num_frames=5)[0]["frames"].numpy())
    with torch.no_grad():
        assert torch.equal(before.encode(video), after.encode(video))
        assert after.decode(after.encode(video)).shape == video.shape


def test_vae_spatial_factor_4_halves_the_downsampling(tmp_path):
    from semanticgen_core.vae import WanVAE, frames_to_video, load_vae

    pretrain.main(pretrain.parse_args(["vae", "--out", str(tmp_path), "--spatial-factor", "4", "--clips", "2",
                                       "--frames", "5", "--batch-size", "1", "--warmup-steps", "1", "--max-steps",
                                       "1", "--log-every", "1", "--seed", "0"]))  # fmt: skip
    video = frames_to_video(np.zeros((5, 64, 64, 3), np.uint8))
    with torch.no_grad():
        four = load_vae(tmp_path / "shapes_vae.safetensors").encode(video).shape
        eight = WanVAE.from_config(pretrain.VAE_CONFIG).encode(video).shape  # the shipped geometry
    assert four[2:] == (2, 16, 16) and eight[2:] == (2, 8, 8)  # time stays 4x: 5 frames -> 2 latent frames
    from train.embedded import LAT_CONFIG, lat_config_for

    # the embedded build's stage B keeps 16 px per token: 4x4 patches on this VAE's latents, the same 4x4 tokens
    assert lat_config_for(tmp_path / "shapes_vae.safetensors").patch_size == (1, 4, 4)
    assert LAT_CONFIG.patch_size == (1, 2, 2)
    with pytest.raises(SystemExit, match="run the build's vae step first"):
        lat_config_for(tmp_path / "absent.safetensors")
    with pytest.raises(SystemExit):
        pretrain.parse_args(["vae", "--out", str(tmp_path), "--spatial-factor", "2"])
