"""Semantic encoders: loading only the vision weights of tiny Qwen2.5-VL / V-JEPA 2 checkpoints, strictly, and
reproducing transformers' own outputs and preprocessing."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from semanticgen_core import checkpoint
from semanticgen_core.checkpoint import CheckpointError, save_checkpoint
from semanticgen_core.encoders import (
    ENCODERS,
    Qwen25VLEncoder,
    VJEPA2SemanticEncoder,
    base,
    load_semantic_encoder,
)
from semanticgen_core.encoders.qwen2_5_vl import VIDEO_MAX_PIXELS, VIDEO_MIN_PIXELS, smart_resize

SMALL = {"min_pixels": 56 * 56}  # keep tiny test frames tiny (the video default would upscale to >= 128 tokens)
VISION = dict(
    depth=2,
    hidden_size=32,
    num_heads=2,
    out_hidden_size=24,
    intermediate_size=64,
    fullatt_block_indexes=[1],
    window_size=56,
)


def _randomize(model: torch.nn.Module, std: float = 0.1, seed: int = 0) -> torch.nn.Module:
    """Fill every parameter with noise so a weight left at its init value cannot pass unnoticed."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


def _frames(t: int, h: int, w: int, b: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (t, h, w, 3) if b is None else (b, t, h, w, 3)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _smooth_frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """Natural-image-like frames (bilinear-upsampled noise): resamplers then agree to +-1 level.

    On white noise PIL's bicubic (uint8 passes, clipped in between) and torch's float bicubic differ by up to 18
    levels at a few overshooting pixels, which says nothing about the layout being compared.
    """
    low = torch.from_numpy(_frames(t, max(2, h // 8), max(2, w // 8), seed=seed)).permute(0, 3, 1, 2).float()
    up = torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear", align_corners=False)
    return up.round().clamp(0, 255).permute(0, 2, 3, 1).numpy().astype(np.uint8)


def _state_file(folder, state: dict, config: dict) -> None:
    """A single-file Hugging Face checkpoint: config.json + model.safetensors."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def qwen_full(tmp_path_factory):
    """A tiny random Qwen2.5-VL (text + vision), saved in 13 shards with an index."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    text = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    text.update(num_key_value_heads=1, rope_parameters={"rope_type": "default", "mrope_section": [2, 2, 4]})
    text.update(bos_token_id=0, eos_token_id=1)
    cfg = Qwen2_5_VLConfig(text_config=text, vision_config=VISION)
    torch.manual_seed(0)
    model = _randomize(Qwen2_5_VLForConditionalGeneration(cfg)).eval()
    folder = tmp_path_factory.mktemp("qwen_full")
    model.save_pretrained(folder, max_shard_size="20KB")
    return folder, model


@pytest.fixture(scope="module")
def qwen_enc(qwen_full):
    return load_semantic_encoder("qwen2_5_vl", qwen_full[0], **SMALL)


# ----------------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------------


def test_registry_lists_kinds_and_rejects_unknown():
    assert ENCODERS["qwen2_5_vl"] is Qwen25VLEncoder and ENCODERS["vjepa2"] is VJEPA2SemanticEncoder
    with pytest.raises(ValueError, match=r"unknown semantic encoder kind 'nope'.*qwen2_5_vl.*vjepa2"):
        load_semantic_encoder("nope", "/nonexistent")


# ----------------------------------------------------------------------------------------------------------------
# Qwen2.5-VL: loading
# ----------------------------------------------------------------------------------------------------------------


def test_qwen_loads_only_visual_shards_and_matches_transformers(qwen_full, monkeypatch):
    folder, full = qwen_full
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    visual = {f for k, f in weight_map.items() if k.startswith("visual.")}  # transformers 5 saves the Hub layout
    other = set(weight_map.values()) - visual
    assert other, "the test checkpoint must have shards without vision tensors"
    opened = []
    real_open = base.safe_open
    for module in (base, checkpoint):  # headers (base) and tensors (checkpoint.read_tensor)
        monkeypatch.setattr(module, "safe_open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k))
    enc = load_semantic_encoder("qwen2_5_vl", folder, **SMALL)
    assert {p.rsplit("/", 1)[-1] for p in opened} == visual  # every vision shard, no language-model shard
    assert not any(n.startswith(("language_model", "lm_head")) for n, _ in enc.named_parameters())

    video = _frames(3, 60, 90)  # odd frame count, sides not multiples of 28
    pixel_values, grid_thw = enc.preprocess(video)
    with torch.no_grad():
        ref = full.model.visual(pixel_values, grid_thw=grid_thw).pooler_output
    torch.testing.assert_close(enc.tower(pixel_values, grid_thw), ref, atol=1e-5, rtol=0)
    feats = enc.encode(video)
    assert tuple(feats.shape) == (1, 24, *enc.grid(3, 60, 90)) == (1, 24, 2, 2, 3)
    torch.testing.assert_close(feats[0], ref.reshape(2, 2, 3, 24).permute(3, 0, 1, 2), atol=1e-5, rtol=0)
    assert enc.spec.to_dict() == dict(
        kind="qwen2_5_vl",
        dim=24,
        compressed_dim=24,
        fps=1.6,
        temporal_patch=2,
        spatial_patch=28,
        min_pixels=56 * 56,
        max_pixels=768 * 28 * 28,
        crop=0,
    )


def test_qwen_hub_layout_single_file_and_strict_keys(qwen_full, qwen_enc, tmp_path):
    folder, full = qwen_full
    config = json.loads((folder / "config.json").read_text())
    # in-memory layout (saved by transformers 4.52-4.57): `model.visual.` and `model.language_model.` prefixes
    state = full.state_dict()
    assert any(k.startswith("model.visual.") for k in state)
    _state_file(tmp_path / "new", state, config)
    video = _frames(2, 56, 84)
    enc = load_semantic_encoder("qwen2_5_vl", tmp_path / "new" / "model.safetensors", **SMALL)  # the file itself
    torch.testing.assert_close(enc.encode(video), qwen_enc.encode(video), atol=0, rtol=0)

    missing = dict(state)
    del missing["model.visual.blocks.1.mlp.down_proj.weight"]
    _state_file(tmp_path / "missing", missing, config)
    with pytest.raises(CheckpointError, match=r"missing keys \['blocks\.1\.mlp\.down_proj\.weight'\]"):
        load_semantic_encoder("qwen2_5_vl", tmp_path / "missing")

    extra = {**state, "model.visual.blocks.0.attn.extra.weight": torch.zeros(2)}
    _state_file(tmp_path / "extra", extra, config)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['blocks\.0\.attn\.extra\.weight'\]"):
        load_semantic_encoder("qwen2_5_vl", tmp_path / "extra")

    text_only = {k: v for k, v in state.items() if not k.startswith("model.visual.")}
    _state_file(tmp_path / "text", text_only, config)
    with pytest.raises(CheckpointError, match="no vision-tower tensors"):
        load_semantic_encoder("qwen2_5_vl", tmp_path / "text")


def test_qwen_own_format_roundtrip_and_role_check(qwen_enc, tmp_path):
    video = _frames(4, 56, 84)
    file = qwen_enc.save(tmp_path / "enc.safetensors")
    folder_file = qwen_enc.save(tmp_path / "enc_dir")
    for path in (file, tmp_path / "enc_dir"):
        enc = load_semantic_encoder("qwen2_5_vl", path)
        assert enc.min_pixels == qwen_enc.min_pixels and enc.spec == qwen_enc.spec
        torch.testing.assert_close(enc.encode(video), qwen_enc.encode(video), atol=0, rtol=0)
    assert folder_file.parent == tmp_path / "enc_dir"
    qwen_enc.model.save_pretrained(tmp_path / "tower")  # a vision tower saved alone: unprefixed keys
    enc = load_semantic_encoder("qwen2_5_vl", tmp_path / "tower", **SMALL)
    torch.testing.assert_close(enc.encode(video), qwen_enc.encode(video), atol=0, rtol=0)
    fresh = Qwen25VLEncoder.from_config(VISION, **SMALL)
    assert fresh.encode(video).shape == qwen_enc.encode(video).shape
    save_checkpoint(tmp_path / "comp.safetensors", {"w": torch.zeros(1)}, role="compressor")
    with pytest.raises(CheckpointError, match="holds a compressor"):
        load_semantic_encoder("qwen2_5_vl", tmp_path / "comp.safetensors")


def test_qwen_dtype(qwen_full, qwen_enc):
    video = _frames(2, 56, 84)
    bf16 = load_semantic_encoder("qwen2_5_vl", qwen_full[0], dtype="bf16", **SMALL)
    assert bf16.dtype == torch.bfloat16 and bf16.model.rotary_pos_emb.inv_freq.dtype == torch.float32
    out, ref = bf16.encode(video), qwen_enc.encode(video)
    assert out.dtype == torch.float32 and (out - ref).norm() < 0.05 * ref.norm()
    assert load_semantic_encoder("qwen2_5_vl", qwen_full[0], dtype="auto").dtype == torch.float32  # config: float32


def test_qwen_auto_dtype_follows_config(qwen_full, tmp_path):
    folder, full = qwen_full
    config = json.loads((folder / "config.json").read_text())
    config.pop("dtype", None)
    _state_file(tmp_path / "old", full.state_dict(), {**config, "torch_dtype": "bfloat16"})  # pre-v5 spelling
    assert load_semantic_encoder("qwen2_5_vl", tmp_path / "old", dtype="auto").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        load_semantic_encoder("qwen2_5_vl", tmp_path / "old", dtype="int8")


# ----------------------------------------------------------------------------------------------------------------
# Qwen2.5-VL: preprocessing and layout
# ----------------------------------------------------------------------------------------------------------------


def test_qwen_preprocess_shapes_and_padding(qwen_enc):
    pixel_values, grid_thw = qwen_enc.preprocess(_frames(3, 60, 90))  # 60x90 -> 56x84 (4x6 patches), 3 -> 4 frames
    assert grid_thw.tolist() == [[2, 4, 6]] and tuple(pixel_values.shape) == (2 * 4 * 6, 3 * 2 * 14 * 14)
    last = pixel_values[24:].reshape(24, 3, 2, 14 * 14)
    torch.testing.assert_close(last[:, :, 0], last[:, :, 1])  # padded slice: the last frame twice
    first = pixel_values[:24].reshape(24, 3, 2, 14 * 14)
    assert not torch.allclose(first[:, :, 0], first[:, :, 1])
    pixel_values, grid_thw = qwen_enc.preprocess(_frames(5, 30, 200, b=2))
    assert grid_thw.tolist() == [[3, 2, 14]] * 2 and pixel_values.shape[0] == 2 * 3 * 2 * 14
    assert qwen_enc.grid(5, 30, 200) == (3, 1, 7)


def test_smart_resize_matches_transformers_and_video_defaults():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize

    for h, w in [(480, 832), (60, 90), (1080, 1920), (28, 28), (720, 1280), (100, 3000), (17, 23)]:
        for bounds in [(VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS), (56 * 56, 28 * 28 * 1280)]:
            assert smart_resize(h, w, 28, *bounds) == hf_smart_resize(h, w, 28, *bounds)
    enc = Qwen25VLEncoder.from_config(VISION)  # video bounds: 128..768 tokens of 28x28 per frame
    assert enc.grid(5, 480, 832) == (3, 17, 30)
    assert enc.grid(2, 56, 84) == (1, 10, 14)  # upscaled to reach 128 * 28 * 28 pixels
    assert enc.grid(1, 1080, 1920) == (1, 20, 36)  # downscaled to at most 768 * 28 * 28 pixels


def test_qwen_preprocess_matches_transformers_image_processor(qwen_enc):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    proc = Qwen2VLImageProcessorPil(min_pixels=qwen_enc.min_pixels, max_pixels=qwen_enc.max_pixels)
    for h, w, atol in [(56, 84, 1e-5), (60, 90, 0.02)]:  # no resize: exact; resize: 1 uint8 level (PIL vs torch)
        image = _smooth_frames(1, h, w)
        ref = proc(images=[image[0]], return_tensors="pt")
        pixel_values, grid_thw = qwen_enc.preprocess(image)
        assert grid_thw.tolist() == ref["image_grid_thw"].tolist()
        torch.testing.assert_close(pixel_values, ref["pixel_values"], atol=atol, rtol=0)
        assert (pixel_values - ref["pixel_values"]).abs().mean() < atol / 5


def test_qwen_preprocess_matches_transformers_video_processor(qwen_enc):
    pytest.importorskip("torchvision", reason="transformers' Qwen2VLVideoProcessor needs torchvision")
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    proc = Qwen2VLVideoProcessor(min_pixels=qwen_enc.min_pixels, max_pixels=qwen_enc.max_pixels)
    video = _smooth_frames(3, 60, 90)
    ref = proc(videos=[torch.from_numpy(video)], return_tensors="pt", cap_pixels_per_frame=False)
    pixel_values, grid_thw = qwen_enc.preprocess(video)
    assert grid_thw.tolist() == ref["video_grid_thw"].tolist()
    torch.testing.assert_close(pixel_values, ref["pixel_values_videos"], atol=0.02, rtol=0)


def test_qwen_features_are_raster_order():
    """With attention outputs zeroed every token sees only its own 2x28x28 pixels: a local edit moves one cell."""
    torch.manual_seed(1)
    enc = Qwen25VLEncoder.from_config(VISION, **SMALL)
    _randomize(enc.model, seed=1)
    with torch.no_grad():
        for blk in enc.model.blocks:
            blk.attn.proj.weight.zero_()
            blk.attn.proj.bias.zero_()
    video = _frames(4, 56, 84)
    edited = video.copy()
    edited[2, 28:56, 56:84] = 255 - edited[2, 28:56, 56:84]  # frame 2 = slice 1, merged row 1, merged col 2
    changed = (enc.encode(edited) - enc.encode(video)).abs().amax(dim=1)[0] > 1e-6
    assert changed.nonzero().tolist() == [[1, 1, 2]]


def test_qwen_chunked_equals_unchunked_and_bounds_tower_calls(qwen_enc):
    video = _frames(7, 60, 90, b=2)
    slices = []
    hook = qwen_enc.model.register_forward_pre_hook(
        lambda m, args, kw: slices.append(int(kw["grid_thw"][:, 0].sum())), with_kwargs=True
    )
    try:
        full = qwen_enc.encode(video)
        for chunk in (2, 3, 4):
            slices.clear()
            torch.testing.assert_close(qwen_enc.encode(video, chunk_frames=chunk), full, atol=1e-5, rtol=0)
            assert max(slices) <= 2 * (chunk // 2)  # batch of 2 clips x chunk // 2 slices per call
    finally:
        hook.remove()
    assert tuple(full.shape) == (2, 24, 4, 2, 3)
    for i in range(2):
        torch.testing.assert_close(qwen_enc.encode(video[i]), full[i : i + 1], atol=1e-5, rtol=0)


def test_input_validation(qwen_enc):
    video = _frames(2, 56, 84)
    bad = [
        (video[0], r"\[T, H, W, 3\]"),  # 3-D
        (np.zeros((2, 56, 84, 4), np.uint8), r"got shape \(1, 2, 56, 84, 4\)"),
        (video.astype(np.float32), r"not \[0, 1\]"),
        (video.astype(np.int32), "dtype torch.int32"),
        ("frames", "got str"),
    ]
    for v, msg in bad:
        with pytest.raises(ValueError, match=msg):
            qwen_enc.encode(v)
    with pytest.raises(ValueError, match="chunk_frames=1"):
        qwen_enc.encode(video, chunk_frames=1)
    as_float = torch.from_numpy(video).float() / 255  # same frames as floats in [0, 1]
    torch.testing.assert_close(qwen_enc.encode(as_float), qwen_enc.encode(video), atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------------------------------------------
# V-JEPA 2
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vjepa_full(tmp_path_factory):
    from transformers import VJEPA2Config, VJEPA2Model

    cfg = VJEPA2Config(crop_size=32, frames_per_clip=4, hidden_size=32, num_attention_heads=2, num_hidden_layers=2)
    cfg.update(dict(mlp_ratio=2.0, pred_hidden_size=16, pred_num_attention_heads=2, pred_num_hidden_layers=1))
    torch.manual_seed(0)
    model = _randomize(VJEPA2Model(cfg)).eval()
    folder = tmp_path_factory.mktemp("vjepa2")
    model.save_pretrained(folder)
    return folder, model


def test_vjepa2_matches_transformers(vjepa_full):
    folder, full = vjepa_full
    enc = load_semantic_encoder("vjepa2", folder)
    assert not any(n.startswith("predictor") for n, _ in enc.named_parameters())
    video = _frames(5, 40, 48)  # odd frames, not square: resize shorter side to 36, center-crop 32
    pixel_values = enc.preprocess(video)
    assert tuple(pixel_values.shape) == (1, 6, 3, 32, 32)
    torch.testing.assert_close(pixel_values[:, 5], pixel_values[:, 4])  # padded with the last frame
    with torch.no_grad():
        ref = full(pixel_values_videos=pixel_values, skip_predictor=True).last_hidden_state
    feats = enc.encode(video)
    assert tuple(feats.shape) == (1, 32, *enc.grid(5, 40, 48)) == (1, 32, 3, 2, 2)
    torch.testing.assert_close(feats, ref.reshape(1, 3, 2, 2, 32).permute(0, 4, 1, 2, 3), atol=1e-5, rtol=0)
    assert enc.spec.kind == "vjepa2" and enc.spec.dim == 32 and enc.spec.spatial_patch == 16
    assert tuple(enc.encode(video, chunk_frames=2).shape) == (1, 32, 3, 2, 2)  # independent 2-frame clips


def test_vjepa2_strict_keys_and_classifier_layout(vjepa_full, tmp_path):
    folder, full = vjepa_full
    config = json.loads((folder / "config.json").read_text())
    state = full.state_dict()
    cls_state = {"vjepa2." + k: v for k, v in state.items()} | {"classifier.weight": torch.zeros(3, 32)}
    _state_file(tmp_path / "cls", cls_state, config)
    video = _frames(2, 32, 32)
    ref = load_semantic_encoder("vjepa2", folder).encode(video)
    torch.testing.assert_close(load_semantic_encoder("vjepa2", tmp_path / "cls").encode(video), ref)

    missing = {k: v for k, v in state.items() if k != "encoder.layernorm.weight"}
    _state_file(tmp_path / "missing", missing, config)
    with pytest.raises(CheckpointError, match=r"missing keys \['layernorm\.weight'\]"):
        load_semantic_encoder("vjepa2", tmp_path / "missing")
    _state_file(tmp_path / "extra", {**state, "head.weight": torch.zeros(1)}, config)
    with pytest.raises(CheckpointError, match=r"unexpected keys \['head\.weight'\]"):
        load_semantic_encoder("vjepa2", tmp_path / "extra")
    shutil.rmtree(tmp_path / "extra")
    with pytest.raises(CheckpointError, match="not a V-JEPA 2 folder"):
        load_semantic_encoder("vjepa2", tmp_path / "extra")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_encoders_on_cuda_match_cpu(qwen_full, qwen_enc, vjepa_full):
    video = _frames(3, 60, 90)
    gpu = load_semantic_encoder("qwen2_5_vl", qwen_full[0], device="cuda", **SMALL)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.encode(video).cpu(), qwen_enc.encode(video), atol=1e-4, rtol=1e-4)
    cpu_v = load_semantic_encoder("vjepa2", vjepa_full[0])
    gpu_v = load_semantic_encoder("vjepa2", vjepa_full[0], device="cuda")
    torch.testing.assert_close(gpu_v.encode(video).cpu(), cpu_v.encode(video), atol=1e-4, rtol=1e-4)


def test_spec_grid_predicts_the_encoder_grid(vjepa_full):
    # a plan is shaped from the checkpoint's SemanticSpec alone (no encoder loaded): it must match the encoder
    for enc in (Qwen25VLEncoder.from_config(VISION), Qwen25VLEncoder.from_config(VISION, **SMALL)):
        spec = enc.spec
        for frames, h, w in [(4, 480, 832), (6, 720, 1280), (2, 60, 90), (3, 28, 28)]:
            assert spec.grid(frames / spec.fps, h, w) == enc.grid(frames, h, w), (frames, h, w)
    vj = load_semantic_encoder("vjepa2", vjepa_full[0])
    assert vj.spec.grid(4 / vj.spec.fps, 40, 48) == vj.grid(4, 40, 48)
