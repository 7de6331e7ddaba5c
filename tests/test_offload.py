"""Block offloading, block compilation and the attention backend switch, on tiny configs (CPU)."""

import copy

import pytest
import torch
from conftest import randomize

from semanticgen_core import attention as A
from semanticgen_core.config import DIT_CONFIGS, DiTConfig
from semanticgen_core.dit import SemanticGenDiT
from semanticgen_core.offload import attach_offload, compile_blocks, move
from semanticgen_core.runtime import RuntimeConfig, parameter_bytes, parse_lora_arg


def four_layer_dit():
    cfg = DiTConfig.from_dict({**DIT_CONFIGS["tiny"].to_dict(), "num_layers": 4})
    return randomize(SemanticGenDiT(cfg).eval(), seed=4)


def run(model, seed=0, window=None):
    g = torch.Generator().manual_seed(seed)
    x, ctx = torch.randn(1, 16, 4, 4, 4, generator=g), torch.randn(1, 5, 24, generator=g)
    sem = torch.randn(1, 8, 2, 2, 2, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([0.3]), ctx, sem=sem, window=window)


@pytest.mark.parametrize("on_device,prefetch", [(0, 0), (0, 1), (2, 1), (1, 2)])
def test_offloaded_forward_equals_normal_forward(on_device, prefetch):
    model = four_layer_dit()
    want = [run(model, s, w) for s, w in ((0, None), (1, 2))]
    off = attach_offload(model, "cpu", on_device, prefetch)
    assert off is model.offloader and off.streamed == list(range(on_device, 4))
    in_flight = []  # streamed blocks held on the device while each block runs (hook after the offloader's)
    for b in model.blocks:
        b.register_forward_pre_hook(lambda m, a: in_flight.append(len(off.loaded)))
    got = [run(model, s, w) for s, w in ((0, None), (1, 2))]
    assert max(in_flight) == min(1 + prefetch, 4 - on_device)  # the memory bound: never more blocks than that
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    # every streamed block is copied once per forward; the copies run ahead cyclically (into the next step)
    n = len(off.streamed)
    assert off.stats["loads"] == 2 * n + prefetch * (n > 1)
    assert off.stats["order"][: 2 * n] == (off.streamed * 2)
    assert not off.loaded or set(off.loaded) == set(off.streamed[:prefetch])


def test_placement_keeps_only_resident_blocks_on_the_device():
    model = four_layer_dit()
    total = parameter_bytes(model, "cpu")
    block = sum(p.numel() * p.element_size() for p in model.blocks[0].parameters())
    off = attach_offload(model, "meta", 1)  # the meta device stands in for a GPU: placement only, no compute
    assert all(p.device.type == "meta" for p in model.blocks[0].parameters())
    assert all(p.device.type == "cpu" for b in model.blocks[1:] for p in b.parameters())
    assert all(p.device.type == "meta" for p in model.head.parameters())
    assert off.resident_bytes() == parameter_bytes(model, "meta") == total - 3 * block
    assert off.streamed_bytes() == 3 * block
    assert attach_offload(four_layer_dit(), "cpu", None) is None  # None: everything on the device


def test_offloading_refuses_training_and_moves_with_the_model():
    model = four_layer_dit()
    attach_offload(model, "cpu", 2)
    x, ctx = torch.randn(1, 16, 1, 4, 4), torch.randn(1, 5, 24)
    with pytest.raises(RuntimeError, match="offloading is for sampling"):
        model(x, torch.tensor([0.5]), ctx)
    move(model, "cpu")  # re-attaches: still offloaded, same split
    assert model.offloader is not None and model.offloader.streamed == [2, 3]


def test_compiled_blocks_match_eager_with_and_without_offloading():
    model = four_layer_dit()
    want = run(model)
    compiled = copy.deepcopy(model)
    attach_offload(compiled, "cpu", 2)
    # aot_eager: the dynamo graph capture and AOT autograd without the (slow to build) inductor kernels
    assert compile_blocks(compiled, backend="aot_eager") == 2 + 2 * 3  # whole resident blocks, streamed sub-layers
    torch.testing.assert_close(run(compiled), want, atol=1e-5, rtol=1e-5)


def test_attention_backend_is_picked_in_one_place():
    q = k = v = torch.randn(1, 6, 2, 8)
    assert A.current_backend() == "auto"
    with A.attention_backend("sdpa"):
        assert A.current_backend() == "sdpa"
        torch.testing.assert_close(A.attention(q, k, v), A.attention(q, k, v, backend="sdpa"))
    assert A.current_backend() == "auto"
    with pytest.raises(ValueError, match="unknown attention backend 'xformers'"):
        A.check_backend("xformers")
    for name, package in (("flash", "flash-attn"), ("sage", "sageattention")):
        if A._INSTALL[name][1] is None:
            with pytest.raises(ValueError, match=f"pip install {package}"):
                A.check_backend(name)
        else:
            with pytest.raises(ValueError, match="CUDA only"):
                A.check_backend(name, "cpu")
    with pytest.raises(ValueError, match="runs on CUDA only|pip install"):
        RuntimeConfig(attention="sage").check("cpu")


def test_pipeline_samples_under_its_configured_backend(monkeypatch):
    """The pipeline's sampling calls see config.attention (recorded by a wrapped attention function)."""
    from test_pipeline import make_pipeline

    from semanticgen_core import SemanticGenPipeline

    _, sem, lat, comp, vae, cfg = make_pipeline()
    cfg.attention = "sdpa"
    pipe = SemanticGenPipeline(sem, lat, comp, vae, None, None, cfg)
    seen, real = [], A._pick
    monkeypatch.setattr(
        A, "_pick", lambda q, bias, backend: seen.append(backend or A.current_backend()) or real(q, bias, backend)
    )
    ctx = torch.randn(1, 4, 24)
    pipe.generate_plan(ctx, None, (1, 2, 2))
    assert seen and set(seen) == {"sdpa"}


def test_lora_flag_parsing():
    assert parse_lora_arg("style.safetensors") == ("style.safetensors", 1.0)
    assert parse_lora_arg("loras/style.safetensors:0.6") == ("loras/style.safetensors", 0.6)
    assert parse_lora_arg("C:/loras/style.safetensors") == ("C:/loras/style.safetensors", 1.0)
