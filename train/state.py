"""Training state: EMA of the trainable weights, RNG states, atomic save / resume of everything, signal handling.

A state folder RUN/states/step-00000100/ holds accelerate's save_state (model.safetensors, optimizer.bin,
random_states_<rank>.pkl), ema_<rank>.safetensors, rng_<rank>.safetensors (training generator, torch / CUDA
generators; numpy and python states as JSON metadata) and trainer_state.json (step, data position, scheduler,
loss history). It is written to a temp folder and renamed, so a kill at any moment leaves the previous state intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import signal
import threading
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DistributedType
from accelerate.utils import gather_object
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from semanticgen_core.checkpoint import atomic_save_file
from train.utils import atomic_write_text


def local_part(t: torch.Tensor) -> torch.Tensor:
    """This rank's part of a (possibly FSDP2-sharded DTensor) parameter."""
    return t.to_local() if hasattr(t, "to_local") else t


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters the optimizer updates, by name."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@torch.no_grad()
def update_ema(ema: dict[str, torch.Tensor], params: dict[str, nn.Parameter], decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * params, in fp32."""
    for k, p in params.items():
        ema[k].lerp_(local_part(p).detach().float(), 1 - decay)


@torch.no_grad()
def ema_state_dict(accelerator: Accelerator, model: nn.Module, ema: dict[str, torch.Tensor]) -> dict:
    """Full CPU state dict of the model with EMA values for the trainable weights (call on every rank)."""
    params = trainable(accelerator.unwrap_model(model))
    if accelerator.distributed_type not in (DistributedType.FSDP,):
        state = accelerator.unwrap_model(model).state_dict()
        return {k: (ema[k] if k in ema else v).detach().cpu() for k, v in state.items()}
    # sharded weights: swap the EMA shards in, let accelerate gather the full state dict, swap back
    backup = {k: local_part(p).detach().clone() for k, p in params.items()}
    for k, p in params.items():
        local_part(p).copy_(ema[k])
    try:
        return {k: v.detach().cpu().clone() for k, v in accelerator.get_state_dict(model).items()}
    finally:
        for k, p in params.items():
            local_part(p).copy_(backup[k])


def _rng_state(generator: torch.Generator) -> tuple[dict, dict]:
    """(tensors, JSON metadata) of the training generator and torch / CUDA / numpy / python global RNGs."""
    tensors = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, mt, next_gauss = random.getstate()
    meta = {"numpy": json.dumps([name, keys.tolist(), pos, has_gauss, gauss]), "python": json.dumps([version, mt])}
    meta["python_gauss"] = json.dumps(next_gauss)
    return tensors, meta


def _set_rng_state(path: Path, generator: torch.Generator) -> None:
    """Inverse of _rng_state, from a rng_<rank>.safetensors file."""
    tensors = load_file(str(path))
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    generator.set_state(tensors["generator"])
    torch.set_rng_state(tensors["torch"])
    cuda = [tensors[f"cuda_{i}"] for i in range(sum(k.startswith("cuda_") for k in tensors))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    name, keys, pos, has_gauss, gauss = json.loads(meta["numpy"])
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, mt = json.loads(meta["python"])
    random.setstate((version, tuple(mt), json.loads(meta["python_gauss"])))


def latest_state(run: Path) -> Path | None:
    """The newest complete training state in RUN/states (temp folders of interrupted saves are ignored)."""
    found = [p for p in (run / "states").glob("step-*") if re.fullmatch(r"step-\d+", p.name)]
    return max(found, key=lambda p: int(p.name[5:]), default=None)


def remove_partial_states(run: Path) -> None:
    """Delete what interrupted saves left behind (temp, moved-aside and half-deleted folders). Main process only."""
    for p in (run / "states").glob(".*-step-*"):
        shutil.rmtree(p)


def save_training_state(accelerator, run: Path, model, ema, generator, ts: dict, keep: int) -> Path:
    """Write RUN/states/step-N atomically (temp folder + rename) on all ranks; keep the newest `keep`."""
    states, rank = run / "states", accelerator.process_index
    final, tmp = states / f"step-{ts['step']:08d}", states / f".tmp-step-{ts['step']:08d}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    # model as safetensors; optimizer and accelerate's RNG files via torch.save: our own files, read back with
    # torch.load(weights_only=True) by accelerate's `load`
    accelerator.save_state(str(tmp))
    atomic_save_file(ema, tmp / f"ema_{rank}.safetensors", {"step": str(ts["step"])})
    tensors, meta = _rng_state(generator)
    atomic_save_file(tensors, tmp / f"rng_{rank}.safetensors", meta)
    if accelerator.is_main_process:
        atomic_write_text(tmp / "trainer_state.json", json.dumps(ts))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again: move the old copy aside, so one is always complete
            os.replace(final, states / f".old-{final.name}")
        os.replace(tmp, final)
        shutil.rmtree(states / f".old-{final.name}", ignore_errors=True)
        for old in sorted(states.glob("step-*"), key=lambda p: int(p.name[5:]))[:-keep]:
            os.replace(old, states / f".del-{old.name}")  # a kill mid-delete leaves no half state named step-*
            shutil.rmtree(states / f".del-{old.name}")
    accelerator.wait_for_everyone()
    return final


def load_training_state(accelerator, folder: Path, model, ema, generator) -> dict:
    """Restore what save_training_state wrote; returns the trainer state (step, data position, ...)."""
    ts = json.loads((folder / "trainer_state.json").read_text())
    ddp = accelerator.num_processes > 1 and accelerator.distributed_type != DistributedType.FSDP
    if ts["ddp"] != ddp or (
        accelerator.distributed_type == DistributedType.FSDP and ts["world"] != accelerator.num_processes
    ):
        raise SystemExit(
            f"{folder} was saved by {ts['world']} process(es) ({ts['distributed']}); this launch has "
            f"{accelerator.num_processes} ({accelerator.distributed_type}). Resume with the same kind of launch."
        )
    # model from safetensors; optimizer and accelerate's RNG files with torch.load(weights_only=True) (its `load`)
    accelerator.load_state(str(folder))
    rank = accelerator.process_index
    ema_file, rng_file = folder / f"ema_{rank}.safetensors", folder / f"rng_{rank}.safetensors"
    if not ema_file.is_file():  # more processes than the run that saved: DDP replicas are identical
        ema_file = folder / "ema_0.safetensors"
    saved = load_file(str(ema_file))
    if set(saved) != set(ema):
        raise SystemExit(f"{ema_file}: EMA holds {sorted(set(saved) ^ set(ema))[:5]} that this model does not match")
    for k in ema:
        ema[k].copy_(saved[k])
    if rng_file.is_file():  # after accelerate's: ours also holds the training generator
        _set_rng_state(rng_file, generator)
    else:  # more processes than the run that saved: a fresh stream for this rank, still a function of the step
        generator.manual_seed(ts["step"] * 1_000_003 + rank)
    return ts


def replica_hashes(accelerator, model, ema) -> list[str]:
    """sha256 of each rank's weights and EMA, gathered on every rank (DDP replicas must agree)."""
    h = hashlib.sha256()
    state = {**accelerator.unwrap_model(model).state_dict(), **{f"ema.{k}": v for k, v in ema.items()}}
    for name in sorted(state):
        h.update(name.encode())
        h.update(local_part(state[name]).detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return gather_object([h.hexdigest()])


class StopFlag:
    """SIGTERM / SIGINT set a flag: the loop saves at the next step boundary and exits. A second SIGINT aborts."""

    def __init__(self):
        self.signal, self._old = None, {}

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
