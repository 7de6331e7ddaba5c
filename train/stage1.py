"""Stage 1 (paper Sec. 3.2): train the semantic compressor jointly with the latent generator, which sees the
compressed plan z_sem in context ([z_t, z_sem] along the token axis).

One CPU or GPU:
    python train/stage1.py --data cache --out runs/stage1 --config tiny --max-steps 200
Many GPUs / nodes (accelerate configs in train/configs/, see train/README.md):
    accelerate launch --config_file train/configs/ddp.yaml train/stage1.py --data cache --out runs/stage1 \
        --init-wan Wan2.1-T2V-1.3B-Diffusers --mixed-precision bf16 --gradient-checkpointing --resume

Per batch: z_sem = compressor(feats).sample(); plan noise of strength U(0, plan_noise_max) per sample (inference
adds a fixed PipelineConfig.plan_noise inside that range); caption dropout; loss = flow loss + kl_weight * KL.
Export: RUN/stage1_bundle.safetensors (train.export.load_stage1 rebuilds it; the pipeline takes its parts).
`--no-plan` trains the same latent generator without any plan (the paper's Base-CT / Base-CT-Swin baselines): its
export is a plain `latent_generator` checkpoint, RUN/latent_generator.safetensors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, ""):  # `python train/stage1.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint, split_prefix  # noqa: E402
from semanticgen_core.compressor import SemanticCompressor, add_plan_noise  # noqa: E402
from semanticgen_core.config import DiTConfig, SemanticSpec, VideoSpec, get_dit_config  # noqa: E402
from semanticgen_core.dit import SemanticGenDiT  # noqa: E402
from train.data import CachedLatentDataset, cache_dims, read_cache_info  # noqa: E402
from train.export import load_stage1, save_stage1, write_sample  # noqa: E402
from train.finetune import apply_lora_mode, export_with_lora, init_from, new_layers  # noqa: E402
from train.loop import (  # noqa: E402
    Task,
    TrainConfig,
    add_run_args,
    check_fits,
    exit_status,
    flow_matching_loss,
    load_sample_vae,
    stage_settings,
    train,
)
from train.utils import from_args  # noqa: E402

NO_PLAN_EXPORT = "latent_generator.safetensors"  # --no-plan export name


class Stage1Model(nn.Module):
    """Semantic compressor + latent generator, trained jointly (paper Fig. 3b)."""

    def __init__(self, lat_generator, compressor, kl_weight=1e-3, plan_noise_max=0.2, time_sampling="logit_normal",
                 time_shift=1.0, window=0, object_weight=0.0):  # fmt: skip
        super().__init__()
        self.object_weight = object_weight  # latent cells of the cache's fg_mask weigh 1 + object_weight
        self.lat_generator, self.compressor = lat_generator, compressor
        self.window = window or None  # shifted-window attention over this many latent frames (None: full)
        self.kl_weight, self.plan_noise_max = kl_weight, plan_noise_max
        self.time_sampling, self.time_shift = time_sampling, time_shift

    def forward(self, batch: dict, generator: torch.Generator):
        """batch: latents [B, C, T, H, W], sem_feats [B, d, T_s, H_s, W_s], ctx [B, S, D] (or [B, G, S, D] with
        lat_segments [B, T]: per-segment captions; fg_mask [B, T, H, W] with --object-weight) -> (loss, logs)."""
        ew = 1.0 + self.object_weight * batch["fg_mask"][:, None] if self.object_weight else None  # [B, 1, T, H, W]
        if self.compressor is None:  # --no-plan: the baseline without semantics
            fm = flow_matching_loss(self.lat_generator, batch["latents"], batch["ctx"], generator, self.time_sampling,
                                    self.time_shift, None, self.window, batch.get("lat_segments"), ew)  # fmt: skip
            return fm, {"flow": fm.detach()}
        plan = self.compressor(batch["sem_feats"])  # Gaussian over [B, k, T_s, H_s, W_s]
        z_sem = plan.sample(generator)
        # RAE-style augmentation, strength per sample: the generator learns to read noisy plans, as at inference
        strength = torch.rand(z_sem.shape[0], generator=generator) * self.plan_noise_max  # [B]
        z_sem = add_plan_noise(z_sem, strength.to(z_sem.device), generator)
        fm = flow_matching_loss(
            self.lat_generator,
            batch["latents"],
            batch["ctx"],
            generator,
            self.time_sampling,
            self.time_shift,
            z_sem,
            self.window,
            batch.get("lat_segments"),
            ew,
        )
        kl = plan.kl().mean()
        return fm + self.kl_weight * kl, {"flow": fm.detach(), "kl": kl.detach()}


def build_model(args: argparse.Namespace, info: dict, cfg: TrainConfig) -> Stage1Model:
    """Compressor (d -> k) and latent generator (Wan2.1 weights or a config) fitted to the cache."""
    if args.init and (args.init_wan or args.no_plan):
        raise SystemExit("--init (a stage-1 bundle) goes with neither --init-wan nor --no-plan")
    if args.freeze_compressor and not (args.init and not args.passthrough):
        raise SystemExit("--freeze-compressor keeps a trained compressor: give --init BUNDLE (and no --passthrough)")
    dims = cache_dims(info)
    compressor = None
    if not args.no_plan:
        compressor = SemanticCompressor(dims["sem"], args.k, args.compressor_hidden or None, args.passthrough)
    k = compressor.out_dim if compressor is not None else 0
    if args.init_wan:
        lat = SemanticGenDiT.from_wan_pretrained(args.init_wan, sem_channels=k)
    else:
        lat = SemanticGenDiT(get_dit_config(args.config, sem_channels=k))
    check_fits(lat.config, dims["latent"], dims["text"], f"latent generator ({args.init_wan or args.config})")
    if args.init:  # fine-tune an earlier bundle: its latent generator and compressor
        init = load_stage1(args.init)
        init_from(lat, init.lat_generator, f"--init {args.init}: latent generator")
        init_from(compressor, init.compressor, f"--init {args.init}: compressor")
    if args.freeze_compressor:  # the plan space is kept, so the bundle's semantic generator (stage 2) still fits it
        compressor.requires_grad_(False)
    if cfg.lora_rank:  # the compressor is a separate module: always fully trained
        counts = apply_lora_mode(lat, cfg.lora_rank, cfg.lora_alpha, cfg.base_dtype, new_layers(lat))
        print(f"LoRA mode: {counts['trainable']:,} trainable, {counts['frozen']:,} frozen in the latent generator")
    return Stage1Model(lat, compressor, args.kl_weight, args.plan_noise_max, cfg.time_sampling, cfg.time_shift,
                       args.window, args.object_weight)  # fmt: skip


def main(args: argparse.Namespace) -> dict:
    cfg = from_args(TrainConfig, args)
    info = read_cache_info(args.data)
    if args.object_weight and not all("fg_mask" in e["shapes"] for e in info["entries"].values()):
        raise SystemExit(f"--object-weight {args.object_weight}: the cache {info['dir']} holds no fg_mask for some "
                         "samples; prepare it with --foreground-mask row-median, or drop --object-weight")  # fmt: skip
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(args, info, cfg)
    video = VideoSpec.from_dict(info["video"])
    train_meta = {"stage": "stage1", "kl_weight": args.kl_weight, "plan_noise_max": args.plan_noise_max}
    if args.no_plan:
        return _train_without_plan(args, cfg, model, video, train_meta)
    semantic = SemanticSpec.from_dict({**info["semantic"], "compressed_dim": model.compressor.out_dim})

    def export(state: dict, path: Path, step: int) -> None:
        cc = model.compressor.config
        meta = {**train_meta, "step": step}
        lora = path.with_name("stage1_lora.safetensors")  # LoRA mode: the adapters alone, for the Wan base
        state = export_with_lora(state, lora, cfg.export_dtype, step=step, rank=cfg.lora_rank)
        save_stage1(path, state, model.lat_generator.config, cc, semantic, video, cfg.export_dtype, train=meta)

    vae = load_sample_vae(args.sample_vae) if cfg.sample_every else None  # at start: a wrong path fails early

    def sample(export_path: Path, stem: Path) -> None:
        data = CachedLatentDataset(args.data)
        write_sample(stem, load_stage1(export_path), data[0], data.null_ctx, vae=vae, steps=args.sample_steps)

    needs = ("latents", "sem_feats", "ctx")
    task = Task("stage1", model, needs, "stage1_bundle.safetensors", export, sample, stage_settings(args, cfg))
    return train(task, cfg, args.data, args.out, args.resume)


def _train_without_plan(args, cfg: TrainConfig, model: Stage1Model, video: VideoSpec, train_meta: dict) -> dict:
    """--no-plan: train the latent generator alone; export RUN/latent_generator.safetensors (load_latent_generator)."""

    def export(state: dict, path: Path, step: int) -> None:
        meta = {**train_meta, "stage": "stage1-no-plan", "step": step}
        save_checkpoint(path, split_prefix(state, "lat_generator"), "latent_generator",
                        model.lat_generator.config.to_dict(), cfg.export_dtype, video=video.to_dict(), train=meta)  # fmt: skip

    task = Task("stage1", model, ("latents", "ctx"), NO_PLAN_EXPORT, export, None, stage_settings(args, cfg))
    return train(task, cfg, args.data, args.out, args.resume)


def load_latent_generator(path, device="cpu") -> tuple[SemanticGenDiT, VideoSpec]:
    """(latent generator without plan input, VideoSpec of its training data) of a --no-plan export."""
    tensors, header = load_checkpoint(path, "latent_generator", device)
    if header["role"] != "latent_generator":
        raise CheckpointError(f"{path}: holds a {header['role']}, but a --no-plan latent_generator was expected")
    model = SemanticGenDiT(DiTConfig.from_dict(header["config"]))
    model.load_state_dict({k: v.float() for k, v in tensors.items()})
    return model.eval().to(device), VideoSpec.from_dict(header.get("video", {}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, dit_preset="tiny")
    parser.add_argument("--k", type=int, default=8, help="compressed plan dim (paper: 8 best of 2048 / 64 / 8)")
    parser.add_argument("--passthrough", action="store_true", help="no compression (the paper's ablation)")
    parser.add_argument(
        "--no-plan", action="store_true",
        help="train the latent generator without any plan (the paper's Base-CT / Base-CT-Swin baselines)",
    )  # fmt: skip
    parser.add_argument("--compressor-hidden", type=int, default=0, help="compressor MLP width (0: automatic)")
    parser.add_argument("--kl-weight", type=float, default=1e-3, help="weight of the KL(plan || N(0, I)) term")
    parser.add_argument(
        "--object-weight", type=float, default=0.0,
        help="weigh the flow loss of latent cells under the cache's fg_mask (prepare --foreground-mask) 1 + this: in "
        "the shapes lab the object covers a few percent of the frame, and its colour and shape barely move the loss",
    )  # fmt: skip
    parser.add_argument(
        "--freeze-compressor", action="store_true",
        help="with --init: train the latent generator alone; the plan space, and so the semantic generator trained "
        "on it, stay valid",
    )  # fmt: skip
    parser.add_argument("--plan-noise-max", type=float, default=0.2, help="plan noise strength drawn U(0, max)")
    parser.add_argument(
        "--window", type=int, default=0,
        help="shifted-window attention over this many latent frames, as long videos are sampled (0: full attention;"
        " clips no longer than the window attend fully either way)",
    )  # fmt: skip
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(exit_status(main(parse_args())))  # 130 / 143 after SIGINT / SIGTERM
