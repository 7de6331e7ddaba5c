"""Stage 2 (paper Sec. 3.3): train the semantic generator on plans z_sem of the frozen stage-1 compressor.

One CPU or GPU:
    python train/stage2.py --data cache --stage1 runs/stage1/stage1_bundle.safetensors --out runs/stage2
Many GPUs / nodes (accelerate configs in train/configs/, see train/README.md):
    accelerate launch --config_file train/configs/ddp.yaml train/stage2.py --data cache \
        --stage1 runs/stage1/stage1_bundle.safetensors --out runs/stage2 \
        --init-wan Wan2.1-T2V-1.3B-Diffusers --mixed-precision bf16 --resume

The encoder features come from the cache (the encoder stays frozen, as in the paper); the compressor is the one in
the stage-1 export, frozen. With --init-wan the Wan2.1 weights are loaded where shapes allow (new input / output
projections for the k-dim plan, 1x1x1 patches). Export: RUN/stage2_semantic_generator.safetensors.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

if __package__ in (None, ""):  # `python train/stage2.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core.checkpoint import check_plan_compatible  # noqa: E402
from semanticgen_core.config import get_dit_config  # noqa: E402
from semanticgen_core.dit import SemanticGenDiT  # noqa: E402
from train.data import CachedLatentDataset, cache_dims, read_cache_info  # noqa: E402
from train.export import Stage1Export, load_stage1, load_stage2, save_stage2, write_sample  # noqa: E402
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


class Stage2Model(nn.Module):
    """Semantic generator trained on the plans of a frozen compressor (paper Fig. 3a)."""

    def __init__(self, sem_generator, compressor, plan="mode", time_sampling="logit_normal", time_shift=1.0):
        super().__init__()
        self.sem_generator = sem_generator
        self.compressor = compressor.requires_grad_(False).eval()
        self.plan, self.time_sampling, self.time_shift = plan, time_sampling, time_shift

    def train(self, mode: bool = True):
        super().train(mode)
        self.compressor.eval()  # frozen: stays in inference mode
        return self

    def forward(self, batch: dict, generator: torch.Generator):
        """batch: sem_feats [B, d, T_s, H_s, W_s], ctx [B, S, D] (or [B, G, S, D] with sem_segments [B, T_s])
        -> (flow loss on z_sem [B, k, T_s, H_s, W_s], logs)."""
        with torch.no_grad():
            dist = self.compressor(batch["sem_feats"])
            z_sem = (dist.mode() if self.plan == "mode" else dist.sample(generator)).float()
        loss = flow_matching_loss(
            self.sem_generator, z_sem, batch["ctx"], generator, self.time_sampling, self.time_shift,
            segments=batch.get("sem_segments"),
        )  # fmt: skip
        return loss, {}


def build_model(args: argparse.Namespace, info: dict, stage1: Stage1Export, cfg: TrainConfig) -> Stage2Model:
    """Semantic generator (Wan2.1 weights where shapes allow, or a config) for the plans of the stage-1 compressor."""
    if args.init and args.init_wan:
        raise SystemExit("--init (a stage-2 export) and --init-wan: give one of them")
    dims, k = cache_dims(info), stage1.compressor.out_dim
    check_plan_compatible(
        dims["sem"], info["semantic"]["kind"], stage1.compressor.in_dim, stage1.semantic.kind,
        f"cache ({info['dir']}) vs stage-1 export ({stage1.path}): ",
    )  # fmt: skip
    if args.init_wan:
        gen = SemanticGenDiT.from_wan_pretrained(args.init_wan, in_channels=k, out_channels=k, patch_size=(1, 1, 1))
    else:
        gen = SemanticGenDiT(get_dit_config(args.config, in_channels=k, out_channels=k, sem_channels=0))
    check_fits(gen.config, k, dims["text"], f"semantic generator ({args.init_wan or args.config})")
    if args.init:  # fine-tune an earlier semantic generator (for the plans of this stage-1 compressor)
        init_from(gen, load_stage2(args.init, stage1).sem_generator, f"--init {args.init}: semantic generator")
    if cfg.lora_rank:  # the k-channel input / output projections are new: fully trained
        counts = apply_lora_mode(gen, cfg.lora_rank, cfg.lora_alpha, cfg.base_dtype, new_layers(gen))
        print(f"LoRA mode: {counts['trainable']:,} trainable, {counts['frozen']:,} frozen in the semantic generator")
    return Stage2Model(gen, stage1.compressor, args.plan, cfg.time_sampling, cfg.time_shift)


def main(args: argparse.Namespace) -> dict:
    cfg = from_args(TrainConfig, args)
    info = read_cache_info(args.data)
    stage1 = load_stage1(args.stage1)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build_model(args, info, stage1, cfg)

    def export(state: dict, path: Path, step: int) -> None:
        meta = {"stage": "stage2", "step": step, "plan": args.plan, "stage1": str(args.stage1)}
        lora = path.with_name("stage2_lora.safetensors")  # LoRA mode: the adapters alone, for the Wan base
        state = export_with_lora(state, lora, cfg.export_dtype, step=step, rank=cfg.lora_rank)
        save_stage2(path, state, model.sem_generator.config, stage1.semantic, cfg.export_dtype, train=meta)

    vae = load_sample_vae(args.sample_vae) if cfg.sample_every else None  # at start: a wrong path fails early

    def sample(export_path: Path, stem: Path) -> None:
        data = CachedLatentDataset(args.data)
        stage2 = load_stage2(export_path, stage1)
        write_sample(stem, stage1, data[0], data.null_ctx, stage2, vae, steps=args.sample_steps)

    name = "stage2_semantic_generator.safetensors"
    task = Task("stage2", model, ("sem_feats", "ctx"), name, export, sample, stage_settings(args, cfg))
    return train(task, cfg, args.data, args.out, args.resume)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_args(parser, dit_preset="tiny-sem")
    parser.add_argument("--stage1", required=True, help="stage-1 export (bundle): the frozen compressor")
    parser.add_argument(
        "--plan", choices=("mode", "sample"), default="mode", help="train on the compressor's mean or on samples"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(exit_status(main(parse_args())))  # 130 / 143 after SIGINT / SIGTERM
