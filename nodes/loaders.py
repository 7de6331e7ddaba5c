"""Loader nodes: SemanticGen models, the semantic encoder, the VAE and the embedded text encoder.

Each loader keeps what it loaded in a one-entry cache on the node instance (ComfyUI keeps one instance per graph node),
so re-running a workflow with the same files loads nothing; the small MiniLM text encoder is shared by all text nodes.
Models are loaded onto ComfyUI's offload device and moved to the run device only while a node uses them
(`comfy_compat.on_device`).
"""

from __future__ import annotations

import functools

import torch

from . import comfy_compat as cc
from .convert import SemanticGenModel, make_conditioning

EMBEDDED_MODEL = "embedded shapes model"
EMBEDDED_ENCODER = "embedded shapes encoder"
EMBEDDED_VAE = "embedded shapes VAE"
NO_STAGE2 = "none (reference transfer only)"
DTYPE = (
    ["auto", "float32", "bfloat16", "float16"],
    {
        "default": "auto",
        "tooltip": "Weight dtype while running: auto = float32 on CPU, bfloat16 (or float16) on a GPU. Norms, "
        "modulation and the sampler stay float32; fp8 weight files stay fp8 and are upcast layer by layer.",
    },
)

TIPS = {
    name: {"tooltip": text}
    for name, text in {
        "stage1": "Stage-1 bundle (latent generator + semantic compressor) from models/semanticgen/, or the embedded "
        "shapes-world model (no download).",
        "stage2": "Stage-2 semantic generator (text -> plan) from models/semanticgen/; 'none' when plans only come from "
        "reference videos.",
        "kind": "Encoder family; must be the one the model was trained on (qwen2_5_vl for the paper's models and the "
        "embedded model).",
        "weights": "Weights in models/semanticgen/: a Hugging Face folder (e.g. Qwen2.5-VL-7B-Instruct, only its vision "
        "tower is read) or a SemanticGen encoder file; or the embedded shapes encoder.",
        "vae_name": "The embedded shapes VAE (for the embedded model) or a Wan 2.1 VAE file from models/vae/ (e.g. "
        "wan_2.1_vae.safetensors).",
        "text": "What the video shows, e.g. 'a red circle moves to the right'. Empty for the negative prompt.",
    }.items()
}


def _dtype(name: str) -> torch.dtype:
    from ..semanticgen_core.precision import resolve_dtype

    return cc.auto_dtype(cc.torch_device()) if name == "auto" else resolve_dtype(name)


class _Cached:
    """One-entry cache per node instance: reload only when the node's inputs change."""

    def cached(self, key, load):
        entry = getattr(self, "_cache", None)
        if entry is None or entry[0] != key:
            self._cache = entry = (key, load())
        return entry[1]


# ----------------------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)  # one MiniLM shared by the positive and negative prompt nodes
def text_encoder(max_length: int):
    """The embedded model's text encoder (all-MiniLM-L6-v2, CPU: it is small)."""
    from ..semanticgen_core.lab.embedded import default_text_encoder

    return default_text_encoder(max_length)


def load_model(stage1: str, stage2: str, dtype: torch.dtype) -> SemanticGenModel:
    """A SemanticGenModel from dropdown names (the embedded model or files in models/semanticgen/)."""
    from ..semanticgen_core.config import SamplerConfig
    from ..semanticgen_core.lab.embedded import embedded_path, manifest
    from ..semanticgen_core.models import build_pipeline
    from ..semanticgen_core.vae import latent_space_stats

    def path(name, part):
        return embedded_path(part) if name == EMBEDDED_MODEL else cc.model_path(name)

    s2 = None if stage2 == NO_STAGE2 else path(stage2, "stage2")
    embedded = stage1 == EMBEDDED_MODEL
    sampler, noise = (SamplerConfig(**manifest()["sampler"]), manifest()["plan_noise"]) if embedded else (None, 0.1)
    pipe = build_pipeline(path(stage1, "stage1"), s2, None, None, None, sampler, noise, cc.offload_device(), dtype)
    return SemanticGenModel(pipe, *latent_space_stats(pipe.config.video, stage1), name=stage1)


# ----------------------------------------------------------------------------------------------------------------
# Nodes
# ----------------------------------------------------------------------------------------------------------------


class SemanticGenModelLoader(_Cached):
    """Stage-1 bundle (latent generator + compressor) and stage-2 semantic generator -> SEMANTICGEN_MODEL."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Loads a SemanticGen model: the latent generator with its compressor, and the semantic generator."
    RETURN_TYPES = ("SEMANTICGEN_MODEL",)
    RETURN_NAMES = ("model",)
    OUTPUT_TOOLTIPS = ("The two generators and the compressor, checked to come from one training run.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        files = cc.model_files()
        stage1 = [EMBEDDED_MODEL, *files]
        stage2 = [EMBEDDED_MODEL, NO_STAGE2, *files]
        return {"required": {"stage1": (stage1, TIPS["stage1"]), "stage2": (stage2, TIPS["stage2"]), "dtype": DTYPE}}

    def load(self, stage1, stage2, dtype):
        return (self.cached((stage1, stage2, dtype), lambda: load_model(stage1, stage2, _dtype(dtype))),)


class LoadSemanticEncoder(_Cached):
    """A frozen video encoder for reference plans (Qwen2.5-VL vision tower or V-JEPA 2) -> SEMANTIC_ENCODER."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Loads the semantic encoder whose features a SemanticGen model plans in (for reference videos)."
    RETURN_TYPES = ("SEMANTIC_ENCODER",)
    RETURN_NAMES = ("encoder",)
    OUTPUT_TOOLTIPS = ("The semantic encoder (kind, feature dim and frame rate travel with it).",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        from ..semanticgen_core.encoders import ENCODERS

        weights = [EMBEDDED_ENCODER, *cc.model_files(with_dirs=True)]
        return {
            "required": {
                "kind": (sorted(ENCODERS), TIPS["kind"]),
                "weights": (weights, TIPS["weights"]),
                "dtype": DTYPE,
            }
        }

    def load(self, kind, weights, dtype):
        from ..semanticgen_core.encoders import load_semantic_encoder
        from ..semanticgen_core.lab.embedded import embedded_path

        if weights == EMBEDDED_ENCODER and kind != "qwen2_5_vl":
            raise ValueError(f"the embedded shapes encoder is a qwen2_5_vl encoder, but kind {kind!r} was selected")
        path = embedded_path("encoder") if weights == EMBEDDED_ENCODER else cc.model_path(weights)
        load = lambda: load_semantic_encoder(kind, path, _dtype(dtype), cc.offload_device()).eval()  # noqa: E731
        return (self.cached((kind, weights, dtype), load),)


class SemanticGenVAELoader(_Cached):
    """The embedded shapes VAE, or a Wan 2.1 VAE file from models/vae/ -> SEMANTICGEN_VAE (for SemanticGen Decode)."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Loads a Wan-architecture VAE for SemanticGen Decode. With real Wan2.1 weights you can use "
        "ComfyUI's Load VAE + VAE Decode instead: LATENT holds raw Wan latents."
    )
    RETURN_TYPES = ("SEMANTICGEN_VAE",)
    RETURN_NAMES = ("vae",)
    OUTPUT_TOOLTIPS = ("The VAE (decodes chunk by chunk, bounded memory).",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"vae_name": ([EMBEDDED_VAE, *cc.model_files("vae")], TIPS["vae_name"]), "dtype": DTYPE}}

    def load(self, vae_name, dtype):
        from ..semanticgen_core.lab.embedded import embedded_path
        from ..semanticgen_core.vae import load_vae

        path = embedded_path("vae") if vae_name == EMBEDDED_VAE else cc.model_path(vae_name, "vae")
        return (self.cached((vae_name, dtype), lambda: load_vae(path, _dtype(dtype), cc.offload_device()).eval()),)


class SemanticGenTextEncode:
    """Prompt -> CONDITIONING with the embedded model's text encoder (all-MiniLM-L6-v2)."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Encodes a prompt for the embedded shapes-world model. Real Wan2.1-based models take ComfyUI's "
        "CLIP Text Encode with Load CLIP (type wan, umt5-xxl) instead."
    )
    RETURN_TYPES = ("CONDITIONING",)
    OUTPUT_TOOLTIPS = ("Per-token MiniLM features [1, S, 384], zero past the prompt.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "dynamicPrompts": True, **TIPS["text"]})}}

    def encode(self, text):
        from ..semanticgen_core.lab.embedded import manifest

        with torch.no_grad():
            ctx, mask = text_encoder(manifest()["text_max_length"]).encode([text])
        return (make_conditioning(ctx, mask),)
