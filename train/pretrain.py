"""Pretraining of the frozen parts of the embedded shapes-world model, through the shared loop (train/loop.py):

- `vae`: a Wan-architecture VAE (diffusers `AutoencoderKLWan`, small config) trained to reconstruct world clips;
  the export stores per-channel latent statistics as `latents_mean` / `latents_std`, as Wan2.1 does.
  `--init VAE --decoder-only` fine-tunes the decoder of a trained VAE on its encoder's latents (posterior mode, as
  prepare.py caches them): the latent space, and so every model trained on it, stays valid.
- `encoder`: a Qwen2.5-VL-architecture vision tower (small config) trained with a video-text contrastive objective
  against a frozen sentence encoder (all-MiniLM-L6-v2). Vision-language alignment is what gives the real Qwen tower
  its semantics (paper Sec. 3.2), so the toy encoder earns its name the same way.

    python train/pretrain.py vae --out runs/vae --max-steps 800
    python train/pretrain.py encoder --out runs/encoder --max-steps 600

Clips are rendered on the fly from the shapes world (deterministic per index), so no data folder is needed.
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if __package__ in (None, ""):  # `python train/pretrain.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core import flow  # noqa: E402
from semanticgen_core.lab.embedded import default_text_encoder  # noqa: E402
from semanticgen_core.lab.world import (  # noqa: E402
    BACKGROUNDS,
    COLORS,
    MOTIONS,
    SHAPES,
    Scene,
    ShapesWorld,
    background_image,
    off_palette_rgb,
    render,
)
from train.loop import Task, TrainConfig, train  # noqa: E402
from train.utils import add_dataclass_args, from_args  # noqa: E402

# Embedded-model geometry (paper Sec. 4: the plan is about 1/16 of the VAE tokens): 64x64 clips; the VAE at 8 fps,
# 8x spatial and 4x temporal, so stage B has 4x4 tokens per latent frame (patch 1x2x2) at 2 latent frames/s; the
# semantic encoder at 4 fps with temporal patch 2 and one 64-px token per frame (patch 16, 4x4 merge), so the plan has
# 1 token per latent frame: 1/16 of stage B's tokens at every length.
VAE_CONFIG = dict(
    base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, temperal_downsample=[False, True, True],
    attn_scales=[],
)  # fmt: skip
# --spatial-factor 4 (the shipped embedded VAE; train/embedded.py passes it): one downsampling level fewer, time 4x
VAE_LEVELS = {8: dict(dim_mult=[1, 2, 4, 4], temperal_downsample=[False, True, True]),
              4: dict(dim_mult=[1, 2, 4], temperal_downsample=[True, True])}  # fmt: skip
ENCODER_CONFIG = dict(
    depth=3, hidden_size=96, num_heads=4, intermediate_size=192, patch_size=16, spatial_merge_size=4,
    temporal_patch_size=2, out_hidden_size=64, window_size=64, fullatt_block_indexes=[0, 1, 2], in_channels=3,
)  # fmt: skip
ENCODER_FPS = 4.0
ENCODER_PIXELS = dict(min_pixels=64 * 64, max_pixels=64 * 64)  # 64x64 frames keep their size: one token per frame


class WorldClips:
    """Shapes-world clips for the loop: one shape bucket; items frames uint8 [T, H, W, 3], caption, attribute id."""

    def __init__(
        self, n: int, seed: int, fps: float, num_frames: int, size: int = 64, text=None, mask=False, recolor=0.0
    ):  # fmt: skip
        self.world = ShapesWorld(n=n, seed=seed, fps=fps, num_frames=num_frames, height=size, width=size)
        self.text, self.mask, self.fps, self.recolor, self.seed = text, mask, fps, recolor, seed

    def __len__(self) -> int:
        return len(self.world)

    def buckets(self) -> dict:
        return {(0,): list(range(len(self)))}

    def __getitem__(self, i: int) -> dict:
        item = self.world[i]
        a = item["attributes"]
        out = {"frames": torch.from_numpy(item["frames"]), "caption": item["caption"]}
        key = (list(COLORS).index(a["color"]) * len(SHAPES) + SHAPES.index(a["shape"])) * len(MOTIONS)
        out["key"] = torch.tensor(key + MOTIONS.index(a["motion"]))  # same attributes, same key
        out["labels"] = torch.tensor([list(COLORS).index(a["color"]), SHAPES.index(a["shape"]),
                                      MOTIONS.index(a["motion"]), list(BACKGROUNDS).index(a["background"])])  # fmt: skip
        scene = Scene(**item["scene"])
        if self.recolor > 0:  # this share of the clips drawn in an unnamed colour (`recolored`: their caption and
            rng = np.random.default_rng([self.seed, 91, i])  # colour label no longer describe them)
            out["recolored"] = torch.tensor(bool(rng.random() < self.recolor))
            if out["recolored"]:
                rgb = off_palette_rgb(rng)
                out["frames"] = torch.from_numpy(render(scene, fps=self.fps, num_frames=len(item["frames"]), rgb=rgb))
        t = np.arange(len(item["frames"])) / self.fps
        out["position"] = torch.tensor(np.stack(scene.position(t), -1), dtype=torch.float32)  # [T, 2]
        if self.mask:  # object pixels: where the frame differs from the scene's background [T, H, W]
            _, h, w, _ = item["frames"].shape
            diff = np.abs(item["frames"].astype(np.float32) - background_image(a["background"], h, w)).max(-1)
            out["mask"] = torch.from_numpy(diff > 4.0)
        if self.text is not None:
            with torch.no_grad():
                ctx, mask = self.text.encode([item["caption"]])
            out["text"] = (ctx[0] * mask[0, :, None]).sum(0) / mask[0].sum()  # mean-pooled sentence embedding [384]
        return out


# ----------------------------------------------------------------------------------------------------------------
# Objectives
# ----------------------------------------------------------------------------------------------------------------


class VAEObjective(nn.Module):
    """Reconstruction (L1 + L2) + a small KL of the Wan VAE on clips [B, 3, F, H, W] in [-1, 1].

    object_weight > 0 weighs the object's pixels (batch["mask"]) 1 + object_weight times: the shape covers a few
    percent of a frame, so a plain mean spends the capacity on backgrounds and lets the object's colour drift.
    decoder_only: the encoder side is frozen and the decoder reads the posterior mode (what prepare.py caches and
    stage 1 learns to generate), so latents that are close but distinct (e.g. two hues) can decode apart.
    edge_weight > 0 adds an L1 loss on the spatial gradients (finite differences along H and W), weighted like the
    pixels: a pixel loss alone lets an edge the latent leaves uncertain by a pixel decode as a ramp (a soft shape).
    adv_weight > 0 adds the adversarial term the Wan and VQGAN VAEs train with: a patch discriminator on frames
    (hinge loss) and, for the decoder, -D(rec) scaled so that its gradient at the decoder's last layer is adv_weight
    times the reconstruction's (VQGAN's adaptive weight). Pixel losses reward the mean of the sharp edges a latent
    allows, which is a soft edge; the discriminator tells soft from sharp.
    """

    def __init__(
        self, vae, kl_weight: float = 1e-4, object_weight: float = 0.0, decoder_only: bool = False,
        edge_weight: float = 0.0, adv_weight: float = 0.0,
    ):  # fmt: skip
        super().__init__()
        self.vae, self.kl_weight, self.object_weight, self.decoder_only = vae, kl_weight, object_weight, decoder_only
        self.edge_weight, self.adv_weight = edge_weight, adv_weight
        self.disc = PatchDiscriminator() if adv_weight > 0 else None  # trained with the decoder, never exported
        if decoder_only:
            vae.encoder.requires_grad_(False)
            vae.quant_conv.requires_grad_(False)

    def forward(self, batch: dict, generator: torch.Generator):
        x = batch["frames"].permute(0, 4, 1, 2, 3).float() / 127.5 - 1  # [B, 3, F, H, W]
        if self.decoder_only:
            with torch.no_grad():
                z = self.vae.encode(x).latent_dist.mode()
            kl = torch.zeros((), device=x.device)
        else:
            post = self.vae.encode(x).latent_dist
            z = post.mean + post.std * flow.randn(post.mean.shape, generator, x.device, x.dtype)
            kl = post.kl().mean() / post.mean[0].numel()  # per latent element
        rec = self.vae.decode(z).sample
        err = rec - x
        l1, l2 = err.abs().mean(), err.pow(2).mean()
        logs = {"l1": l1.detach(), "kl": kl.detach()}
        if self.object_weight > 0:
            mask = batch["mask"][:, None].to(x.dtype)  # [B, 1, F, H, W]
            w = 1 + self.object_weight * mask
            rec_loss = (w * (err.abs() + err.pow(2))).sum() / (w.sum() * 3)
            logs["l1_object"] = (err.abs() * mask).sum().detach() / (mask.sum() * 3).clamp(min=1)
        else:
            w, rec_loss = torch.ones_like(x[:, :1]), l1 + l2
        if self.edge_weight > 0:
            edge = spatial_grad_l1(rec, x, w)
            logs["edge"] = edge.detach()
            rec_loss = rec_loss + self.edge_weight * edge
        loss = rec_loss + self.kl_weight * kl
        if self.disc is not None:
            real, fake = (v.transpose(1, 2).flatten(0, 1) for v in (x, rec))  # frames [B * F, 3, H, W]
            d_loss = F.relu(1 - self.disc(real)).mean() + F.relu(1 + self.disc(fake.detach())).mean()
            frozen = {k: p.detach() for k, p in self.disc.named_parameters()}  # the decoder's term trains no D
            g_loss = -torch.func.functional_call(self.disc, frozen, (fake,)).mean()
            last = self.vae.decoder.conv_out.weight
            g_rec, g_adv = (torch.autograd.grad(v, last, retain_graph=True)[0].norm() for v in (rec_loss, g_loss))
            scale = (self.adv_weight * g_rec / (g_adv + 1e-8)).clamp(max=1e4).detach()
            loss = loss + scale * g_loss + d_loss
            logs.update(d_loss=d_loss.detach(), g_loss=g_loss.detach(), adv_scale=scale)
        return loss, logs


class PatchDiscriminator(nn.Module):
    """Frames [N, 3, H, W] in [-1, 1] -> real/fake logits [N, 1, H / 8, W / 8], one per overlapping patch (PatchGAN,
    as in the Wan and VQGAN VAEs' training; small: the world's frames are 64x64)."""

    def __init__(self, dim: int = 32):
        super().__init__()
        layers, c = [nn.Conv2d(3, dim, 4, 2, 1), nn.LeakyReLU(0.2)], dim
        for _ in range(2):
            layers += [nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2)]
            c *= 2
        self.net = nn.Sequential(*layers, nn.Conv2d(c, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def spatial_grad_l1(rec: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Weighted mean |d rec - d x| of the finite differences along H and W of clips [B, 3, F, H, W]; w [B, 1, F, H, W]
    weighs each difference by the larger weight of its two pixels (an object's edge counts as the object)."""
    out, total = 0.0, 0.0
    for dim in (3, 4):
        n = x.shape[dim] - 1
        d = (rec.diff(dim=dim) - x.diff(dim=dim)).abs()
        wd = torch.maximum(w.narrow(dim, 0, n), w.narrow(dim, 1, n))
        out, total = out + (wd * d).sum(), total + wd.sum() * 3
    return out / total


class ContrastiveObjective(nn.Module):
    """Video-text InfoNCE between pooled tower features and frozen sentence embeddings (multi-positive: clips with
    the same attributes are positives of each other), plus, with `aux_weight` > 0, what Qwen2.5-VL's captioning and
    grounding pretraining gives the real tower: linear heads that read each token's colour, shape, background and
    object position, and the clip's motion from how the tokens change. Contrastive training alone entangles the
    attributes (linear read-outs on held-out combinations near chance), and captions never say where things are,
    yet a plan must carry both. Clips marked `recolored` (WorldClips(recolor=p): drawn in an off-palette colour)
    train only the shape, background, position and motion heads: shape read apart from colour, where with the
    palette alone the tower learnt shape tied to the colours it saw it with (read-out 84 % on training pairs, 42 % on
    held-out ones)."""

    def __init__(self, encoder, text_dim: int = 384, embed_dim: int = 128, aux_weight: float = 0.0):
        super().__init__()
        self.encoder, self.aux_weight = encoder, aux_weight
        encoder.model.requires_grad_(True)  # encoders load frozen for inference; here the tower is what we train
        d = encoder.dim
        self.video_head = nn.Sequential(nn.Linear(2 * d, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        self.text_head = nn.Linear(text_dim, embed_dim)
        self.token_heads = nn.ModuleDict({"color": nn.Linear(d, len(COLORS)), "shape": nn.Linear(d, len(SHAPES)),
                                          "background": nn.Linear(d, len(BACKGROUNDS)), "position": nn.Linear(d, 2)})  # fmt: skip
        self.motion_head = nn.Linear(2 * d, len(MOTIONS))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, batch: dict, generator: torch.Generator):
        feats = self.encoder._encode_frames(batch["frames"], True)  # [B, d, T_s, H_s, W_s], with gradients
        pooled = torch.cat([feats.mean(dim=(2, 3, 4)), feats.amax(dim=(2, 3, 4))], dim=1)  # [B, 2d]
        named = ~batch["recolored"] if "recolored" in batch else torch.ones(len(pooled), dtype=torch.bool)  # [B]
        v = F.normalize(self.video_head(pooled[named]), dim=-1)
        t = F.normalize(self.text_head(batch["text"][named]), dim=-1)
        logits = self.logit_scale.exp().clamp(max=100) * v @ t.T  # [B', B'] over the clips their captions describe
        key = batch["key"][named]
        same = (key[:, None] == key[None]).float()
        target = same / same.sum(1, keepdim=True).clamp(min=1)
        loss = (
            0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) if len(v) else pooled.sum() * 0
        )
        acc = (logits.argmax(1) == torch.arange(len(v), device=v.device)).float().mean()
        logs = {"top1": acc.detach()} if len(v) else {}
        if self.aux_weight > 0:
            tokens = feats.mean(dim=(3, 4)).transpose(1, 2)  # [B, T_s, d]
            labels = batch["labels"]  # [B, 4]: colour, shape, motion, background
            aux, t_s = 0.0, tokens.shape[1]
            for name, col, rows in (("color", 0, named), ("shape", 1, slice(None)), ("background", 3, slice(None))):
                pred = self.token_heads[name](tokens[rows])  # [B, T_s, n]
                aux = aux + F.cross_entropy(pred.flatten(0, 1), labels[rows, col].repeat_interleave(t_s))
            motion = self.motion_head(torch.cat([tokens.mean(1), tokens[:, -1] - tokens[:, 0]], -1))
            aux = aux + F.cross_entropy(motion, labels[:, 2])
            pos = batch["position"]  # [B, T, 2] at the encoder's frames, padded like the frames
            tp, t_s = self.encoder.temporal_patch, tokens.shape[1]
            pos = torch.cat([pos, pos[:, -1:].expand(-1, t_s * tp - pos.shape[1], -1)], 1)
            err = F.mse_loss(self.token_heads["position"](tokens), pos.reshape(pos.shape[0], t_s, tp, 2).mean(2))
            loss = loss + self.aux_weight * (aux + 20 * err)  # position in frame fractions: 20x puts it on par
            logs.update(aux=aux.detach(), pos_rmse=err.detach().sqrt(),
                        motion_acc=(motion.argmax(-1) == labels[:, 2]).float().mean())  # fmt: skip
        return loss, logs


# ----------------------------------------------------------------------------------------------------------------
# Exports
# ----------------------------------------------------------------------------------------------------------------


def widen_decoder(vae, decoder_base_dim: int):
    """A VAE with `vae`'s encoder side (encoder, quant_conv, latent statistics: the same latents) and a new, randomly
    initialised decoder of width decoder_base_dim (AutoencoderKLWan's decoder_base_dim); post_quant_conv starts as
    the old one's (the decoder-only fine-tune trains it with the decoder)."""
    from semanticgen_core.vae import WanVAE

    out = WanVAE.from_config(dict(vae.config, decoder_base_dim=decoder_base_dim))
    kept = {k: v for k, v in vae.model.state_dict().items() if not k.startswith("decoder.")}
    missing, unexpected = out.model.load_state_dict(kept, strict=False)
    if unexpected or any(not k.startswith("decoder.") for k in missing):
        raise RuntimeError(f"widen_decoder: encoder-side weights did not fit ({unexpected or missing})")
    return out


def export_vae(
    state: dict, path: Path, step: int, config: dict, keep_stats: bool = False, stats_clips: int = 64
) -> None:
    """Save the EMA VAE (architecture `config`) with Wan-style per-channel latent statistics measured on world clips;
    a decoder-only fine-tune keeps the config's own (`keep_stats`): its encoder, so its latent space, is unchanged."""
    from semanticgen_core.vae import WanVAE

    vae = WanVAE.from_config(config)
    vae.model.load_state_dict({k[len("vae.") :]: v for k, v in state.items() if k.startswith("vae.")})
    if keep_stats:
        vae.save(path, dtype="fp16")
        return
    clips = WorldClips(stats_clips, seed=12345, fps=8, num_frames=17)
    video = torch.stack([clips[i]["frames"] for i in range(stats_clips)]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    with torch.no_grad():
        raw = torch.cat([vae.model.encode(v[None]).latent_dist.mean for v in video])  # [N, C, T, H, W]
    cfg = dict(config, latents_mean=raw.mean(dim=(0, 2, 3, 4)).tolist(), latents_std=raw.std(dim=(0, 2, 3, 4)).tolist())
    out = WanVAE.from_config(cfg)
    out.model.load_state_dict(vae.model.state_dict())
    out.save(path, dtype="fp16")


def export_encoder(state: dict, path: Path, step: int) -> None:
    """Save the EMA vision tower in our format (role semantic_encoder, kind qwen2_5_vl)."""
    from semanticgen_core.encoders.qwen2_5_vl import Qwen25VLEncoder

    enc = Qwen25VLEncoder.from_config(ENCODER_CONFIG, fps=ENCODER_FPS, **ENCODER_PIXELS)
    enc.model.load_state_dict(
        {k[len("encoder.model.") :]: v for k, v in state.items() if k.startswith("encoder.model.")}
    )
    enc.save(path)


def main(args) -> dict:
    cfg = from_args(TrainConfig, args)
    torch.manual_seed(cfg.seed)
    if args.part == "vae":
        from semanticgen_core.vae import WanVAE, load_vae

        if args.edge_weight < 0 or args.object_weight < 0:
            raise SystemExit(f"--edge-weight {args.edge_weight:g} / --object-weight {args.object_weight:g}: loss "
                             "weights must be >= 0")  # fmt: skip
        if args.adv_weight < 0:
            raise SystemExit(f"--adv-weight {args.adv_weight:g}: must be >= 0 (0: no discriminator)")
        if args.decoder_only and not args.init:
            raise SystemExit("--decoder-only fine-tunes a trained VAE's decoder: give that VAE with --init FILE")
        if args.decoder_base_dim and not args.decoder_only:
            raise SystemExit("--decoder-base-dim gives a new, wider decoder to a trained VAE: use it with --init FILE "
                             "--decoder-only (the encoder, so the latent space, is kept)")  # fmt: skip
        if args.init:  # start from a trained VAE (its own config: --base-dim is not used)
            vae = load_vae(args.init)
            if args.decoder_base_dim:
                vae = widen_decoder(vae, args.decoder_base_dim)
            vae.model.requires_grad_(True)
        else:
            vae = WanVAE.from_config(dict(VAE_CONFIG, base_dim=args.base_dim, **VAE_LEVELS[args.spatial_factor]))
        model = VAEObjective(
            vae.model, args.kl_weight, args.object_weight, args.decoder_only, args.edge_weight, args.adv_weight
        )
        data = WorldClips(args.clips, cfg.seed, fps=8, num_frames=args.frames, mask=args.object_weight > 0)
        export = functools.partial(export_vae, config=vae.config, keep_stats=args.decoder_only)
        task = Task("pretrain_vae", model, (), "shapes_vae.safetensors", export, settings=vars(args), dataset=data)
    else:
        from semanticgen_core.encoders.qwen2_5_vl import Qwen25VLEncoder

        if not 0 <= args.recolor < 1:
            raise SystemExit(
                f"--recolor {args.recolor:g}: the share of clips drawn in an off-palette colour, in [0, 1)"
            )
        if args.recolor and not args.aux_weight:
            raise SystemExit("--recolor trains the shape, background, position and motion heads on recoloured clips: "
                             "give --aux-weight > 0 too")  # fmt: skip
        if args.init:  # fine-tune a trained tower (its heads start anew: they are not exported)
            encoder = Qwen25VLEncoder.from_pretrained(args.init, fps=ENCODER_FPS, **ENCODER_PIXELS)
        else:
            encoder = Qwen25VLEncoder.from_config(ENCODER_CONFIG, fps=ENCODER_FPS, **ENCODER_PIXELS)
        model = ContrastiveObjective(encoder, aux_weight=args.aux_weight)
        data = WorldClips(args.clips, cfg.seed, fps=ENCODER_FPS, num_frames=args.frames, text=default_text_encoder(24),
                          recolor=args.recolor)  # fmt: skip
        task = Task(
            "pretrain_encoder",
            model,
            (),
            "shapes_encoder.safetensors",
            export_encoder,
            settings=vars(args),
            dataset=data,
        )
    return train(task, cfg, None, args.out, args.resume)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["vae", "encoder"], help="which frozen part to pretrain")
    p.add_argument("--out", required=True, help="run folder: states, export, logs, loss curve")
    p.add_argument("--resume", nargs="?", const="auto", default=None, help="continue from the latest state in --out")
    p.add_argument("--clips", type=int, default=20000, help="distinct world clips (rendered on the fly)")
    p.add_argument("--frames", type=int, default=None, help="frames per clip (default: 5 for vae, 9 for encoder)")
    p.add_argument("--kl-weight", type=float, default=1e-4, help="VAE: weight of the per-element KL")
    p.add_argument("--object-weight", type=float, default=0.0, help="VAE: extra loss weight of the object's pixels")
    p.add_argument("--edge-weight", type=float, default=0.0, help="VAE: weight of an L1 loss on spatial gradients")
    p.add_argument(
        "--adv-weight", type=float, default=0.0,
        help="VAE: adversarial term (patch discriminator, hinge), its gradient at the decoder's last layer this many "
        "times the reconstruction's (0: none)",
    )  # fmt: skip
    p.add_argument("--base-dim", type=int, default=8, help="VAE: base channel width (AutoencoderKLWan base_dim)")
    p.add_argument(
        "--spatial-factor", type=int, default=8, choices=sorted(VAE_LEVELS),
        help="VAE: pixels per latent cell (8: Wan2.1's geometry; 4: one level fewer, the shipped embedded VAE)",
    )  # fmt: skip
    p.add_argument("--init", default=None, help="start from this trained VAE or encoder (.safetensors), not random")
    p.add_argument("--decoder-only", action="store_true", help="VAE: train only the decoder of --init (latents kept)")
    p.add_argument(
        "--decoder-base-dim", type=int, default=0,
        help="VAE with --init --decoder-only: train a new decoder of this width instead (0: fine-tune --init's own)",
    )  # fmt: skip
    p.add_argument("--aux-weight", type=float, default=0.0, help="encoder: weight of the attribute and grounding heads")
    p.add_argument(
        "--recolor", type=float, default=0.0,
        help="encoder: share of clips drawn in an off-palette colour (lab.world.off_palette_rgb) that train the shape, "
        "background, position and motion heads only (0: none)",
    )  # fmt: skip
    add_dataclass_args(p, TrainConfig)
    args = p.parse_args(argv)
    args.frames = args.frames or (5 if args.part == "vae" else 9)
    return args


if __name__ == "__main__":
    main(parse_args())
