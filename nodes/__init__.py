"""ComfyUI nodes (thin glue over semanticgen_core), registered with the classic NODE_CLASS_MAPPINGS API."""

from .loaders import (
    LoadSemanticEncoder,
    SemanticGenLoraSelect,
    SemanticGenModelLoader,
    SemanticGenRuntimeOptions,
    SemanticGenTextEncode,
    SemanticGenVAELoader,
)
from .sampling import (
    EncodeReferenceSemantics,
    GenerateSemanticPlan,
    PreviewSemanticPlan,
    SemanticGenDecode,
    SemanticToLatent,
    SwinLongVideoSampler,
)

NODE_CLASS_MAPPINGS = {
    "SemanticGenModelLoader": SemanticGenModelLoader,
    "SemanticGenLoraSelect": SemanticGenLoraSelect,
    "SemanticGenRuntimeOptions": SemanticGenRuntimeOptions,
    "LoadSemanticEncoder": LoadSemanticEncoder,
    "SemanticGenVAELoader": SemanticGenVAELoader,
    "SemanticGenTextEncode": SemanticGenTextEncode,
    "EncodeReferenceSemantics": EncodeReferenceSemantics,
    "GenerateSemanticPlan": GenerateSemanticPlan,
    "PreviewSemanticPlan": PreviewSemanticPlan,
    "SemanticToLatent": SemanticToLatent,
    "SwinLongVideoSampler": SwinLongVideoSampler,
    "SemanticGenDecode": SemanticGenDecode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "SemanticGenModelLoader": "SemanticGen Model Loader",
    "SemanticGenLoraSelect": "SemanticGen LoRA Select",
    "SemanticGenRuntimeOptions": "SemanticGen Runtime Options",
    "LoadSemanticEncoder": "Load Semantic Encoder",
    "SemanticGenVAELoader": "SemanticGen VAE Loader",
    "SemanticGenTextEncode": "SemanticGen Text Encode (embedded MiniLM)",
    "EncodeReferenceSemantics": "Encode Reference Semantics",
    "GenerateSemanticPlan": "Generate Semantic Plan (stage A)",
    "PreviewSemanticPlan": "Preview Semantic Plan",
    "SemanticToLatent": "Semantic To Latent (stage B)",
    "SwinLongVideoSampler": "Swin Long Video Sampler (stage B, long)",
    "SemanticGenDecode": "SemanticGen Decode",
}
