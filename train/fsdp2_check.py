"""FSDP2 on CPUs (gloo): shard the stage-1 model per DiT block with torch's `fully_shard`, train, save a sharded
state with torch.distributed.checkpoint (DCP), and resume it on another number of processes.

    torchrun --nproc_per_node 2 train/fsdp2_check.py --out RUN --steps 2            # train 2 steps, save
    torchrun --nproc_per_node 1 train/fsdp2_check.py --out RUN --steps 1 --resume   # 1 process continues

Why a separate script: accelerate turns FSDP on only for accelerator process groups (MULTI_GPU, ...); on CPUs it
launches DDP instead (accelerate/state.py), so `accelerate launch --config_file train/configs/fsdp.yaml` cannot be
started here. This script runs the same sharding on the same model (tiny config, LoRA mode: frozen base and trained
adapters and new layers in one block) without accelerate. Every sample has fixed noise and times, and rank r of W
takes samples r, r + W, ...; FSDP averages the gradients, so any process count computes the same full-batch step and
the weights must match a single-process run. After each run the gathered full state is written to
RUN/full_<steps>.safetensors (main process).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn

if __package__ in (None, ""):  # `torchrun train/fsdp2_check.py`: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from semanticgen_core import flow  # noqa: E402
from semanticgen_core.compressor import SemanticCompressor  # noqa: E402
from semanticgen_core.config import DIT_CONFIGS  # noqa: E402
from semanticgen_core.dit import SemanticGenDiT  # noqa: E402
from train.finetune import apply_lora_mode  # noqa: E402
from train.stage1 import Stage1Model  # noqa: E402

SAMPLES = 4


def build() -> Stage1Model:
    """The tiny stage-1 model in LoRA mode, the same on every process (seeded)."""
    torch.manual_seed(0)
    lat, comp = SemanticGenDiT(DIT_CONFIGS["tiny"]), SemanticCompressor(16, 8)
    apply_lora_mode(lat, 4, 0.0, "fp32", ["sem_embedding"])
    return Stage1Model(lat, comp)


def batch(indices: list[int]) -> dict:
    """Samples with fixed content, noise and time (a function of the sample index only)."""
    out = []
    for i in indices:
        g = torch.Generator().manual_seed(100 + i)
        out.append({"x0": torch.randn(16, 2, 4, 4, generator=g), "feats": torch.randn(16, 1, 2, 2, generator=g),
                    "ctx": torch.randn(5, 24, generator=g), "eps": torch.randn(16, 2, 4, 4, generator=g),
                    "t": torch.rand((), generator=g)})  # fmt: skip
    return {k: torch.stack([s[k] for s in out]) for k in out[0]}


class Objective(nn.Module):
    """Flow loss of the latent generator with the compressor's mean plan in context, summed over the samples: one
    forward that is the FSDP root (its parameters: the compressor and the generator outside the blocks)."""

    def __init__(self, model: Stage1Model):
        super().__init__()
        self.model = model

    def forward(self, b: dict) -> torch.Tensor:
        z_sem = self.model.compressor(b["feats"]).mode()
        v = self.model.lat_generator(flow.interpolate(b["x0"], b["eps"], b["t"]), b["t"], b["ctx"], sem=z_sem)
        return ((v - (b["eps"] - b["x0"])) ** 2).flatten(1).mean(1).sum()


def train_steps(objective: Objective, opt, steps: int, rank: int, world: int) -> None:
    mine = batch(list(range(rank, SAMPLES, world)))
    for _ in range(steps):
        (objective(mine) * world / SAMPLES).backward()  # FSDP averages over ranks: the full-batch mean
        opt.step()
        opt.zero_grad(set_to_none=True)


def shard(objective: Objective, mesh) -> None:
    """One FSDP unit per LoRA adapter (its own dtype: a bf16 base would not mix with them), per DiT block, and the
    rest at the root."""
    from torch.distributed.fsdp import fully_shard

    from semanticgen_core.lora import LoRAAdapter

    for m in objective.modules():
        if isinstance(m, LoRAAdapter):
            fully_shard(m, mesh=mesh)
    for block in objective.model.lat_generator.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(objective, mesh=mesh)


def main(args) -> None:
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = Objective(build())
    shard(model, init_device_mesh("cpu", (world,)))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    out, step = Path(args.out), 0
    if args.resume:  # DCP reshards: the state may come from any number of processes
        state = {"model": get_state_dict(model, opt)[0], "optim": get_state_dict(model, opt)[1]}
        dcp.load(state, checkpoint_id=str(out / "dcp"))
        set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
        step = int((out / "dcp_step.txt").read_text())
    train_steps(model, opt, args.steps, rank, world)
    step += args.steps
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(out / "dcp"))
    full, _ = get_state_dict(model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        (out / "dcp_step.txt").write_text(str(step))
        save_file({k: v.contiguous() for k, v in full.items()}, str(out / f"full_{step}.safetensors"))
        local = sum(p.to_local().numel() for p in model.parameters())
        print(f"FSDP2 world {world}: step {step}, rank 0 holds {local} of {sum(v.numel() for v in full.values())} "
              "parameters", flush=True)  # fmt: skip
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the DCP state and the gathered full weights")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps to run")
    p.add_argument("--resume", action="store_true", help="continue from the DCP state in --out")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main(p.parse_args())
    # every rank has passed the barrier and left the process group; skip the interpreter's teardown, where gloo's
    # threads occasionally abort the process ("terminate called without an active exception", exit -6) after the
    # work is done and written (seen once in a CI run, after "FSDP2 world 2: step 2" was printed)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
