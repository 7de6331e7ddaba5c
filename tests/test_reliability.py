"""Faults and bad inputs a new user meets, each run for real; the table in docs/reliability.md is this test's output.

Every case asserts what it gets (a regex) and records it. The test fails when docs/reliability.md differs from
what the cases give today; regenerate it with `SEMANTICGEN_WRITE_DOCS=1 python -m pytest tests/test_reliability.py`.
"""

import contextlib
import io
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TinyTextEncoder

from semanticgen_core import DIT_CONFIGS, PipelineConfig, SamplerConfig, SemanticCompressor, SemanticGenDiT
from semanticgen_core.cli import main
from semanticgen_core.pipeline import SemanticGenPipeline, warn_long_prompts
from semanticgen_core.video_io import read_video, write_video
from train import state
from train.data import discover_pairs, read_cache_info

DOC = Path(__file__).resolve().parents[1] / "docs" / "reliability.md"


def outcome(fn) -> str:
    """'exit N: <last stderr line>', 'ValueError: ...', 'warning: ...' or 'ok: <what it returned>'."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn()
    except SystemExit as e:
        if isinstance(e.code, str):
            return f"exit 1: {e.code}"
        lines = [line for line in err.getvalue().splitlines() if line.strip()]
        return f"exit {e.code}: {lines[-1] if lines else ''}"
    except Exception as e:  # the point of this table: which exception, and what it says
        return f"{type(e).__name__}: {e}"
    if caught:
        return f"warning: {caught[-1].message}"
    return f"ok: {result}"


def cli(*argv):
    return lambda: main(["generate", "--prompt", "a red circle", *argv])


def tiny_pipeline():
    torch.manual_seed(0)
    sem, lat = SemanticGenDiT(DIT_CONFIGS["tiny-sem"]).eval(), SemanticGenDiT(DIT_CONFIGS["tiny"]).eval()
    return SemanticGenPipeline(sem, lat, SemanticCompressor(16, 8), None, TinyTextEncoder(), None, PipelineConfig())


def states_with_a_truncated_newest(root: Path, part: str) -> Path:
    """RUN/states/step-2 and step-4 with their checksums, then `part` of step-4 cut in half."""
    for step in (2, 4):
        folder = root / "states" / f"step-{step:08d}"
        folder.mkdir(parents=True)
        for name in ("model.safetensors", "optimizer.json", "trainer_state.json"):
            (folder / name).write_bytes(os.urandom(64))
        sums = {p.name: state._sha256(p) for p in folder.iterdir()}
        (folder / state.CHECKSUMS).write_text(json.dumps(sums))
    bad = root / "states" / "step-00000004" / part
    bad.write_bytes(bad.read_bytes()[:32])
    return root


def truncated_video(tmp: Path) -> Path:
    path, cut = tmp / "full.mp4", tmp / "cut.mp4"
    write_video(path, np.random.default_rng(0).integers(0, 255, (40, 32, 32, 3), dtype=np.uint8), fps=10)
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return cut


def same_bytes(tmp: Path) -> str:
    frames = np.random.default_rng(1).integers(0, 255, (9, 32, 32, 3), dtype=np.uint8)
    files = set()
    for i in range(3):
        torch.randn(200, 200) @ torch.randn(200, 200)  # torch work in between once changed x264's output
        write_video(tmp / f"{i}.mp4", frames, fps=8)
        files.add((tmp / f"{i}.mp4").read_bytes())
    return f"{len(files)} distinct file(s) from 3 writes of the same frames"


def stale_temp(tmp: Path) -> str:
    dead = 2**22 + 1  # above Linux's largest pid (pid_max <= 2^22): no such process
    leftover = tmp / f".x.mp4.{dead}-0123456789ab.tmp"
    leftover.write_bytes(b"half a video")
    write_video(tmp / "x.mp4", np.zeros((1, 8, 8, 3), np.uint8), 8)
    return "removed by the next write" if not leftover.exists() else "still there"


def empty_cache(tmp: Path) -> Path:
    (tmp / "cache").mkdir()
    skipped = [{"video": "a.mp4", "reason": "no caption (no .txt beside it, or no caption field)"}]
    (tmp / "cache" / "index.json").write_text(json.dumps({"complete": True, "samples": [], "skipped": skipped}))
    return tmp / "cache"


def cases(tmp: Path) -> list[tuple[str, str, object]]:
    """(area, fault or bad input, zero-argument callable) in table order."""
    (tmp / "folder.mp4").mkdir()
    os.mkfifo(tmp / "fifo.mp4")
    (tmp / "empty").mkdir()
    pipe = tiny_pipeline()
    ctx = torch.zeros(1, 4, 24)
    nan_cfg = SamplerConfig(2, float("nan"), 2.0)
    return [
        ("CLI", "`--cfg nan`", cli("--cfg", "nan")),
        ("CLI", "`--cfg inf`", cli("--cfg", "inf")),
        ("CLI", "`--shift 0`", cli("--shift", "0")),
        ("CLI", "`--shift nan`", cli("--shift", "nan")),
        ("CLI", "`--plan-noise nan`", cli("--plan-noise", "nan")),
        ("CLI", "`--plan-noise -1`", cli("--plan-noise", "-1")),
        ("CLI", "`--seed -1`", cli("--seed", "-1")),
        ("CLI", "`--seed 18446744073709551616` (2^64)", cli("--seed", str(2**64))),
        ("CLI", "`--steps 0`", cli("--steps", "0")),
        ("CLI", "`--width 160000`", cli("--width", "160000")),
        ("CLI", "`--height 30`", cli("--height", "30")),
        ("CLI", "`--seconds nan`", cli("--seconds", "nan")),
        ("CLI", "`--seconds 9999`", cli("--seconds", "9999")),
        ("CLI", "`--device cuda` on a machine without CUDA", cli("--device", "cuda")),
        ("CLI", "`--out` in a folder that does not exist", cli("--out", str(tmp / "missing" / "a.mp4"))),
        ("CLI", "`--out` naming an existing folder", cli("--out", str(tmp / "folder.mp4"))),
        ("CLI", "`--out` naming a FIFO / device", cli("--out", str(tmp / "fifo.mp4"))),
        ("CLI", "`--out /proc/a.mp4` (not writable)", cli("--out", "/proc/a.mp4")),
        ("CLI", "`--out a.avi`", cli("--out", "a.avi")),
        ("CLI", "`--reference` that does not exist", cli("--reference", str(tmp / "nope.mp4"))),
        ("library", "`pipe(..., seed=-1)`", lambda: pipe("x", seed=-1)),
        ("library", "`pipe(..., width=160000)`", lambda: pipe("x", width=160000)),
        ("library", "`pipe(..., seconds=float('inf'))`", lambda: pipe("x", seconds=float("inf"))),
        (
            "library",
            "`generate_latents(..., SamplerConfig(cfg=nan))`",
            lambda: pipe.generate_latents(torch.zeros(1, 8, 1, 2, 2), ctx, None, (16, 1, 8, 8), nan_cfg),
        ),
        (
            "library",
            "`generate_latents(..., plan_noise=-1)`",
            lambda: pipe.generate_latents(torch.zeros(1, 8, 1, 2, 2), ctx, None, (16, 1, 8, 8), None, -1.0),
        ),
        (
            "library",
            "`generate_latents` for a 1024-second 8192x8192 video (memory ceiling)",
            lambda: pipe.generate_latents(torch.zeros(1, 8, 1, 2, 2), ctx, None, (16, 4097, 1024, 1024)),
        ),
        ("library", "a prompt longer than the text encoder's max tokens", lambda: warn_long_prompts(Words(), ["a"])),
        ("video", "a reference cut in half (container says 4 s)", lambda: read_video(truncated_video(tmp)).shape),
        (
            "video",
            "the same, read with `partial=True`",
            lambda: read_video(truncated_video(tmp), partial=True).shape,
        ),
        (
            "video",
            "`write_video` to an existing folder",
            lambda: write_video(tmp / "folder.mp4", np.zeros((1, 8, 8, 3), np.uint8), 8),
        ),
        ("video", "the same frames written 3 times", lambda: same_bytes(tmp)),
        ("video", "a temp file left by a killed writer of the same output", lambda: stale_temp(tmp)),
        (
            "training",
            "`--resume`: newest state's model.safetensors truncated",
            lambda: state.newest_intact_state(
                states_with_a_truncated_newest(tmp / "r1", "model.safetensors"), log=_raise
            ),
        ),
        (
            "training",
            "`--resume`: newest state's trainer_state.json truncated, resumed by path",
            lambda: state.verify_state(
                states_with_a_truncated_newest(tmp / "r2", "trainer_state.json") / "states" / "step-00000004"
            ),
        ),
        ("training", "SIGTERM / SIGINT during training", lambda: exit_codes()),
        ("data", "`prepare.py --videos` folder that does not exist", lambda: discover_pairs(tmp / "nowhere")),
        ("data", "`prepare.py --videos` folder without videos", lambda: discover_pairs(tmp / "empty")),
        ("data", "stage 1 / 2 on a cache where every video was skipped", lambda: read_cache_info(empty_cache(tmp))),
    ]


class Words:
    """A text encoder double that counts 40 tokens for any prompt and reads 32."""

    max_length = 32

    def token_counts(self, prompts):
        return [40 for _ in prompts]


def _raise(msg):
    warnings.warn(msg, UserWarning, stacklevel=2)


def exit_codes() -> str:
    from train.loop import exit_status

    codes = {s: exit_status({"stopped_by": s}) for s in ("SIGINT", "SIGTERM")}
    return f"the state is saved, then exit {codes['SIGINT']} (SIGINT) / {codes['SIGTERM']} (SIGTERM)"


EXPECT = [
    r"exit 2: .*--cfg=nan: must be a finite number in \[0, 100\]",
    r"exit 2: .*--cfg=inf",
    r"exit 2: .*--shift=0.0: must be a finite number in \[0.01, 100\]",
    r"exit 2: .*--shift=nan",
    r"exit 2: .*--plan-noise=nan",
    r"exit 2: .*--plan-noise=-1.0: must be a finite number in \[0, 10\]",
    r"exit 2: .*--seed=-1: must be an integer in \[0, 2\^64 - 1",
    r"exit 2: .*--seed=18446744073709551616",
    r"exit 2: .*--steps=0",
    r"exit 2: .*--width=160000: must be an integer in \[16, 8192\]",
    r"exit 2: .*--height=30: must be a multiple of 16",
    r"exit 2: .*--seconds=nan",
    r"exit 2: .*--seconds=9999.0: must be a finite number in \(0, 600\]",
    r"exit 2: .*--device='cuda'",
    r"exit 2: .*folder '<tmp>/missing' does not exist",
    r"exit 2: .*is a folder",
    r"exit 2: .*exists and is not a regular file",
    r"exit 2: .*cannot write in '/proc'",
    r"exit 2: .*ending in .mp4",
    r"exit 2: .*--reference .*no such file",
    r"ValueError: seed=-1",
    r"ValueError: width=160000",
    r"ValueError: seconds=inf",
    r"ValueError: cfg=nan",
    r"ValueError: plan_noise=-1.0",
    r"ValueError: stage B: latents of shape .* need at least .* GiB",
    r"warning: .* has 40 tokens; the text encoder reads the first 32",
    r"VideoReadError: .*cut.mp4.*(truncated: frames end at|decoding failed)",
    r"warning: .*cut.mp4.*returning the",
    r"IsADirectoryError: .*folder",
    r"ok: 1 distinct file\(s\)",
    r"ok: removed by the next write",
    r"warning: skipping bad training state: .*step-00000004/model.safetensors: checksum mismatch",
    r"BadState: .*step-00000004/trainer_state.json: checksum mismatch",
    r"ok: the state is saved, then exit 130 \(SIGINT\) / 143 \(SIGTERM\)",
    r"FileNotFoundError: --videos .*nowhere: no such folder",
    r"ValueError: --videos .*empty: no video files",
    r"ValueError: .*the cache holds no samples: all 1 videos were skipped",
]


def render(rows) -> str:
    head = [
        "# Reliability: faults and bad inputs, and what each gets",
        "",
        "Generated by `tests/test_reliability.py` (each case is run and its outcome asserted); do not edit by hand.",
        "Regenerate: `SEMANTICGEN_WRITE_DOCS=1 python -m pytest tests/test_reliability.py`. `<tmp>` is a temp folder.",
        "Training resume, SIGKILL / SIGTERM and a full disk are also run end to end in `tests/test_train.py`.",
        "",
        "| area | fault or bad input | what it gets |",
        "|---|---|---|",
    ]
    cell = lambda s: s.replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return "\n".join(head + [f"| {a} | {cell(f)} | {cell(o)} |" for a, f, o in rows]) + "\n"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the table is written for a machine without CUDA")
def test_reliability_table(tmp_path):
    rows = []
    table = cases(tmp_path)
    assert len(table) == len(EXPECT)
    for (area, fault, fn), expect in zip(table, EXPECT):
        got = re.sub(r"\s+", " ", outcome(fn).replace(str(tmp_path), "<tmp>"))
        got = re.sub(r"has [\d.]+ GiB free", "has <free> GiB free", got.replace(torch.__version__, "<version>"))
        assert re.search(expect, got), f"{fault}: got {got!r}, expected /{expect}/"
        rows.append((area, fault, got))
    text = render(rows)
    if os.environ.get("SEMANTICGEN_WRITE_DOCS"):
        DOC.write_text(text)
    assert DOC.is_file() and DOC.read_text() == text, (
        "docs/reliability.md is stale: SEMANTICGEN_WRITE_DOCS=1 python -m pytest tests/test_reliability.py"
    )
