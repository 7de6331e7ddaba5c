"""Training state: EMA of the trainable weights, RNG states, atomic and checksummed save / resume, signal handling.

A state folder RUN/states/step-00000100/ holds model.safetensors (the full model), optimizer.safetensors +
optimizer.json (the optimizer's tensors, and its hyper-parameters and scalar state as JSON), ema_<rank>.safetensors,
rng_<rank>.safetensors (training generator, torch / CUDA generators; numpy and python states as JSON metadata),
trainer_state.json (step, data position, scheduler, loss history) and checksums.json (sha256 of every other file),
written last. Nothing in it is a pickle. (FSDP runs keep accelerate's sharded save_state, whose optimizer and RNG
files are torch.save pickles read back with torch.load(weights_only=True), which only rebuilds tensors and plain
containers.) A state is written to a temp folder and renamed, so a kill at any moment leaves the previous state
intact; resume checks the checksums and takes the newest intact state, naming every bad one.
"""

from __future__ import annotations

import errno
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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn

from semanticgen_core.checkpoint import atomic_save_file
from train.utils import atomic_write_text

CHECKSUMS = "checksums.json"  # sha256 of every other file of a state, written last


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


def state_folders(run: Path) -> list[Path]:
    """RUN/states/step-N folders, newest first (temp folders of interrupted saves are not among them)."""
    found = [p for p in (run / "states").glob("step-*") if re.fullmatch(r"step-\d+", p.name)]
    return sorted(found, key=lambda p: int(p.name[5:]), reverse=True)


def latest_state(run: Path) -> Path | None:
    """The newest training state folder in RUN/states (not verified: see newest_intact_state)."""
    return next(iter(state_folders(run)), None)


def remove_partial_states(run: Path) -> None:
    """Delete what interrupted saves left behind (temp, moved-aside and half-deleted folders). Main process only."""
    for p in (run / "states").glob(".*-step-*"):
        shutil.rmtree(p)


class BadState(Exception):
    """A training state folder that cannot be trusted; the message names the file and the reason."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_state(folder: Path) -> None:
    """Raise BadState naming the first missing, changed or unreadable file of a state folder."""
    sums = folder / CHECKSUMS
    if not sums.is_file():
        if (folder / "optimizer.bin").is_file() and (folder / "trainer_state.json").is_file():
            return  # written before checksums existed: nothing to check it against
        raise BadState(f"{sums}: missing (the save did not finish, or this is not a training state)")
    try:
        expected = json.loads(sums.read_text())
    except (OSError, ValueError) as err:
        raise BadState(f"{sums}: unreadable ({err})") from err
    for name, digest in sorted(expected.items()):
        path = folder / name
        if not path.is_file():
            raise BadState(f"{path}: missing")
        if _sha256(path) != digest:
            raise BadState(f"{path}: checksum mismatch (the file was truncated or changed after it was saved)")


def newest_intact_state(run: Path, log=print) -> Path | None:
    """The newest state whose files match their checksums; each newer bad one is named and renamed aside to
    RUN/states/bad-step-N (kept for inspection, never taken by a later resume or counted by the rotation)."""
    for folder in state_folders(run):
        try:
            verify_state(folder)
            return folder
        except BadState as err:
            aside = folder.with_name(f"bad-{folder.name}")
            os.replace(folder, aside)
            log(f"skipping bad training state: {err}; moved it to {aside}")
    return None


def set_aside_newer_states(run: Path, step: int, log=print) -> None:
    """States newer than the one resumed from belong to an abandoned continuation: rename them to
    RUN/states/abandoned-step-N, so that neither a later resume nor the rotation mistakes them for progress."""
    for folder in state_folders(run):
        if int(folder.name[5:]) > step:
            aside = folder.with_name(f"abandoned-{folder.name}")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(folder, aside)
            log(f"{folder} is newer than the resumed state: moved it to {aside}")


def _optimizer_files(optimizer) -> tuple[dict, dict]:
    """(tensors, JSON) of an optimizer state dict: tensors as 'state.<param>.<name>', the rest as JSON."""
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer(optimizer, folder: Path) -> None:
    """Inverse of _optimizer_files."""
    tensors = _read(folder / "optimizer.safetensors", load_file)
    meta = _read(folder / "optimizer.json", lambda p: json.loads(Path(p).read_text()))
    state: dict = {}
    for key, v in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = v
    for pid, st in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(st)
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _read(path: Path, reader):
    """reader(path), with any failure turned into BadState naming the file."""
    try:
        return reader(str(path))
    except Exception as err:  # safetensors, JSON and OS errors alike: say which file
        raise BadState(f"{path}: unreadable ({type(err).__name__}: {err})") from err


def save_training_state(accelerator, run: Path, model, optimizer, ema, generator, ts: dict, keep: int) -> Path:
    """Write RUN/states/step-N atomically (temp folder + rename) on all ranks, checksums last; keep the newest
    `keep`. A full disk (or any write error) removes the temp folder and exits with a message naming it: the states
    already saved stay as they were."""
    states = run / "states"
    final, tmp = states / f"step-{ts['step']:08d}", states / f".tmp-step-{ts['step']:08d}"
    if accelerator.is_main_process and tmp.exists():
        shutil.rmtree(tmp)
    accelerator.wait_for_everyone()
    try:
        _write_state(accelerator, tmp, model, optimizer, ema, generator, ts)
    except (OSError, RuntimeError, SafetensorError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        full = getattr(err, "errno", None) == errno.ENOSPC or "No space left" in str(err)
        free = shutil.disk_usage(states).free / 2**20
        reason = f"the disk is full ({free:.0f} MiB free)" if full else f"{type(err).__name__}: {err}"
        kept = latest_state(run)
        raise SystemExit(
            f"cannot save the training state to {tmp}: {reason}. Nothing saved before was touched"
            f"{f'; the newest state is {kept}' if kept else ''}: make room, then --resume"
        ) from err
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():  # the same step saved again: move the old copy aside, so one is always complete
            os.replace(final, states / f".old-{final.name}")
        os.replace(tmp, final)
        shutil.rmtree(states / f".old-{final.name}", ignore_errors=True)
        # newer states were set aside at resume, so `final` is the newest here and the rotation never deletes it
        for old in state_folders(run)[keep:]:
            os.replace(old, states / f".del-{old.name}")  # a kill mid-delete leaves no half state named step-*
            shutil.rmtree(states / f".del-{old.name}")
    accelerator.wait_for_everyone()
    return final


def _write_state(accelerator, tmp: Path, model, optimizer, ema, generator, ts: dict) -> None:
    """The files of one state in `tmp` (all ranks), then checksums.json (main process, after every rank wrote)."""
    rank, main = accelerator.process_index, accelerator.is_main_process
    if accelerator.distributed_type == DistributedType.FSDP:
        accelerator.save_state(str(tmp))  # sharded model and optimizer: accelerate's format (see the docstring)
    elif main:  # DDP replicas are identical: one copy of the model and the optimizer
        tmp.mkdir(parents=True, exist_ok=True)
        atomic_save_file(accelerator.unwrap_model(model).state_dict(), tmp / "model.safetensors", {})
        tensors, meta = _optimizer_files(optimizer)
        atomic_save_file(tensors, tmp / "optimizer.safetensors", {})
        atomic_write_text(tmp / "optimizer.json", json.dumps(meta))
    accelerator.wait_for_everyone()
    atomic_save_file(ema, tmp / f"ema_{rank}.safetensors", {"step": str(ts["step"])})
    tensors, meta = _rng_state(generator)
    atomic_save_file(tensors, tmp / f"rng_{rank}.safetensors", meta)
    if main:
        atomic_write_text(tmp / "trainer_state.json", json.dumps(ts))
    accelerator.wait_for_everyone()
    if main:
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        sums = {str(p.relative_to(tmp)): _sha256(p) for p in files}
        atomic_write_text(tmp / CHECKSUMS, json.dumps(sums, indent=1))


def load_training_state(accelerator, folder: Path, model, optimizer, ema, generator) -> dict:
    """Restore what save_training_state wrote; returns the trainer state (step, data position, ...). Any file
    that cannot be read exits with a message naming it."""
    try:
        return _load_state(accelerator, folder, model, optimizer, ema, generator)
    except BadState as err:
        raise SystemExit(f"cannot resume from {folder}: {err}") from err


def _load_state(accelerator, folder: Path, model, optimizer, ema, generator) -> dict:
    ts = _read(folder / "trainer_state.json", lambda p: json.loads(Path(p).read_text()))
    ddp = accelerator.num_processes > 1 and accelerator.distributed_type != DistributedType.FSDP
    if ts["ddp"] != ddp or (
        accelerator.distributed_type == DistributedType.FSDP and ts["world"] != accelerator.num_processes
    ):
        raise SystemExit(
            f"{folder} was saved by {ts['world']} process(es) ({ts['distributed']}); this launch has "
            f"{accelerator.num_processes} ({accelerator.distributed_type}). Resume with the same kind of launch."
        )
    if (folder / "optimizer.safetensors").is_file():
        weights = _read(folder / "model.safetensors", load_file)
        accelerator.unwrap_model(model).load_state_dict(weights)
        _load_optimizer(optimizer, folder)
    else:  # FSDP, or a state written before the pickle-free format: accelerate's loader (torch.load weights_only)
        try:
            accelerator.load_state(str(folder))
        except Exception as err:
            raise BadState(f"accelerate could not load it ({type(err).__name__}: {err})") from err
    rank = accelerator.process_index
    ema_file, rng_file = folder / f"ema_{rank}.safetensors", folder / f"rng_{rank}.safetensors"
    if not ema_file.is_file():  # more processes than the run that saved: DDP replicas are identical
        ema_file = folder / "ema_0.safetensors"
    saved = _read(ema_file, load_file)
    if set(saved) != set(ema):
        raise SystemExit(f"{ema_file}: EMA holds {sorted(set(saved) ^ set(ema))[:5]} that this model does not match")
    for k in ema:
        ema[k].copy_(saved[k])
    if rng_file.is_file():  # ours also holds the training generator
        _read(rng_file, lambda p: _set_rng_state(Path(p), generator))
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
