"""LoRA: the file layouts people ship, merge == runtime == W + strength * scale * up @ down, training export."""

import copy

import pytest
import torch
from safetensors.torch import save_file

from semanticgen_core.checkpoint import CheckpointError
from semanticgen_core.lora import (
    LoRALinear,
    add_trainable_lora,
    apply_lora,
    export_lora,
    load_lora,
    read_lora,
    remove_lora,
    split_lora_state,
)

RANK = 3
# (our module, diffusers name, kohya name): attention, FFN and head layers
TARGETS = [
    ("blocks.0.self_attn.q", "blocks.0.attn1.to_q", "blocks_0_self_attn_q"),
    ("blocks.1.cross_attn.o", "blocks.1.attn2.to_out.0", "blocks_1_cross_attn_o"),
    ("blocks.1.ffn.0", "blocks.1.ffn.net.0.proj", "blocks_1_ffn_0"),
    ("head.head", "proj_out", "head_head"),
]


def make_updates(model, seed=0):
    """{module: (down [r, in], up [out, r])} with non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, _, _ in TARGETS:
        w = model.get_submodule(name).weight
        out[name] = (torch.randn(RANK, w.shape[1], generator=g) * 0.3, torch.randn(w.shape[0], RANK, generator=g) * 0.3)
    return out


def write(path, updates, layout, alpha=None):
    """Save `updates` in one of the layouts; alpha None writes no alpha (diffusers / PEFT save none)."""
    tensors = {}
    for name, diff_name, kohya in TARGETS:
        down, up = updates[name]
        if layout == "diffusers":
            tensors[f"transformer.{diff_name}.lora_A.weight"] = down
            tensors[f"transformer.{diff_name}.lora_B.weight"] = up
            continue
        key = f"diffusion_model.{name}" if layout == "comfy" else f"lora_unet_{kohya}"
        tensors[f"{key}.lora_down.weight"], tensors[f"{key}.lora_up.weight"] = down, up
        if alpha is not None:
            tensors[f"{key}.alpha"] = torch.tensor(float(alpha))
    save_file(tensors, str(path))
    return path


def manual(model, updates, strength, scale):
    """W + strength * scale * up @ down, written out by hand."""
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for name, (down, up) in updates.items():
            ref.get_submodule(name).weight += strength * scale * (up @ down)
    return ref


def run(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, ctx = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 5, 24, generator=g)
    sem = torch.randn(1, 8, 1, 2, 2, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([0.4]), ctx, sem=sem)


@pytest.mark.parametrize("layout,alpha", [("comfy", 1.5), ("diffusers", None), ("kohya", 6.0)])
def test_merged_equals_runtime_equals_manual(tiny_dit, tmp_path, layout, alpha):
    updates, strength = make_updates(tiny_dit), 0.7
    path = write(tmp_path / f"{layout}.safetensors", updates, layout, alpha)
    lora = load_lora(path, tiny_dit)
    assert sorted(lora) == sorted(name for name, _, _ in TARGETS)  # every layout lands on our module names
    scale = 1.0 if alpha is None else alpha / RANK
    ref = manual(tiny_dit, updates, strength, scale)

    merged = copy.deepcopy(tiny_dit)
    assert apply_lora(merged, lora, strength, "merge") == {"runtime": 0, "merged": 4}
    for name in lora:
        torch.testing.assert_close(merged.get_submodule(name).weight, ref.get_submodule(name).weight)

    runtime = copy.deepcopy(tiny_dit)
    assert apply_lora(runtime, lora, strength, "runtime") == {"runtime": 4, "merged": 0}
    assert isinstance(runtime.blocks[0].self_attn.q, LoRALinear)
    assert runtime.state_dict()["blocks.0.self_attn.q.weight"].equal(tiny_dit.blocks[0].self_attn.q.weight)

    want = run(ref)
    assert (want - run(tiny_dit)).abs().max() > 1e-2  # the LoRA does change the output
    torch.testing.assert_close(run(merged), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(run(runtime), want, atol=1e-5, rtol=1e-5)
    assert remove_lora(runtime) == 4 and torch.equal(run(runtime), run(tiny_dit))


def test_bias_and_weight_differences_and_diffusers_norm2(tiny_dit, tmp_path):
    g = torch.Generator().manual_seed(3)
    db, dn = torch.randn(32, generator=g), torch.randn(32, generator=g)
    save_file({"diffusion_model.blocks.0.self_attn.q.diff_b": db, "diffusion_model.blocks.1.norm3.diff": dn},
              str(tmp_path / "comfy.safetensors"))  # fmt: skip
    runtime, merged = copy.deepcopy(tiny_dit), copy.deepcopy(tiny_dit)
    lora = load_lora(tmp_path / "comfy.safetensors", tiny_dit)
    assert apply_lora(runtime, lora, 0.5, "runtime") == {"runtime": 1, "merged": 1}  # a norm is always merged
    apply_lora(merged, lora, 0.5, "merge")
    torch.testing.assert_close(merged.blocks[0].self_attn.q.bias, tiny_dit.blocks[0].self_attn.q.bias + 0.5 * db)
    torch.testing.assert_close(merged.blocks[1].norm3.weight, tiny_dit.blocks[1].norm3.weight + 0.5 * dn)
    torch.testing.assert_close(run(runtime), run(merged), atol=1e-5, rtol=1e-5)
    # in diffusers names, norm2 is Wan's affine cross-attention norm3
    save_file({"transformer.blocks.1.norm2.diff": dn, "transformer.blocks.0.attn1.to_q.diff_b": db},
              str(tmp_path / "diffusers.safetensors"))  # fmt: skip
    assert sorted(load_lora(tmp_path / "diffusers.safetensors", tiny_dit)) == ["blocks.0.self_attn.q", "blocks.1.norm3"]


def test_a_lora_that_does_not_fit_is_named(tiny_dit, tmp_path):
    updates = make_updates(tiny_dit)
    updates["blocks.0.self_attn.q"] = (torch.randn(RANK, 48), torch.randn(32, RANK))  # another model width
    with pytest.raises(CheckpointError, match=r"1 of another shape \['blocks.0.self_attn.q"):
        load_lora(write(tmp_path / "wide.safetensors", updates, "comfy", 3.0), tiny_dit)
    save_file({"diffusion_model.blocks.9.self_attn.q.lora_down.weight": torch.zeros(2, 32),
               "diffusion_model.blocks.9.self_attn.q.lora_up.weight": torch.zeros(32, 2)},
              str(tmp_path / "deep.safetensors"))  # fmt: skip
    with pytest.raises(CheckpointError, match=r"1 modules not found \['blocks.9.self_attn.q'\]"):
        load_lora(tmp_path / "deep.safetensors", tiny_dit)
    save_file({"diffusion_model.blocks.0.self_attn.q.lora_mid.weight": torch.zeros(2, 2)},
              str(tmp_path / "locon.safetensors"))  # fmt: skip
    with pytest.raises(CheckpointError, match="lora_mid.*not supported"):
        read_lora(tmp_path / "locon.safetensors")
    with pytest.raises(CheckpointError, match="no pickles"):
        read_lora(tmp_path / "lora.pt")


def test_trained_adapters_export_merge_and_load_back(tiny_dit, tmp_path):
    base = copy.deepcopy(tiny_dit)
    names = add_trainable_lora(tiny_dit, rank=4, alpha=2.0)
    assert len(names) == 2 * 10  # 2 blocks x (4 self-attn + 4 cross-attn + 2 FFN) Linear layers
    torch.testing.assert_close(run(tiny_dit), run(base))  # up starts at zero: the model is unchanged
    trainable = [n for n, p in tiny_dit.named_parameters() if p.requires_grad and ".adapters." in n]
    assert len(trainable) == 2 * len(names)
    with torch.no_grad():  # as if trained
        g = torch.Generator().manual_seed(5)
        for n, p in tiny_dit.named_parameters():
            if n.endswith(".up"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    trained = run(tiny_dit)
    state = {f"lat_generator.{k}": v for k, v in tiny_dit.state_dict().items()}  # as the stage-1 model holds it
    merged, lora = split_lora_state(state)
    assert not any(".adapters." in k for k in merged) and "diffusion_model.blocks.1.ffn.2.alpha" in lora
    plain = copy.deepcopy(base)
    plain.load_state_dict({k.removeprefix("lat_generator."): v for k, v in merged.items()})
    torch.testing.assert_close(run(plain), trained, atol=1e-5, rtol=1e-5)
    export_lora(tmp_path / "trained.safetensors", lora, rank=4)
    for mode in ("merge", "runtime"):
        again = copy.deepcopy(base)
        apply_lora(again, load_lora(tmp_path / "trained.safetensors", again), 1.0, mode)
        torch.testing.assert_close(run(again), trained, atol=1e-5, rtol=1e-5)
