"""Argument checks shared by the CLI, the pipeline and the nodes, run before any work.

Each check takes the argument's name as its caller shows it (`--cfg` in the CLI, `cfg` in the library and the
nodes) and raises ValueError naming it, the value and the allowed range. NaN and inf are never silently accepted.
"""

from __future__ import annotations

import math
import numbers
import os
import tempfile
from pathlib import Path

import torch

MAX_SEED = 2**64 - 1  # torch.Generator seeds are unsigned 64-bit
MAX_STEPS = 10_000
CFG_RANGE = (0.0, 100.0)  # 1: no guidance; 0: the negative prompt's velocity only
SHIFT_RANGE = (0.01, 100.0)  # Wan uses 3-8; 0 would put every step at t=0 (no denoising)
PLAN_NOISE_RANGE = (0.0, 10.0)  # std of the noise added to a plan (trained with 0-0.2)
MAX_SECONDS = 600.0
MAX_SIDE = 8192  # pixels per side
SIZE_MULTIPLE = 16  # VAE factor 8 x DiT patch 2


def number(name: str, value, lo: float, hi: float, integer: bool = False, lo_open: bool = False):
    """`value` if it is a finite number (an int when `integer`) in [lo, hi] ((lo, hi] with lo_open), else ValueError."""
    kind = "an integer" if integer else "a finite number"
    ok_type = isinstance(value, numbers.Integral if integer else numbers.Real) and not isinstance(value, bool)
    span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}]"
    if not ok_type:
        raise ValueError(f"{name}={value!r}: must be {kind} in {span}")
    if not (math.isfinite(value) and (lo < value if lo_open else lo <= value) and value <= hi):
        raise ValueError(f"{name}={value!r}: must be {kind} in {span}")
    return value


def seed(value, name: str = "seed") -> int:
    """A seed in [0, 2^64 - 1] (negative seeds would silently alias large ones)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or not 0 <= value <= MAX_SEED:
        raise ValueError(f"{name}={value!r}: must be an integer in [0, 2^64 - 1 = {MAX_SEED}]")
    return int(value)


def generator(value, name: str = "seed") -> torch.Generator:
    """A CPU torch.Generator seeded with a checked seed (CPU: the same noise on every device)."""
    return torch.Generator("cpu").manual_seed(seed(value, name))


def sampler(steps, cfg, shift, names=("steps", "cfg", "shift")) -> None:
    """Euler steps, guidance scale and timestep shift of one stage."""
    number(names[0], steps, 1, MAX_STEPS, integer=True)
    number(names[1], cfg, *CFG_RANGE)
    number(names[2], shift, *SHIFT_RANGE)


def plan_noise(value, name: str = "plan_noise") -> float:
    return number(name, value, *PLAN_NOISE_RANGE)


def seconds(value, name: str = "seconds", hi: float = MAX_SECONDS) -> float:
    return number(name, value, 0.0, hi, lo_open=True)


def size(height, width, names=("height", "width"), multiple: int = SIZE_MULTIPLE) -> None:
    """Pixel sizes: multiples of `multiple`, at most MAX_SIDE."""
    for name, v in zip(names, (height, width)):
        number(name, v, multiple, MAX_SIDE, integer=True)
        if v % multiple:
            raise ValueError(f"{name}={v}: must be a multiple of {multiple} in [{multiple}, {MAX_SIDE}]")


def device(value, name: str = "device") -> torch.device:
    """A device this machine has (cpu, cuda, cuda:N, mps)."""
    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{name}={value!r}: not a device name; use cpu, cuda, cuda:N or mps") from err
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{name}={value!r}: no CUDA device here (torch {torch.__version__}); use cpu")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"{name}={value!r}: this machine has cuda:0 .. cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={value!r}: MPS is not available here; use cpu")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name}={value!r}: unsupported device type; use cpu, cuda, cuda:N or mps")
    return dev


def output_file(path, name: str = "out", suffix: str | None = ".mp4") -> Path:
    """A path a file can be written to: right suffix, an existing writable folder, not itself a folder."""
    p = Path(path)
    if suffix and p.suffix.lower() != suffix:
        raise ValueError(f"{name} {str(path)!r}: give a path ending in {suffix}")
    if p.is_dir():
        raise ValueError(
            f"{name} {str(path)!r}: is a folder; give a file name inside it, e.g. {p / ('out' + (suffix or ''))}"
        )
    if p.exists() and not p.is_file():
        raise ValueError(f"{name} {str(path)!r}: exists and is not a regular file; give another name")
    folder = p.absolute().parent
    if not folder.is_dir():
        raise ValueError(f"{name} {str(path)!r}: the folder {str(folder)!r} does not exist; create it first")
    try:  # os.access says yes to root even on read-only or special file systems: try for real
        with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{p.name}.", suffix=".check"):
            pass
    except OSError as err:
        raise ValueError(f"{name} {str(path)!r}: cannot write in {str(folder)!r} ({err.strerror or err})") from err
    return p


# ----------------------------------------------------------------------------------------------------------------
# Memory ceiling
# ----------------------------------------------------------------------------------------------------------------


def available_memory(dev: torch.device) -> int | None:
    """Free bytes on `dev` (CUDA: free device memory; CPU: MemAvailable), or None when unknown."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    if dev.type == "cpu" and os.path.exists("/proc/meminfo"):
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return None


def activation_bytes(dit_config, shape, batch: int, dtype: torch.dtype) -> int:
    """A lower bound on stage activations: tokens x (feed-forward + 4 hidden) values, for `batch` rows."""
    pt, ph, pw = dit_config.patch_size
    _, t, h, w = shape
    tokens = math.ceil(t / pt) * math.ceil(h / ph) * math.ceil(w / pw)
    elem = torch.empty((), dtype=dtype).element_size()
    return batch * tokens * (dit_config.ffn_dim + 4 * dit_config.dim) * elem


def memory(dit_config, shape, batch: int, dtype: torch.dtype, dev: torch.device, what: str) -> None:
    """Refuse a tensor shape whose activations cannot fit in the free memory of `dev`."""
    need, free = activation_bytes(dit_config, shape, batch, dtype), available_memory(torch.device(dev))
    if free is not None and need > free:
        raise ValueError(
            f"{what} {tuple(shape)} need at least {need / 2**30:.1f} GiB of activations, but {dev} has "
            f"{free / 2**30:.1f} GiB free: lower the height, width or seconds"
        )
