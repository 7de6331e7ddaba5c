"""Half precision and lean loading.

Tolerances are relative L2 errors against float32 (||a - b|| / ||b||): bfloat16 keeps 8 significant bits (2^-8 =
0.4 % per rounding), float16 11 bits (0.05 %); a tiny DiT compounds a few dozen roundings, so the bounds are
3e-2 (bf16) and 5e-3 (fp16), several times what they measure (see the README, "Half precision and loading").
"""

import copy

import numpy as np
import pytest
import torch
from conftest import TINY_VAE, randomize
from safetensors.torch import save_file

from semanticgen_core import DIT_CONFIGS, SemanticGenDiT
from semanticgen_core.checkpoint import diffusers_to_wan
from semanticgen_core.precision import FP8Linear, cast_module, resolve_dtype

diffusers = pytest.importorskip("diffusers")
TOL = {torch.bfloat16: 3e-2, torch.float16: 5e-3}


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def tiny_inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    x, t, ctx = torch.randn(2, 16, 4, 4, 6, generator=g), torch.rand(2, generator=g), torch.randn(2, 6, 24, generator=g)
    ctx[:, 4:] = 0  # zero padding: the compacted cross-attention bias path
    return x, t, ctx, torch.randn(2, 8, 2, 2, 3, generator=g)


def tiny_wan(seed=0):
    torch.manual_seed(seed)
    ref = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
        text_dim=16, freq_dim=32, ffn_dim=48, num_layers=2, rope_max_seq_len=64,
    )  # fmt: skip
    return randomize(ref, seed=seed).eval()


def wan_inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 4, 3, 6, 10, generator=g), torch.rand(2, generator=g), torch.randn(2, 7, 16, generator=g)


# ----------------------------------------------------------------------------------------------------------------
# Forward and training step against float32
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("window", [None, 2])
def test_half_precision_forward_matches_fp32(tiny_dit, dtype, window):
    x, t, ctx, sem = tiny_inputs()
    with torch.no_grad():
        ref = tiny_dit(x, t, ctx, sem=sem, window=window)
        plain = copy.deepcopy(tiny_dit).to(dtype)  # every weight in half precision: still runs
        kept = cast_module(copy.deepcopy(tiny_dit), dtype)  # what the loaders do: small parts stay float32
        for model in (plain, kept):
            v = model(x, t, ctx, sem=sem, window=window)
            assert v.dtype == torch.float32 and torch.isfinite(v).all()  # the output follows x, not the weights
            assert rel(v, ref) < TOL[dtype]
    assert kept.dtype == dtype and kept.blocks[0].ffn[0].weight.dtype == dtype
    kept_fp32 = {n for n, p in kept.named_parameters() if p.dtype == torch.float32}
    assert kept_fp32 == {n for n, _ in kept.named_parameters() if n.startswith(("time_", "head.modulation"))
                         or n.endswith((".modulation", "norm3.weight", "norm3.bias"))}  # fmt: skip


def test_autocast_training_step_matches_fp32():
    """A stage-1 step as accelerate runs it with mixed_precision='bf16' (fp32 weights, bf16 autocast) against fp32:
    loss within 2 %, gradient direction within cosine 0.99, and every gradient finite."""
    from semanticgen_core import SemanticCompressor
    from train.stage1 import Stage1Model

    torch.manual_seed(0)
    lat = randomize(SemanticGenDiT(DIT_CONFIGS["tiny"]), std=0.1, seed=2)
    model = Stage1Model(lat, SemanticCompressor(16, 8)).train()
    g = torch.Generator().manual_seed(3)
    batch = {"latents": torch.randn(2, 16, 3, 4, 4, generator=g), "sem_feats": torch.randn(2, 16, 2, 2, 2, generator=g),
             "ctx": torch.randn(2, 5, 24, generator=g)}  # fmt: skip

    def step(autocast: bool):
        model.zero_grad()
        with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
            loss, _ = model(batch, torch.Generator().manual_seed(0))
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    loss32, grad32 = step(False)
    loss16, grad16 = step(True)
    assert torch.isfinite(grad16).all()
    assert abs(float(loss16 / loss32) - 1) < 2e-2
    assert float(torch.nn.functional.cosine_similarity(grad16.double(), grad32.double(), dim=0)) > 0.99


# ----------------------------------------------------------------------------------------------------------------
# Loading: dtype, no random init, fp8
# ----------------------------------------------------------------------------------------------------------------


def test_wan_weights_load_in_the_requested_dtype_without_random_init(tmp_path, monkeypatch):
    ref = tiny_wan()
    ref.to(torch.bfloat16).save_pretrained(tmp_path / "wan")
    ref.float()
    inits = []
    original = torch.nn.Linear.reset_parameters
    monkeypatch.setattr(torch.nn.Linear, "reset_parameters", lambda m: inits.append(m.weight.is_meta) or original(m))
    model = SemanticGenDiT.from_wan_pretrained(tmp_path / "wan", dtype="auto")  # the file's dtype: bf16
    assert inits and all(inits)  # constructed on the meta device: no random init paid for, none kept
    assert model.dtype == torch.bfloat16 and model.time_projection[1].weight.dtype == torch.float32
    x, t, ctx = wan_inputs()
    with torch.no_grad():
        expected = ref(hidden_states=x, timestep=1000 * t, encoder_hidden_states=ctx).sample
        assert rel(model(x, t, ctx), expected) < TOL[torch.bfloat16]
    # a changed shape re-initialises just those layers, for real
    inits.clear()
    gen = SemanticGenDiT.from_wan_pretrained(tmp_path / "wan", dtype="fp16", in_channels=8, out_channels=8,
                                             patch_size=(1, 1, 1))  # fmt: skip
    assert inits.count(False) == 1  # head.head (the conv patch embedding has its own reset_parameters)
    assert gen.reinitialised == ["head.head.bias", "head.head.weight", "patch_embedding.weight"]
    assert torch.equal(gen.patch_embedding.bias, model.patch_embedding.bias.half())  # same shape: the file's
    assert gen.patch_embedding.weight.dtype == torch.float16 and gen.patch_embedding.weight.std() > 0
    assert not any(p.is_meta for p in gen.parameters())


def quantize_fp8(w: torch.Tensor, scaled: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """ComfyUI's scaled fp8: w ~ w8 * scale with scale = amax / 448 (e4m3's largest value); plain: a cast."""
    if not scaled:
        return w.to(torch.float8_e4m3fn), None
    scale = w.abs().amax().float() / 448.0
    return (w / scale).to(torch.float8_e4m3fn), scale


@pytest.mark.parametrize("scaled", [False, True])
def test_comfyui_fp8_files_load_and_run_upcast_per_layer(tmp_path, scaled):
    sd = diffusers_to_wan(tiny_wan().state_dict())
    fp8, dequant = {}, dict(sd)
    for k, v in sd.items():
        # ComfyUI quantises the 2-D weights; here also the time projection, which we keep (and dequantise) in fp32
        if v.ndim == 2 and k.startswith(("blocks.", "time_projection.")):
            q, scale = quantize_fp8(v, scaled)
            fp8[k] = q
            dequant[k] = q.float() * (scale if scaled else 1.0)
            if scaled:
                fp8[k.replace(".weight", ".scale_weight")] = scale.reshape(())
                fp8[k.replace(".weight", ".scale_input")] = torch.ones(())
        else:
            fp8[k] = v.to(torch.bfloat16)
            dequant[k] = fp8[k].float()
    if scaled:
        fp8["scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)  # ComfyUI's format marker
    name = f"wan2.1_t2v_tiny_fp8_e4m3fn{'_scaled' if scaled else ''}.safetensors"
    save_file({f"model.diffusion_model.{k}": v.contiguous() for k, v in fp8.items()}, tmp_path / name)
    save_file(dequant, tmp_path / "dequantised.safetensors")

    model = SemanticGenDiT.from_wan_pretrained(tmp_path / name, num_heads=2, dtype="fp32")
    q = model.blocks[0].self_attn.q
    assert isinstance(q, FP8Linear) and q.weight.dtype == torch.float8_e4m3fn  # 1 byte per weight in memory
    assert model.time_projection[1].weight.dtype == torch.float32  # kept in fp32, dequantised at load
    ref = SemanticGenDiT.from_wan_pretrained(tmp_path / "dequantised.safetensors", num_heads=2)
    x, t, ctx = wan_inputs()
    with torch.no_grad():
        expected = ref(x, t, ctx)
        assert rel(model(x, t, ctx), expected) < 1e-5  # the upcast is exact: fp32 compute gives the same result
        auto = SemanticGenDiT.from_wan_pretrained(tmp_path / name, num_heads=2, dtype="auto")
        assert auto.dtype == torch.bfloat16 and rel(auto(x, t, ctx), expected) < TOL[torch.bfloat16]


# ----------------------------------------------------------------------------------------------------------------
# Our checkpoints, the VAE, the embedded pipeline
# ----------------------------------------------------------------------------------------------------------------


def test_our_checkpoints_load_in_bf16():
    from semanticgen_core.lab.embedded import embedded_path
    from semanticgen_core.models import load_stage1, load_stage2

    s1 = load_stage1(embedded_path("stage1"), dtype="bf16")
    s2 = load_stage2(embedded_path("stage2"), s1, dtype=torch.bfloat16)
    for model in (s1.lat_generator, s2.sem_generator):
        assert model.dtype == torch.bfloat16 and model.blocks[0].modulation.dtype == torch.float32
    assert s1.compressor.mlp[1].weight.dtype == torch.bfloat16
    ref = load_stage1(embedded_path("stage1"))
    feats = torch.randn(1, ref.compressor.in_dim, 2, 2, 2)
    with torch.no_grad():
        assert rel(s1.compressor(feats).mean, ref.compressor(feats).mean) < TOL[torch.bfloat16]


def test_vae_decodes_in_half_precision(tmp_path):
    from semanticgen_core.vae import WanVAE, load_vae

    torch.manual_seed(0)
    WanVAE.from_config(TINY_VAE).save(tmp_path / "vae.safetensors")
    z = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    ref = load_vae(tmp_path / "vae.safetensors").decode(z)
    for dtype in (torch.bfloat16, torch.float16):
        vae = load_vae(tmp_path / "vae.safetensors", dtype=dtype)
        assert vae.dtype == dtype
        assert rel(vae.decode(z), ref) < TOL[dtype]


def test_semantic_encoder_runs_in_half_precision():
    from semanticgen_core.encoders import load_semantic_encoder
    from semanticgen_core.lab.embedded import embedded_path

    frames = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    ref = load_semantic_encoder("qwen2_5_vl", embedded_path("encoder")).encode(frames)
    enc = load_semantic_encoder("qwen2_5_vl", embedded_path("encoder"), dtype="bf16")
    assert enc.dtype == torch.bfloat16
    assert enc.model.rotary_pos_emb.inv_freq.dtype == torch.float32  # positions stay exact
    assert rel(enc.encode(frames), ref) < TOL[torch.bfloat16]


def test_embedded_pipeline_generates_in_bf16():
    from semanticgen_core.config import SamplerConfig
    from semanticgen_core.lab.embedded import load_embedded_pipeline

    pipe = load_embedded_pipeline(with_encoder=False)
    pipe.config.sem_sampler = pipe.config.lat_sampler = SamplerConfig(steps=4, cfg=4.0, shift=2.0)
    kw = dict(seconds=0.5, height=64, width=64, seed=0)
    z32 = pipe("a red circle moves to the right", return_latents=True, **kw)
    frames32 = pipe.decode(z32)
    pipe.to(dtype=torch.bfloat16)
    assert pipe.dtype == torch.bfloat16 and pipe.vae.dtype == torch.bfloat16
    z16 = pipe("a red circle moves to the right", return_latents=True, **kw)
    frames16 = pipe.decode(z16)
    assert z16.dtype == torch.float32 and frames16.shape == frames32.shape and frames16.std() > 5
    assert rel(z16, z32) < 0.1  # 8 sampling steps through two DiTs, each step's error carried on
    assert np.abs(frames16.astype(int) - frames32).mean() < 4  # mean of 255 levels


def test_dtype_names():
    assert resolve_dtype("bf16") is torch.bfloat16 and resolve_dtype("auto", torch.float8_e4m3fn) is torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'int8'"):
        resolve_dtype("int8")
