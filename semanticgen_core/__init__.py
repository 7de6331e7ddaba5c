"""semanticgen_core: pure-PyTorch implementation of SemanticGen (arXiv 2512.20619). Never imports ComfyUI."""

from .compressor import SemanticCompressor
from .config import DIT_CONFIGS, DiTConfig, PipelineConfig, SamplerConfig, SemanticSpec, VideoSpec
from .dit import SemanticGenDiT
from .pipeline import SemanticGenPipeline

__all__ = [
    "DIT_CONFIGS",
    "DiTConfig",
    "PipelineConfig",
    "SamplerConfig",
    "SemanticCompressor",
    "SemanticGenDiT",
    "SemanticGenPipeline",
    "SemanticSpec",
    "VideoSpec",
]
__version__ = "0.1.0"
