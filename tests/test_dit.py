import json

import pytest
import torch
from conftest import randomize
from safetensors.torch import save_file

from semanticgen_core.checkpoint import diffusers_to_wan, wan_to_diffusers
from semanticgen_core.config import DiTConfig
from semanticgen_core.dit import SemanticGenDiT, grid_positions

diffusers = pytest.importorskip("diffusers")


def tiny_wan(seed=0):
    torch.manual_seed(seed)
    ref = diffusers.WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=4,
        out_channels=4,
        text_dim=16,
        freq_dim=32,
        ffn_dim=48,
        num_layers=2,
        rope_max_seq_len=64,
    )
    return randomize(ref, seed=seed).eval()


def inputs(b=2, t=3, h=6, w=10, s=7, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 4, t, h, w, generator=g), torch.rand(b, generator=g), torch.randn(b, s, 16, generator=g)


@pytest.mark.parametrize("shape", [(3, 6, 10), (1, 2, 2), (5, 14, 6)])
def test_matches_diffusers_wan(tmp_path, shape):
    ref = tiny_wan()
    ref.save_pretrained(tmp_path / "wan")
    ours = SemanticGenDiT.from_wan_pretrained(tmp_path / "wan").eval()
    x, t, ctx = inputs(2, *shape)
    with torch.no_grad():
        expected = ref(hidden_states=x, timestep=1000 * t, encoder_hidden_states=ctx).sample
        got = ours(x, t, ctx)
    assert got.shape == x.shape
    assert (got - expected).abs().max() < 1e-4


def test_loads_original_single_file_with_comfy_prefix(tmp_path):
    ref = tiny_wan()
    sd = {"model.diffusion_model." + k: v for k, v in diffusers_to_wan(ref.state_dict()).items()}
    save_file(sd, tmp_path / "wan2.1_t2v.safetensors")
    ours = SemanticGenDiT.from_wan_pretrained(tmp_path / "wan2.1_t2v.safetensors", num_heads=2).eval()
    x, t, ctx = inputs()
    with torch.no_grad():
        assert torch.allclose(
            ours(x, t, ctx), ref(hidden_states=x, timestep=1000 * t, encoder_hidden_states=ctx).sample, atol=1e-4
        )
    # and back to diffusers names
    assert set(wan_to_diffusers(ours.state_dict())) == set(ref.state_dict())


def test_strict_keys_name_the_culprit(tmp_path):
    sd = diffusers_to_wan(tiny_wan().state_dict())
    missing = dict(sd)
    del missing["blocks.1.cross_attn.k.weight"]
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match=r"blocks\.1\.cross_attn\.k\.weight"):
        SemanticGenDiT.from_wan_pretrained(tmp_path / "missing.safetensors", num_heads=2)
    extra = dict(sd, **{"blocks.0.img_emb.weight": torch.zeros(2)})
    save_file(extra, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match=r"img_emb"):
        SemanticGenDiT.from_wan_pretrained(tmp_path / "extra.safetensors", num_heads=2)


def test_new_semantic_path_starts_silent_and_learns(tmp_path):
    ref = tiny_wan()
    ref.save_pretrained(tmp_path / "wan")
    model = SemanticGenDiT.from_wan_pretrained(tmp_path / "wan", sem_channels=8)
    x, t, ctx = inputs()
    sem_a, sem_b = torch.randn(2, 8, 2, 2, 3), torch.randn(2, 8, 2, 2, 3)
    with torch.no_grad():
        base = ref(hidden_states=x, timestep=1000 * t, encoder_hidden_states=ctx).sample
        assert torch.allclose(model(x, t, ctx), base, atol=1e-4)  # no plan: exactly the base model
        assert torch.equal(model(x, t, ctx, sem=sem_a), model(x, t, ctx, sem=sem_b))  # plan content has no effect yet
    loss = model(x, t, ctx, sem=sem_a).pow(2).mean()
    loss.backward()
    assert model.sem_embedding.weight.grad.abs().sum() > 0  # gradients reach the semantic projection
    # once trained (here: randomised), the plan steers the output
    randomize(model.sem_embedding, seed=5)
    with torch.no_grad():
        assert not torch.allclose(model(x, t, ctx, sem=sem_a), model(x, t, ctx, sem=sem_b))


def test_semantic_generator_shapes_and_reinit(tmp_path):
    tiny_wan().save_pretrained(tmp_path / "wan")
    gen = SemanticGenDiT.from_wan_pretrained(tmp_path / "wan", in_channels=8, out_channels=8, patch_size=(1, 1, 1))
    assert set(gen.reinitialised) == {"patch_embedding.weight", "head.head.weight", "head.head.bias"}
    z = torch.randn(1, 8, 3, 2, 5)
    assert gen(z, torch.rand(1), torch.randn(1, 4, 16)).shape == z.shape


def test_semantic_tokens_sit_where_they_describe():
    pos = grid_positions((2, 1, 2), span=(8, 4, 4))
    # semantic frame 0 covers latent frames 0..3 (centre 1.5), frame 1 covers 4..7 (centre 5.5)
    assert pos[:, 0].unique().tolist() == [1.5, 5.5]
    assert pos[:, 1].unique().tolist() == [1.5]
    assert pos[:, 2].unique().tolist() == [0.5, 2.5]
    assert torch.equal(grid_positions((2, 1, 1))[:, 0], torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_bad_inputs_raise_clear_errors(tiny_dit):
    x, t, ctx = torch.randn(1, 16, 2, 4, 4), torch.rand(1), torch.randn(1, 3, 24)
    with pytest.raises(ValueError, match="multiple of patch"):
        tiny_dit(torch.randn(1, 16, 2, 5, 4), t, ctx)
    with pytest.raises(ValueError, match=r"\[B, 16"):
        tiny_dit(torch.randn(1, 4, 2, 4, 4), t, ctx)
    with pytest.raises(ValueError, match="context"):
        tiny_dit(x, t, torch.randn(1, 3, 7))
    with pytest.raises(ValueError, match="plan dim"):
        tiny_dit(x, t, ctx, sem=torch.randn(1, 64, 1, 1, 1))


def test_swin_equals_full_when_window_covers_video(tiny_dit):
    g = torch.Generator().manual_seed(0)
    x, ctx, sem = (
        torch.randn(2, 16, 6, 4, 4, generator=g),
        torch.randn(2, 3, 24, generator=g),
        torch.randn(2, 8, 3, 1, 1, generator=g),
    )
    t = torch.rand(2, generator=g)
    with torch.no_grad():
        full = tiny_dit(x, t, ctx, sem=sem)
        assert torch.equal(tiny_dit(x, t, ctx, sem=sem, window=6), full)
        assert torch.equal(tiny_dit(x, t, ctx, sem=sem, window=100), full)
        assert not torch.allclose(tiny_dit(x, t, ctx, sem=sem, window=2), full)


def _frames_changed(model, x, t, ctx, sem, frame=None, sem_frame=None, **kw):
    """Which output latent frames change when one input latent (or semantic) frame is perturbed."""
    x2, sem2 = x.clone(), sem.clone()
    if frame is not None:
        x2[:, :, frame] += 1.0
    if sem_frame is not None:
        sem2[:, :, sem_frame] += 1.0
    with torch.no_grad():
        d = (model(x, t, ctx, sem=sem, **kw) - model(x2, t, ctx, sem=sem2, **kw)).abs().amax(dim=(0, 1, 3, 4))
    return [i for i, v in enumerate(d.tolist()) if v > 1e-6]


def test_shifted_windows_limit_the_receptive_field(tiny_cfg):
    g = torch.Generator().manual_seed(0)
    x, ctx, sem = (
        torch.randn(1, 16, 6, 2, 2, generator=g),
        torch.randn(1, 3, 24, generator=g),
        torch.randn(1, 8, 3, 1, 1, generator=g),
    )
    t = torch.rand(1, generator=g)
    one = randomize(SemanticGenDiT(DiTConfig.from_dict({**tiny_cfg.to_dict(), "num_layers": 1})))
    two = randomize(SemanticGenDiT(tiny_cfg))  # layer 0: windows (0 1)(2 3)(4 5); layer 1 shifted: (0)(1 2)(3 4)(5)
    assert _frames_changed(one, x, t, ctx, sem, frame=5, window=2) == [4, 5]
    assert _frames_changed(two, x, t, ctx, sem, frame=2, window=2) == [1, 2, 3, 4]
    assert _frames_changed(two, x, t, ctx, sem, frame=0, window=2) == [0, 1, 2]
    # semantic frame 2 describes latent frames 4-5: it only reaches its window (and its shifted neighbour)
    assert _frames_changed(one, x, t, ctx, sem, sem_frame=2, window=2) == [4, 5]
    assert _frames_changed(two, x, t, ctx, sem, sem_frame=0, window=2) == [0, 1, 2]


def test_config_round_trip_and_errors(tmp_path):
    cfg = DiTConfig(dim=32, num_heads=2, ffn_dim=64, num_layers=1, text_dim=8, freq_dim=16)
    assert DiTConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="divisible"):
        DiTConfig(dim=30, num_heads=4)
    with pytest.raises(ValueError, match="unknown fields"):
        DiTConfig.from_dict({"dimension": 3})


def test_collapsed_text_padding_is_exact(tmp_path):
    ref = tiny_wan()
    ref.save_pretrained(tmp_path / "wan")
    ours = SemanticGenDiT.from_wan_pretrained(tmp_path / "wan").eval()
    x, t, ctx = inputs(s=40)
    ctx[0, 9:] = 0  # Wan-style zero padding, different true lengths per sample
    ctx[1, 3:] = 0
    with torch.no_grad():
        expected = ref(hidden_states=x, timestep=1000 * t, encoder_hidden_states=ctx).sample
        fast = ours(x, t, ctx)
        ours.compact_text = False
        slow = ours(x, t, ctx)
    assert (fast - expected).abs().max() < 1e-4 and (slow - expected).abs().max() < 1e-4


def test_compact_padding_shapes():
    from semanticgen_core.attention import compact_padding

    ctx = torch.randn(2, 10, 4)
    ctx[0, 6:] = 0
    ctx[1, 2:] = 0
    small, bias = compact_padding(ctx)
    assert small.shape == (2, 7, 4) and bias.shape == (2, 1, 1, 7)
    assert bias[0, 0, 0, :6].abs().sum() == 0 and torch.isclose(bias[0, 0, 0, 6], torch.log(torch.tensor(4.0)))
    assert torch.isclose(bias[1, 0, 0, 2], torch.log(torch.tensor(8.0 / 5.0)))
    full = torch.randn(2, 10, 4)
    assert compact_padding(full)[1] is None
