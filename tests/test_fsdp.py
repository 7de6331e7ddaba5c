"""FSDP2 (torch fully_shard, gloo) on CPU: 2 sharded processes compute the single-process step, and their sharded
state resumes on 1 process (train/fsdp2_check.py; accelerate cannot start FSDP on CPUs, see its docstring)."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from train import fsdp2_check as F

ROOT = Path(__file__).resolve().parents[1]


def torchrun(nproc: int, *args) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port),
           str(ROOT / "train" / "fsdp2_check.py"), *map(str, args)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def plain_run(steps: int) -> dict:
    """The same training without any distribution: one process, the full batch."""
    objective = F.Objective(F.build())
    opt = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-2)
    F.train_steps(objective, opt, steps, 0, 1)
    return objective.state_dict()


def test_fsdp2_two_processes_equal_one_and_resume_on_another_count(tmp_path):
    out = torchrun(2, "--out", tmp_path, "--steps", "2")
    assert "FSDP2 world 2: step 2" in out
    sharded = load_file(str(tmp_path / "full_2.safetensors"))
    want = plain_run(2)
    assert sharded.keys() == want.keys()
    # a sharded step is the full-batch step; tolerance: the reduction order changes tiny gradients (fp32 noise),
    # which Adam's normalisation turns into differences of ~1e-5 in a 1e-2 step
    for k, v in want.items():
        torch.testing.assert_close(sharded[k], v, atol=1e-4, rtol=1e-4, msg=k)
    q = "model.lat_generator.blocks.0.self_attn.q"
    assert want[f"{q}.adapters.0.up"].abs().min() > 1e-3  # trained (from zero)
    assert torch.equal(want[f"{q}.weight"], F.build().state_dict()[q.removeprefix("model.") + ".weight"])  # frozen

    # the 2-process DCP state (weights and AdamW moments) continues on 1 process as if never interrupted
    assert "FSDP2 world 1: step 3" in torchrun(1, "--out", tmp_path, "--steps", "1", "--resume")
    resumed, want3 = load_file(str(tmp_path / "full_3.safetensors")), plain_run(3)
    for k, v in want3.items():
        torch.testing.assert_close(resumed[k], v, atol=1e-4, rtol=1e-4, msg=k)
