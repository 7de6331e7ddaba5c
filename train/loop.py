"""The one training loop of both stages: accelerate (DDP / FSDP), mixed precision, gradient accumulation, EMA, LR
warmup, atomic resumable training states, inference exports, trackers, a loss curve and samples.

A stage plugs in a `Task`: an nn.Module whose `forward(batch, generator)` returns (loss, logs), the cached tensors
it reads, and how to export and sample. The run folder:
    RUN/config.json            TrainConfig and stage settings of each launch (JSON; args are never pickled)
    RUN/states/step-00000100/  the full training state, written atomically (see state.py)
    RUN/<export_name>          the inference export: EMA weights, self-describing safetensors
    RUN/loss.png  RUN/log.jsonl  RUN/logs/ (TensorBoard, when installed)  RUN/samples/  RUN/replicas.json
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from accelerate import Accelerator, DistributedType
from accelerate.utils import ProjectConfiguration, is_tensorboard_available
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from semanticgen_core import flow
from train.data import BucketBatchSampler, CachedLatentDataset, collate
from train.state import (
    BadState,
    StopFlag,
    ema_state_dict,
    latest_state,
    load_training_state,
    local_part,
    newest_intact_state,
    remove_partial_states,
    replica_hashes,
    save_training_state,
    set_aside_newer_states,
    trainable,
    update_ema,
    verify_state,
)
from train.utils import add_dataclass_args, atomic_write_text, opt, plot_losses


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping shared by both stages (each field's text is also its --flag help)."""

    lr: float = opt(1e-4, "peak AdamW learning rate")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    warmup_steps: int = opt(100, "linear LR warmup over this many optimizer steps, then constant")
    decay_steps: int = opt(0, "linear LR decay to 0 over the last N steps before max_steps (0: no decay)")
    max_steps: int = opt(1000, "optimizer steps to train to (the counter continues across resumes)")
    batch_size: int = opt(1, "samples per process per micro-batch (one shape bucket per batch)")
    grad_accum: int = opt(1, "micro-batches per optimizer step (gradient accumulation)")
    mixed_precision: str = opt("", "no | fp16 | bf16 autocast, weights stay fp32 (empty: the accelerate config's)")
    grad_clip: float = opt(1.0, "max global gradient norm (0: no clipping)")
    ema_decay: float = opt(0.999, "EMA decay of the trainable weights, warmed up as min(decay, (1+n)/(10+n))")
    ckpt_every: int = opt(500, "save the training state and the export every N steps (and on SIGTERM/SIGINT)")
    keep_states: int = opt(2, "training states kept in RUN/states (older ones are deleted)")
    sample_every: int = opt(0, "write a sample through the pipeline every N steps (0: never)")
    log_every: int = opt(10, "log to trackers, log.jsonl and the loss curve every N steps")
    seed: int = opt(0, "seed of the init, the data order and the training noise")
    caption_dropout: float = opt(0.1, "probability of replacing a caption by the empty prompt (for CFG)")
    gradient_checkpointing: bool = opt(
        False, "recompute DiT blocks in backward: less memory, about a third more compute"
    )
    time_sampling: str = opt("logit_normal", "training time distribution: logit_normal | uniform")
    time_shift: float = opt(1.0, "Wan timestep shift applied to the sampled training times (1: none)")
    num_workers: int = opt(0, "DataLoader worker processes")
    export_dtype: str = opt("fp32", "storage dtype of the inference export: fp32 | bf16 | fp16")
    lora_rank: int = opt(0, "LoRA mode: freeze the Wan base, train rank-N adapters + the new layers (0: full)")
    lora_alpha: float = opt(0.0, "LoRA alpha (scale alpha / rank; 0: alpha = rank)")
    base_dtype: str = opt("fp32", "LoRA mode: storage dtype of the frozen base weights, fp32 | bf16 (bf16 needs "
                          "--mixed-precision bf16)")  # fmt: skip

    def __post_init__(self):
        choices = {"mixed_precision": ("", "no", "fp16", "bf16"), "time_sampling": ("logit_normal", "uniform")}
        choices["export_dtype"] = ("fp32", "bf16", "fp16")
        choices["base_dtype"] = ("fp32", "bf16")
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r}; choose one of {allowed}")
        for name in ("max_steps", "batch_size", "grad_accum", "ckpt_every", "keep_states", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lora_rank < 0:
            raise ValueError(f"TrainConfig.lora_rank must be >= 0, got {self.lora_rank}")
        if self.base_dtype != "fp32" and (self.lora_rank == 0 or self.mixed_precision != "bf16"):
            raise ValueError("base_dtype bf16 stores the frozen base of LoRA mode: it needs lora_rank > 0 and "
                             "mixed_precision bf16 (autocast runs its matmuls)")  # fmt: skip


@dataclass
class Task:
    """What a stage plugs into the loop."""

    name: str  # "stage1" | "stage2": tracker project and run config
    model: nn.Module  # forward(batch, generator) -> (loss, {name: scalar tensor}); trainables have requires_grad
    needs: tuple[str, ...]  # cached tensors the model reads ("latents", "sem_feats", "ctx")
    export_name: str  # file name of the inference export in RUN
    export: Callable[[dict, Path, int], None]  # (full EMA state dict, path, step): writes the inference export
    sample: Callable[[Path, Path], None] | None = None  # (export path, output stem): writes a sample (main only)
    settings: dict = field(default_factory=dict)  # stage arguments, recorded in RUN/config.json
    dataset: object = None  # a dataset with buckets() instead of the cache at `data` (pretraining on rendered data)


# ----------------------------------------------------------------------------------------------------------------
# Objective helpers (used by the stage modules)
# ----------------------------------------------------------------------------------------------------------------


def flow_matching_loss(dit, x0, ctx, generator, time_sampling="logit_normal", time_shift=1.0, sem=None, window=None,
                       segments=None, element_weight=None):  # fmt: skip
    """Rectified-flow loss of `dit` on clean x0 [B, C, T, H, W] (flow.py convention); randomness from `generator`.

    ctx: [B, S, D], or [B, G, S, D] per-segment captions with segments [B, T] (the segment of each frame of x0).
    element_weight: optional weights broadcast to x0 (e.g. [B, 1, T, H, W]), see flow.flow_loss."""
    t = flow.sample_time(x0.shape[0], time_sampling, time_shift, generator=generator, device=generator.device)
    t = t.to(x0.device)  # [B]
    eps = flow.randn(x0.shape, generator, x0.device, x0.dtype)
    extra = {"segments": segments} if ctx.ndim == 4 else {}
    v = dit(flow.interpolate(x0, eps, t), t, ctx, sem=sem, window=window, **extra)
    return flow.flow_loss(v, x0, eps, element_weight=element_weight)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of cfg.lr at optimizer step `step`: linear warmup, constant, optional linear decay to the end."""
    factor = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    if cfg.decay_steps > 0:
        factor *= min(1.0, max(0.0, (cfg.max_steps - step) / cfg.decay_steps))
    return factor


def check_fits(cfg, channels: int, text_dim: int, what: str) -> None:
    """A DiTConfig must generate `channels` and read text features of `text_dim` (the cache's); name both sides."""
    if (cfg.in_channels, cfg.out_channels, cfg.text_dim) != (channels, channels, text_dim):
        raise SystemExit(
            f"{what}: in/out channels {cfg.in_channels}/{cfg.out_channels} and text_dim {cfg.text_dim}, but the cache "
            f"has {channels} channels and text features of size {text_dim}; pick a matching --config"
        )


def drop_captions(ctx: torch.Tensor, null_ctx: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Replace each caption of ctx [B, S, D] by the empty prompt's features null_ctx [S0, D] with probability p.

    Per-segment captions ctx [B, G, S, D]: a dropped sample loses all its segments (the empty prompt in each)."""
    if p <= 0:
        return ctx
    # important! this teaches the unconditional velocity that classifier-free guidance subtracts at inference
    drop = (torch.rand(ctx.shape[0], generator=generator, device=generator.device) < p).to(ctx.device)
    s = max(ctx.shape[-2], null_ctx.shape[0])
    ctx = F.pad(ctx, (0, 0, 0, s - ctx.shape[-2]))
    null = F.pad(null_ctx, (0, 0, 0, s - null_ctx.shape[0])).to(ctx)
    drop = drop.reshape(-1, *[1] * (ctx.ndim - 1))
    return torch.where(drop, null.expand(ctx.shape[1:]) if ctx.ndim == 4 else null[None], ctx)


def pick_captions(ctx: torch.Tensor, alts: torch.Tensor, n: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """ctx with each sample's caption replaced by one of its n alternatives alts [B, V, S, D], drawn uniformly
    (n = 0: ctx kept). ctx is [B, S, D], or [B, G, S, D] with per-segment captions (a one-caption sample's is g = 0)."""
    u = torch.rand(n.shape[0], generator=generator, device=generator.device).to(n.device)
    idx = (u * n.clamp(min=1)).long().clamp(max=alts.shape[1] - 1)
    s = max(ctx.shape[-2], alts.shape[-2])
    ctx, alts = F.pad(ctx, (0, 0, 0, s - ctx.shape[-2])).clone(), F.pad(alts, (0, 0, 0, s - alts.shape[-2]))
    chosen = alts[torch.arange(len(n), device=alts.device), idx.to(alts.device)].to(ctx)  # [B, S, D]
    has = n.to(ctx.device) > 0
    if ctx.ndim == 4:
        ctx[has, 0] = chosen[has]
    else:
        ctx[has] = chosen[has]
    return ctx


def _batches(loader: DataLoader, sampler: BucketBatchSampler, ts: dict):
    """Endless one-shape batches from the data position in ts (epoch, batch), advancing it as batches are taken."""
    while True:
        sampler.set_position(ts["epoch"], ts["batch"])
        for batch in loader:
            ts["batch"] += sampler.world_size
            yield batch
        ts["epoch"], ts["batch"] = ts["epoch"] + 1, 0


# ----------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------


def train(task: Task, cfg: TrainConfig, data: str | Path, out: str | Path, resume: str | None = None) -> dict:
    """Train `task` on the cache `data` (or `task.dataset`) into run folder `out`.

    resume: None, "auto" (latest state) or a state path.
    """
    run = Path(out)
    project = ProjectConfiguration(project_dir=str(run), logging_dir=str(run / "logs"))
    accelerator = Accelerator(
        mixed_precision=cfg.mixed_precision or None,  # None: from `accelerate launch` / its config file
        gradient_accumulation_steps=cfg.grad_accum,
        log_with="tensorboard" if is_tensorboard_available() else None,
        project_config=project,
    )
    main, rank = accelerator.is_main_process, accelerator.process_index
    if int(os.environ.get("WORLD_SIZE", "1")) != accelerator.num_processes:  # else: N independent copies of one run
        raise SystemExit(
            f"launched as {os.environ['WORLD_SIZE']} processes, but accelerate runs {accelerator.num_processes}; "
            "on CPUs set ACCELERATE_USE_CPU=1 (see train/README.md)"
        )

    # data: the sampler shards by rank itself (not accelerator.prepare), so the data position is exact on resume
    dataset = task.dataset if task.dataset is not None else CachedLatentDataset(data, task.needs)
    sampler = BucketBatchSampler(dataset.buckets(), cfg.batch_size, cfg.seed, rank, accelerator.num_processes)
    # its own generator: creating an iterator would otherwise draw from the global RNG (and resume mid-epoch adds one)
    loader_rng = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers, collate_fn=collate,
                        generator=loader_rng)  # fmt: skip
    null_ctx = getattr(dataset, "null_ctx", None)  # empty-prompt features for caption dropout (cached data only)
    null_ctx = null_ctx.to(accelerator.device) if null_ctx is not None else None

    # model, optimizer, warmup schedule (stepped by us once per optimizer step, whatever the number of processes)
    model = task.model
    for m in model.modules():
        if hasattr(m, "gradient_checkpointing"):
            m.gradient_checkpointing = cfg.gradient_checkpointing
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], cfg.lr, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg))
    model, optimizer = accelerator.prepare(model, optimizer)
    ema = {k: local_part(p).detach().float().clone() for k, p in trainable(accelerator.unwrap_model(model)).items()}
    generator = torch.Generator().manual_seed(cfg.seed * 1_000_003 + rank)  # CPU: same noise on any device

    # resume from the newest intact state (or refuse to overwrite a run that has states)
    if main:
        remove_partial_states(run)
    accelerator.wait_for_everyone()
    if resume is None and latest_state(run) is not None:
        raise SystemExit(f"{run} already has training states; pass --resume to continue it, or choose a new --out")
    found = _state_to_resume(accelerator, run, resume)
    ts = {"step": 0, "epoch": 0, "batch": 0, "losses": [], "resumed_from": []}
    if found is not None:
        ts = load_training_state(accelerator, found, model, optimizer, ema, generator)
        scheduler.load_state_dict(ts["scheduler"])
        # the rate and its schedule come from this command line (a later phase may train with another --lr)
        scheduler.base_lrs = [cfg.lr] * len(optimizer.param_groups)
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * lr_factor(scheduler.last_epoch, cfg)
        ts["batch"] -= ts["batch"] % accelerator.num_processes  # a new world size replays < world batches
        ts["resumed_from"].append(ts["step"])
        accelerator.step = ts["step"] * cfg.grad_accum  # aligns accelerate's accumulation counter
        if main:
            set_aside_newer_states(run, ts["step"])
            _truncate_log(run / "log.jsonl", ts["step"])  # the steps after it are trained (and logged) again
            print(f"resumed from {found} at step {ts['step']}", flush=True)
        accelerator.wait_for_everyone()
    ts.update(world=accelerator.num_processes, distributed=str(accelerator.distributed_type))
    ts["ddp"] = accelerator.num_processes > 1 and accelerator.distributed_type != DistributedType.FSDP
    if main:
        runs = json.loads((run / "config.json").read_text()) if (run / "config.json").is_file() else []
        runs.append({"task": task.name, "start_step": ts["step"], "train": asdict(cfg), "stage": task.settings})
        atomic_write_text(run / "config.json", json.dumps(runs, indent=1))
    accelerator.init_trackers(task.name, config={k: v for k, v in asdict(cfg).items() if not isinstance(v, list)})

    stop, last_saved, export_path = StopFlag(), ts["step"] if found else -1, run / task.export_name
    stop.install()
    batches = _batches(loader, sampler, ts)
    pbar = tqdm(total=cfg.max_steps, initial=ts["step"], desc=task.name, disable=not main, dynamic_ncols=True)
    model.train()
    try:
        while ts["step"] < cfg.max_steps:
            # 1. one optimizer step over grad_accum micro-batches
            sums, grad_norm = {}, None
            for _ in range(cfg.grad_accum):
                batch = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in next(batches).items()}
                if "ctx_alts" in batch:  # a caption list per video (prepare): this step's caption of each
                    batch["ctx"] = pick_captions(batch["ctx"], batch.pop("ctx_alts"), batch.pop("n_alts"), generator)
                if null_ctx is not None and "ctx" in batch:
                    batch["ctx"] = drop_captions(batch["ctx"], null_ctx, cfg.caption_dropout, generator)
                with accelerator.accumulate(model):
                    loss, logs = model(batch, generator)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.grad_clip > 0:
                        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                for k, v in {"loss": loss, **logs}.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach()) / cfg.grad_accum
            lr = optimizer.param_groups[0]["lr"]  # the rate this step used
            if not optimizer.step_was_skipped:
                scheduler.step()
            ts["step"] += 1
            step = ts["step"]
            update_ema(ema, trainable(accelerator.unwrap_model(model)), min(cfg.ema_decay, (1 + step) / (10 + step)))

            # 2. agree across ranks on the mean losses and on whether a signal asked us to stop
            names = sorted(sums)
            stats = torch.tensor([sums[k] for k in names] + [float(stop.signal is not None)], device=accelerator.device)
            stats = accelerator.reduce(stats, "sum").cpu()
            means = {k: float(stats[i]) / accelerator.num_processes for i, k in enumerate(names)}
            stopping, done = bool(stats[-1] > 0), step >= cfg.max_steps
            pbar.update(1)
            pbar.set_postfix(loss=f"{means['loss']:.4f}", lr=f"{lr:.2e}")

            # 3. logs
            if step % cfg.log_every == 0 or done or stopping:
                record = {"step": step, "lr": lr, **means}
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                ts["losses"].append([step, means["loss"]])
                accelerator.log(record, step=step)
                if main:
                    with open(run / "log.jsonl", "a") as f:
                        f.write(json.dumps(record) + "\n")

            # 4. training state, export, loss curve; a sample
            if step % cfg.ckpt_every == 0 or done or stopping:
                ts["scheduler"] = scheduler.state_dict()
                save_training_state(accelerator, run, model, optimizer, ema, generator, ts, cfg.keep_states)
                last_saved = step
                _export(accelerator, task, model, ema, export_path, step)
                if main:
                    plot_losses(ts["losses"], run / "loss.png", f"{task.name} loss")
            if cfg.sample_every and step % cfg.sample_every == 0 and task.sample is not None:
                if last_saved != step:
                    _export(accelerator, task, model, ema, export_path, step)
                if main:
                    task.sample(export_path, run / "samples" / f"step-{step:08d}")
                accelerator.wait_for_everyone()
            if stopping:
                if main:
                    tqdm.write(f"{stop.signal or 'a signal on another rank'}: saved step {step} to {run}; exiting")
                break
    finally:
        pbar.close()
        stop.restore()
    hashes = replica_hashes(accelerator, model, ema) if accelerator.distributed_type != DistributedType.FSDP else []
    if main and hashes:
        atomic_write_text(run / "replicas.json", json.dumps({"step": ts["step"], "sha256": hashes}))
        if len(set(hashes)) > 1:
            raise RuntimeError(f"processes ended with different weights: {hashes}")
    accelerator.wait_for_everyone()  # no rank leaves (closing its gloo connections) while another still works
    accelerator.end_training()
    return {"step": ts["step"], "export": export_path, "state": latest_state(run), "stopped_by": stop.signal}


def _state_to_resume(accelerator, run: Path, resume: str | None) -> Path | None:
    """The state folder to resume from: the newest intact one ("auto"; the main process sets bad ones aside, naming
    each) or the one given (checked on every rank); None to start fresh."""
    if resume is None:
        return None
    if resume != "auto":
        folder = Path(resume)
        if not (folder / "trainer_state.json").is_file():
            raise SystemExit(f"{folder}: not a training state folder (no trainer_state.json)")
        try:
            verify_state(folder)
        except BadState as err:
            intact = "; --resume alone takes the newest intact state" if latest_state(run) else ""
            raise SystemExit(f"cannot resume from {folder}: {err}{intact}") from err
        return folder
    if accelerator.is_main_process:
        had_states = latest_state(run) is not None
        if newest_intact_state(run) is None and had_states:
            raise SystemExit(f"{run / 'states'}: no intact training state to resume from (see the messages above)")
    accelerator.wait_for_everyone()
    return latest_state(run)


def _truncate_log(path: Path, step: int) -> None:
    """Drop log.jsonl records after `step` (written before an interruption, about to be trained again)."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines()
    keep = [line for line in lines if line.strip() and json.loads(line)["step"] <= step]
    if len(keep) != len(lines):
        atomic_write_text(path, "".join(line + "\n" for line in keep))


def exit_status(result: dict) -> int:
    """Process exit status of a training run: 130 after SIGINT, 143 after SIGTERM (so `stage1 && stage2` stops)."""
    return {"SIGINT": 130, "SIGTERM": 143}.get(result.get("stopped_by") or "", 0)


def _export(accelerator, task: Task, model, ema, path: Path, step: int) -> None:
    """Gather the EMA weights (all ranks) and write the inference export (main process)."""
    state = ema_state_dict(accelerator, model, ema)
    if accelerator.is_main_process:
        task.export(state, path, step)
    accelerator.wait_for_everyone()


def add_run_args(parser, dit_preset: str) -> None:
    """Flags both stage scripts share: data, run folder, resume, model init, samples, and every TrainConfig field."""
    parser.add_argument("--data", required=True, help="cache written by train/prepare.py (root or keyed folder)")
    parser.add_argument("--out", required=True, help="run folder: states, exports, logs, loss curve, samples")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="auto",
        default=None,
        help="continue from the latest state in --out (or from the state folder given); fresh if there is none",
    )
    parser.add_argument("--config", default=dit_preset, help="DiT preset or DiTConfig JSON when not --init-wan")
    parser.add_argument("--init-wan", default=None, help="initialise from Wan2.1 T2V weights (folder or .safetensors)")
    parser.add_argument(
        "--init", default=None,
        help="fine-tune: start from an earlier export of this stage (same --config; e.g. the shipped model's, on a new "
        "VAE's latents); a --resume'd state overrides it",
    )  # fmt: skip
    parser.add_argument("--sample-vae", default=None, help="VAE weights to decode samples to mp4 (else: latents)")
    parser.add_argument("--sample-steps", type=int, default=20, help="Euler steps per sample stage")
    add_dataclass_args(parser, TrainConfig)


def stage_settings(args, cfg: TrainConfig) -> dict:
    """The stage's own flags (not TrainConfig fields), for RUN/config.json."""
    return {k: v for k, v in vars(args).items() if k not in asdict(cfg)}


def load_sample_vae(path: str | None):
    """The VAE that decodes samples, or None (samples are then saved as latents)."""
    if not path:
        return None
    from semanticgen_core.vae import load_vae

    return load_vae(path).eval()
