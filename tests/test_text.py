"""Text encoders: tiny umT5 and BERT models + tokenizers built offline, saved in the real layouts, loaded back."""

import pytest
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

from semanticgen_core.checkpoint import CheckpointError
from semanticgen_core.text import (
    SentenceTextEncoder,
    TextEncoder,
    UMT5TextEncoder,
    clean_prompt,
    load_text_encoder,
)

WORDS = ["a", "cat", "dog", "runs", "on", "the", "green", "grass", "red", "ball", "video", "of"]
PROMPTS = ["a cat runs on the green grass", "", "red  ball &amp; dog"]


def t5_tokenizer() -> PreTrainedTokenizerFast:
    """A tiny SentencePiece-style Unigram tokenizer with umT5's special tokens (pad 0, eos 1, unk 2)."""
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [("\u2581" + w, -2.0) for w in WORDS]
    vocab += [(c, -6.0) for c in "abcdefghijklmnopqrstuvwxyz&;\u2581"]
    tk = Tokenizer(models.Unigram(vocab, unk_id=2))
    tk.pre_tokenizer, tk.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tk.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def bert_tokenizer() -> PreTrainedTokenizerFast:
    """A tiny WordLevel tokenizer with BERT's [CLS] ... [SEP] template."""
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )


@pytest.fixture(scope="module")
def umt5_pipeline(tmp_path_factory):
    """A Wan diffusers pipeline folder: text_encoder/ (UMT5EncoderModel) + tokenizer/."""
    root = tmp_path_factory.mktemp("wan")
    tok = t5_tokenizer()
    cfg = UMT5Config(
        vocab_size=len(tok),
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    torch.manual_seed(0)
    model = UMT5EncoderModel(cfg).eval()
    model.save_pretrained(root / "text_encoder")
    tok.save_pretrained(root / "tokenizer")
    return root, model, tok


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    """An all-MiniLM-style folder: config.json, model.safetensors and tokenizer files side by side."""
    root = tmp_path_factory.mktemp("minilm")
    tok = bert_tokenizer()
    cfg = BertConfig(
        vocab_size=len(tok), hidden_size=12, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24
    )
    torch.manual_seed(0)
    model = BertModel(cfg).eval()
    model.save_pretrained(root)
    tok.save_pretrained(root)
    return root, model, tok


def check_padding(ctx, mask, ref_hidden, ref_attn):
    """Valid positions equal the raw model output; padding positions are exactly zero and masked out."""
    lengths = ref_attn.sum(1)
    assert torch.equal(mask, ref_attn.bool())
    for i, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ctx[i, :n], ref_hidden[i, :n])
        assert torch.count_nonzero(ctx[i, n:]) == 0
        assert mask[i, :n].all() and not mask[i, n:].any()


def test_umt5_pipeline_layout(umt5_pipeline):
    root, model, tok = umt5_pipeline
    enc = UMT5TextEncoder.from_pretrained(root, max_length=12)
    assert isinstance(enc, TextEncoder) and (enc.dim, enc.max_length) == (16, 12)
    ctx, mask = enc.encode(PROMPTS)
    assert ctx.shape == (3, 12, 16) and mask.shape == (3, 12) and mask.dtype == torch.bool
    cleaned = [clean_prompt(p) for p in PROMPTS]
    assert cleaned[2] == "red ball & dog"
    ref = tok(cleaned, padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).last_hidden_state
    check_padding(ctx, mask, hidden, ref["attention_mask"])
    assert mask.sum(1).tolist()[1] == 1  # "" is just </s>: the CFG negative prompt works
    assert mask[0].sum() == 8  # seven words + </s>


def test_umt5_single_folder_truncation_and_dtype(umt5_pipeline, tmp_path):
    _, model, tok = umt5_pipeline
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    enc = load_text_encoder("umt5", tmp_path, max_length=4)
    ctx, mask = enc.encode(["a cat runs on the green grass"])
    assert ctx.shape == (1, 4, 16) and mask.all()  # truncated to max_length
    from semanticgen_core.pipeline import warn_long_prompts

    assert enc.token_counts(["a cat runs on the green grass", "a"]) == [8, 2]  # 7 pieces + eos: cut at 4
    with pytest.warns(UserWarning, match="has 8 tokens; the text encoder reads the first 4"):
        warn_long_prompts(enc, ["a cat runs on the green grass"])
    default = UMT5TextEncoder.from_pretrained(tmp_path, dtype="bf16")
    assert default.max_length == 512 and default.dtype == torch.bfloat16
    ctx, mask = default.encode("a dog")
    assert ctx.shape == (1, 512, 16) and ctx.dtype == torch.bfloat16 and mask.sum() == 3


def test_sentence_encoder(bert_folder):
    root, model, tok = bert_folder
    enc = load_text_encoder("sentence", root)
    assert isinstance(enc, SentenceTextEncoder) and (enc.dim, enc.max_length) == (12, 32)
    ctx, mask = enc(PROMPTS)
    assert ctx.shape == (3, 32, 12)
    ref = tok(PROMPTS, padding="max_length", max_length=32, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=ref["input_ids"], attention_mask=ref["attention_mask"]).last_hidden_state
    check_padding(ctx, mask, hidden, ref["attention_mask"])
    assert mask.sum(1).tolist() == [9, 2, 8]  # [CLS] words [SEP]; no cleaning: "&amp;" is 3 pieces


def test_loading_errors(bert_folder, umt5_pipeline, tmp_path):
    with pytest.raises(ValueError, match="unknown text encoder kind"):
        load_text_encoder("hash", tmp_path)
    with pytest.raises(CheckpointError, match="no such folder"):
        load_text_encoder("sentence", tmp_path / "absent")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_text_encoder("sentence", tmp_path)
    root, _, _ = umt5_pipeline
    with pytest.raises(CheckpointError, match="holds a .bert. model, not umT5"):
        load_text_encoder("umt5", bert_folder[0])
    enc = load_text_encoder("umt5", root, max_length=8)
    with pytest.raises(ValueError, match="list of strings"):
        enc.encode([1, 2])


def test_missing_weight_is_named(umt5_pipeline, tmp_path):
    root, _, _ = umt5_pipeline
    (tmp_path / "config.json").write_text((root / "text_encoder" / "config.json").read_text())
    state = load_file(root / "text_encoder" / "model.safetensors")
    key = "encoder.block.1.layer.1.DenseReluDense.wo.weight"
    save_file({k: v for k, v in state.items() if k != key}, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=key.replace(".", r"\.")):
        UMT5TextEncoder.from_pretrained(tmp_path, tokenizer_path=root / "tokenizer")
