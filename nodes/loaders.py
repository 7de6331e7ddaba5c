"""Loader nodes: SemanticGen models, the semantic encoder, the VAE and the embedded text encoder.

Each loader keeps what it loaded in a one-entry cache on the node instance (ComfyUI keeps one instance per graph node),
so re-running a workflow with the same files loads nothing; the small MiniLM text encoder is shared by all text nodes.
Models are loaded onto ComfyUI's offload device and moved to the run device only while a node uses them
(`comfy_compat.on_device`).
"""

from __future__ import annotations

import functools
import os

import torch

from . import comfy_compat as cc
from .convert import SemanticGenModel, composed_conditioning, make_conditioning

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
        "text": "What the video shows, e.g. 'a red circle moves to the right'. Empty for the negative prompt. "
        "'A AND B :0.5' composes: B also guides the latent sampler (e.g. a shape drawn wrongly, said again alone).",
    }.items()
}


# Files with a public download (the Wan2.1 workflows carry them as properties.models for ComfyUI's download dialog)
WAN_REPACKAGED = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files"
DOWNLOADS = {
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors": (
        "text_encoders",
        f"{WAN_REPACKAGED}/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    ),
    "wan_2.1_vae.safetensors": ("vae", f"{WAN_REPACKAGED}/vae/wan_2.1_vae.safetensors"),
}
HOW_TO_GET = {
    "stage": "SemanticGen stage files are not published: train them (train/README.md: train/stage1.py, then "
    "train/stage2.py) and copy the exported .safetensors into that folder",
    "encoder": "semantic encoders are Hugging Face folders: `huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct "
    "--local-dir <that folder>/Qwen2.5-VL-7B-Instruct` (only the vision tower is read)",
    "vae": "a Wan 2.1 VAE, e.g. wan_2.1_vae.safetensors from Comfy-Org/Wan_2.1_ComfyUI_repackaged (split_files/vae)",
}


def missing_files(choices: dict[str, str], built_in: set[str], folder: str, how: str, with_dirs=False) -> bool | str:
    """True if every chosen file is built in or on disk, else one message naming the folder and how to get them
    (ComfyUI shows it as the node's error; a VALIDATE_INPUTS that returns it replaces ComfyUI's 'Value not in list')."""
    on_disk = set(cc.model_files(folder, with_dirs))
    missing = {k: v for k, v in choices.items() if v not in built_in | on_disk and not os.path.exists(v)}
    if not missing:
        return True
    names = ", ".join(f"{k} = {v!r}" for k, v in missing.items())
    where = " or ".join(f"{p}/" for p in cc.model_folders(folder))
    urls = [f"download {DOWNLOADS[v][1]}" for v in missing.values() if v in DOWNLOADS]
    return f"{names}: not found in {where}; {'; '.join(urls) or HOW_TO_GET[how]}"


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


def load_model(stage1: str, stage2: str, dtype: torch.dtype, runtime=None) -> SemanticGenModel:
    """A SemanticGenModel from dropdown names (the embedded model or files in models/semanticgen/), with the
    LoRAs, offloading, compilation and attention backend of `runtime` (a RuntimeConfig) applied."""
    from ..semanticgen_core.lab.embedded import embedded_path, manifest, replan_settings, samplers
    from ..semanticgen_core.models import build_pipeline
    from ..semanticgen_core.vae import latent_space_stats

    def path(name, part):
        return embedded_path(part) if name == EMBEDDED_MODEL else cc.model_path(name)

    s2 = None if stage2 == NO_STAGE2 else path(stage2, "stage2")
    embedded = stage1 == EMBEDDED_MODEL
    (sampler, plan_sampler, transfer_sampler), noise = (
        (samplers(manifest()), manifest()["plan_noise"]) if embedded else ((None,) * 3, 0.1)
    )
    replan, replan_sampler = replan_settings(manifest()) if embedded else (0.0, None)
    pipe = build_pipeline(path(stage1, "stage1"), s2, None, None, None, sampler, noise, cc.offload_device(), dtype,
                          plan_sampler=plan_sampler, transfer_sampler=transfer_sampler, transfer_replan=replan,
                          replan_sampler=replan_sampler)  # fmt: skip
    if runtime is not None:
        from ..semanticgen_core.runtime import configure_pipeline

        runtime.check(cc.torch_device())
        configure_pipeline(pipe, runtime, cc.offload_device())  # the samplers move it with cc.on_device
    return SemanticGenModel(pipe, *latent_space_stats(pipe.config.video, stage1), name=stage1)


# ----------------------------------------------------------------------------------------------------------------
# Nodes
# ----------------------------------------------------------------------------------------------------------------


def runtime_config(lora, runtime):
    """RuntimeConfig from the loader's optional sockets (SEMANTICGEN_LORA chain, SEMANTICGEN_RUNTIME options)."""
    from ..semanticgen_core.runtime import RuntimeConfig

    return RuntimeConfig(**(runtime or {}), loras=[(str(p), s) for p, s in lora or []])


RUNTIME = {
    "lora": ("SEMANTICGEN_LORA", {"tooltip": "LoRAs for the Wan base of the latent generator (SemanticGen LoRA Select)."}),
    "runtime": ("SEMANTICGEN_RUNTIME", {"tooltip": "Attention kernel, block offloading, compile, LoRA mode "
                "(SemanticGen Runtime Options); default: all blocks on the GPU, auto attention."}),
}  # fmt: skip


class SemanticGenRuntimeOptions:
    """How the generators run within a GPU budget -> SEMANTICGEN_RUNTIME (for the SemanticGen Model Loader)."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Fits the generators to your GPU: keep only some transformer blocks in VRAM (the rest stream from CPU "
        "memory), pick the attention kernel, compile the blocks, choose how LoRAs are applied."
    )
    RETURN_TYPES = ("SEMANTICGEN_RUNTIME",)
    RETURN_NAMES = ("runtime",)
    OUTPUT_TOOLTIPS = ("Options for the SemanticGen Model Loader's 'runtime' input.",)
    FUNCTION = "options"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "blocks_on_device": ("INT", {"default": -1, "min": -1, "max": 64, "tooltip": "Transformer blocks "
                                     "kept on the GPU; the others stream from CPU memory each step (slower, far less "
                                     "VRAM). -1: all."}),
                "attention": (["auto", "sdpa", "flash", "sage"], {"default": "auto", "tooltip": "Attention kernel: "
                              "auto = flash-attn for bf16/fp16 on CUDA when installed, else PyTorch SDPA; sage needs "
                              "the sageattention package."}),
                "compile": ("BOOLEAN", {"default": False, "tooltip": "torch.compile each transformer block (slow "
                            "first run)."}),
                "lora_mode": (["runtime", "merge"], {"default": "runtime", "tooltip": "runtime: LoRA adapters beside "
                              "the untouched weights; merge: added into the weights (no extra compute per step)."}),
            }
        }  # fmt: skip

    def options(self, blocks_on_device, attention, compile, lora_mode):
        from ..semanticgen_core.runtime import RuntimeConfig

        on_device = None if blocks_on_device < 0 else blocks_on_device
        rt = RuntimeConfig(attention, on_device, 1, compile, [], lora_mode)
        rt.check(cc.torch_device())  # e.g. sage without the package: named here, before anything loads
        return ({"attention": attention, "blocks_on_device": on_device, "compile": compile, "lora_mode": lora_mode},)


class SemanticGenLoraSelect:
    """A LoRA file from models/loras/ with a strength, chained onto earlier selections -> SEMANTICGEN_LORA."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Picks a Wan2.1 LoRA (diffusers/PEFT, ComfyUI or kohya/musubi layout) for the SemanticGen Model Loader. "
        "Chain several; the loader applies them to the latent generator."
    )
    RETURN_TYPES = ("SEMANTICGEN_LORA",)
    RETURN_NAMES = ("lora",)
    OUTPUT_TOOLTIPS = ("The chain of (LoRA file, strength) to connect to the loader's 'lora' input.",)
    FUNCTION = "select"

    @classmethod
    def INPUT_TYPES(cls):
        strength = {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.01, "tooltip": "Multiplier of the update."}
        return {
            "required": {
                "lora_name": (cc.model_files("loras"), {"tooltip": "A LoRA .safetensors file from models/loras/."}),
                "strength": ("FLOAT", strength),
            },
            "optional": {"prev_lora": ("SEMANTICGEN_LORA", {"tooltip": "LoRAs selected before this one."})},
        }

    def select(self, lora_name, strength, prev_lora=None):
        from ..semanticgen_core.lora import read_lora

        path = cc.model_path(lora_name, "loras")
        read_lora(path)  # a broken or unsupported file fails here, naming it, before the loader runs
        return ([*(prev_lora or []), (str(path), float(strength))],)


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
        required = {"stage1": (stage1, TIPS["stage1"]), "stage2": (stage2, TIPS["stage2"]), "dtype": DTYPE}
        return {"required": required, "optional": RUNTIME}

    @classmethod
    def VALIDATE_INPUTS(cls, stage1, stage2):
        return missing_files(
            {"stage1": stage1, "stage2": stage2}, {EMBEDDED_MODEL, NO_STAGE2}, cc.MODEL_FOLDER, "stage"
        )

    def load(self, stage1, stage2, dtype, lora=None, runtime=None):
        rt = runtime_config(lora, runtime)
        key = (stage1, stage2, dtype, repr(rt))
        return (self.cached(key, lambda: load_model(stage1, stage2, _dtype(dtype), rt)),)


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

    @classmethod
    def VALIDATE_INPUTS(cls, weights):
        return missing_files({"weights": weights}, {EMBEDDED_ENCODER}, cc.MODEL_FOLDER, "encoder", True)

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

    @classmethod
    def VALIDATE_INPUTS(cls, vae_name):
        return missing_files({"vae_name": vae_name}, {EMBEDDED_VAE}, "vae", "vae")

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
        from ..semanticgen_core.compose import split_prompt
        from ..semanticgen_core.lab.embedded import manifest
        from ..semanticgen_core.pipeline import warn_long_prompts

        encoder = text_encoder(manifest()["text_max_length"])
        main, parts = split_prompt(text)  # "A AND B :w": a composed prompt (compose.py), B guiding stage B too
        warn_long_prompts(encoder, [main, *(p for p, _ in parts)])  # max_length tokens are read: say if more given
        with torch.no_grad():
            encoded = [make_conditioning(*encoder.encode([t])) for t in (main, *(p for p, _ in parts))]
        return (composed_conditioning(encoded[0], list(zip(encoded[1:], (w for _, w in parts)))),)
