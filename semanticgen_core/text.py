"""Text encoders: prompts -> (context [B, S, D], mask [B, S] bool), zero beyond each prompt's true length.

Every encoder pads to a fixed `max_length` S, so batches, the CFG negative prompt and cached contexts share one
shape; positions past a prompt's true length are exactly 0 and False in the mask (Wan2.1's convention: encode
with the attention mask, trim to the true length, zero-pad back to S).

- `UMT5TextEncoder`: Wan2.1's umT5-xxl (transformers `UMT5EncoderModel`), S = 512, D = 4096.
- `SentenceTextEncoder`: any small transformers encoder (e.g. an all-MiniLM-L6-v2 folder), per-token features.

Weights and tokenizers load from local folders only (`local_files_only=True`, safetensors only, no remote code).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, UMT5EncoderModel

from .checkpoint import CheckpointError
from .precision import resolve_dtype

_UNUSED = ("pooler.",)  # BERT-style pooler: present in some folders, absent in others, not used for per-token features


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: ftfy fix (when installed), HTML unescape, whitespace collapse."""
    try:
        import ftfy  # optional, as in Wan's own pipeline
    except ImportError:
        ftfy = None
    if ftfy is not None:
        text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


def _as_prompts(prompts) -> list[str]:
    """A list of strings from a string or a sequence of strings."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or not all(isinstance(p, str) for p in prompts):
        raise ValueError(f"prompts must be a non-empty list of strings, got {prompts!r}")
    return prompts


# ----------------------------------------------------------------------------------------------------------------
# Interface
# ----------------------------------------------------------------------------------------------------------------


class TextEncoder(nn.Module):
    """Frozen text encoder: `encode(prompts) -> (ctx [B, max_length, dim] float, mask [B, max_length] bool)`."""

    dim: int
    max_length: int

    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ctx, mask) for a list of prompts; ctx is exactly 0 where mask is False."""
        raise NotImplementedError

    def forward(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as `encode`."""
        return self.encode(prompts)


class HFTextEncoder(TextEncoder):
    """A transformers encoder + tokenizer, padded to max_length, features zeroed past each true length."""

    def __init__(self, model: nn.Module, tokenizer, max_length: int, clean: bool = False):
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "right"  # the true length is then a prefix of every row
        self.max_length = int(max_length)
        self.dim = int(model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.d_model)
        self.clean = clean

    @property
    def device(self) -> torch.device:
        """Device of the weights."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the weights."""
        return next(self.model.parameters()).dtype

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask) [B, max_length]: padded to max_length, truncated, special tokens added."""
        prompts = _as_prompts(prompts)
        if self.clean:
            prompts = [clean_prompt(p) for p in prompts]
        out = self.tokenizer(
            prompts,
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        return out["input_ids"], out["attention_mask"]

    def token_counts(self, prompts: list[str]) -> list[int]:
        """Tokens of each prompt before truncation to max_length (special tokens included)."""
        prompts = [clean_prompt(p) if self.clean else p for p in _as_prompts(prompts)]
        return [len(ids) for ids in self.tokenizer(prompts, add_special_tokens=True)["input_ids"]]

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ctx [B, max_length, dim], mask [B, max_length] bool); ctx is 0 past each prompt's true length."""
        ids, attn = self.tokenize(prompts)
        ids, attn = ids.to(self.device), attn.to(self.device)
        hidden = self.model(input_ids=ids, attention_mask=attn).last_hidden_state
        lengths = attn.sum(dim=1)
        mask = torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]
        ctx = torch.where(mask[..., None], hidden, torch.zeros((), dtype=hidden.dtype, device=hidden.device))
        return ctx, mask


# ----------------------------------------------------------------------------------------------------------------
# Concrete encoders
# ----------------------------------------------------------------------------------------------------------------


def _resolve_folders(path: str | Path, tokenizer_path: str | Path | None) -> tuple[Path, Path]:
    """(model folder, tokenizer folder): a pipeline folder's text_encoder/ + tokenizer/, or one folder for both."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such folder (a text encoder loads from a local folder)")
    model_dir = path / "text_encoder" if (path / "text_encoder").is_dir() else path
    if tokenizer_path is not None:
        tok_dir = Path(tokenizer_path)
    else:
        tok_dir = path / "tokenizer" if (path / "tokenizer").is_dir() else model_dir
    if not (model_dir / "config.json").is_file():
        raise CheckpointError(f"{model_dir}: no config.json (expected a transformers model folder)")
    return model_dir, tok_dir


def _load_model(cls, folder: Path, dtype: torch.dtype, device) -> nn.Module:
    """from_pretrained on a local folder, safetensors only; any missing/unexpected/mismatched weight raises."""
    try:
        model, info = cls.from_pretrained(
            folder,
            local_files_only=True,
            trust_remote_code=False,
            use_safetensors=True,
            dtype=dtype,
            output_loading_info=True,
        )
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{folder}: cannot load the text encoder weights ({err})") from err
    bad = {k: sorted(map(str, info.get(k) or ())) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    bad = {k: [n for n in v if not n.startswith(_UNUSED)] for k, v in bad.items()}  # the pooler is never used
    if any(bad.values()):
        raise CheckpointError(f"{folder}: text encoder weights do not match its config: {bad}")
    return model.to(device)


def _load_tokenizer(folder: Path):
    """AutoTokenizer from a local folder, no remote code."""
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{folder}: cannot load the tokenizer ({err})") from err


class UMT5TextEncoder(HFTextEncoder):
    """Wan2.1's text encoder: umT5 encoder, 512 tokens, Wan prompt cleaning, zero padding past the true length."""

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype=torch.float32,
        device="cpu",
        max_length: int = 512,
        tokenizer_path: str | Path | None = None,
        clean: bool = True,
    ) -> UMT5TextEncoder:
        """Load from a folder holding model + tokenizer, or a Wan diffusers pipeline (text_encoder/, tokenizer/)."""
        model_dir, tok_dir = _resolve_folders(path, tokenizer_path)
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
        if model_type != "umt5":
            raise CheckpointError(f"{model_dir}: holds a {model_type!r} model, not umT5 (Wan2.1's text encoder)")
        model = _load_model(UMT5EncoderModel, model_dir, resolve_dtype(dtype), device)
        return cls(model, _load_tokenizer(tok_dir), max_length, clean=clean)


class SentenceTextEncoder(HFTextEncoder):
    """A small transformers encoder (e.g. all-MiniLM-L6-v2): per-token last_hidden_state, zero-padded to 32."""

    def __init__(self, model: nn.Module, tokenizer, max_length: int = 32, clean: bool = False):
        if getattr(model.config, "is_encoder_decoder", False):
            model = model.get_encoder()  # e.g. a T5 folder: keep the encoder stack
        super().__init__(model, tokenizer, max_length, clean=clean)

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype=torch.float32,
        device="cpu",
        max_length: int = 32,
        tokenizer_path: str | Path | None = None,
    ) -> SentenceTextEncoder:
        """Load AutoModel + AutoTokenizer from one local folder (or text_encoder/ + tokenizer/ subfolders)."""
        model_dir, tok_dir = _resolve_folders(path, tokenizer_path)
        model = _load_model(AutoModel, model_dir, resolve_dtype(dtype), device)
        return cls(model, _load_tokenizer(tok_dir), max_length)


TEXT_ENCODERS: dict[str, type[HFTextEncoder]] = {"umt5": UMT5TextEncoder, "sentence": SentenceTextEncoder}


def load_text_encoder(kind: str, path: str | Path, dtype=torch.float32, device="cpu", **kwargs) -> HFTextEncoder:
    """A text encoder by kind ('umt5' | 'sentence') from a local folder; kwargs go to its from_pretrained."""
    if kind not in TEXT_ENCODERS:
        raise ValueError(f"unknown text encoder kind {kind!r}; one of {sorted(TEXT_ENCODERS)}")
    return TEXT_ENCODERS[kind].from_pretrained(path, dtype=dtype, device=device, **kwargs)
