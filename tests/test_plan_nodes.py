# ruff: noqa: F811  (pytest fixtures imported from test_nodes are redefined as arguments)
"""Prompt-schedule, plan-file and plan-edit nodes on tiny models (no ComfyUI): each calls its core function, and
the plans they make render in stage B."""

import pytest
import torch
from conftest import TinyTextEncoder
from test_nodes import MAPPINGS, SAMPLER, CheckpointError, cc, cond, model, parts, plan  # noqa: F401 (fixtures)


def schedule(*prompts_and_starts):
    text = TinyTextEncoder()
    conds = [cond(text.encode([p])[0]) for p, _ in prompts_and_starts]
    kw = {}
    for i, (c, (_, start)) in enumerate(zip(conds[1:], prompts_and_starts[1:]), start=2):
        kw.update({f"prompt_{i}": c, f"start_{i}": start})
    return MAPPINGS["SemanticGenPromptSchedule"]().build(conds[0], **kw)[0]


def test_prompt_schedule_feeds_both_stages(model, parts):
    two = schedule(("a red circle moves right", 0.0), ("a blue square moves up", 1.5))
    assert len(two) == 2 and [e[1]["semanticgen_start"] for e in two] == [0.0, 1.5]
    gen = MAPPINGS["GenerateSemanticPlan"]()
    args = (3.0, 32, 32, *SAMPLER.values())
    p_two = gen.generate(model, two, parts["neg"], *args, seed=0)[0]
    p_one = gen.generate(model, parts["pos"], parts["neg"], *args, seed=0)[0]
    assert p_two["plan"].shape == p_one["plan"].shape and not torch.allclose(p_two["plan"], p_one["plan"])
    # a one-prompt schedule is the prompt itself
    alone = MAPPINGS["SemanticGenPromptSchedule"]().build(parts["pos"])[0]
    assert torch.equal(gen.generate(model, alone, parts["neg"], *args, seed=0)[0]["plan"], p_one["plan"])
    swin = MAPPINGS["SwinLongVideoSampler"]()
    lat = swin.sample(model, p_two, two, parts["neg"], 0.1, *SAMPLER.values(), seed=0, window=2)[0]
    assert lat["samples"].shape[2] == model.video.latent_shape(3.0, 32, 32)[1]
    with pytest.raises(ValueError, match="increase"):
        schedule(("a", 0.0), ("b", 2.0), ("c", 1.0))
    with pytest.raises(ValueError, match="lasts 1 s"):
        gen.generate(model, two, parts["neg"], 1.0, 32, 32, *SAMPLER.values(), seed=0)


def test_save_and_load_plan_nodes(model, plan, parts, tmp_path, monkeypatch):
    monkeypatch.setattr(cc, "plan_dir", lambda: tmp_path / "semantic_plans")
    out = MAPPINGS["SaveSemanticPlan"]().save(plan, "test")
    path = out["ui"]["text"][0]
    assert path.endswith("test_00001.safetensors") and cc.plan_files() == ["test_00001.safetensors"]
    back = MAPPINGS["LoadSemanticPlan"]().load(model, "test_00001.safetensors")[0]
    assert torch.equal(back["plan"], plan["plan"]) and back["seconds"] == plan["seconds"]
    other = MAPPINGS["SemanticGenModelLoader"]().load(str(parts["s1_k4"]), str(parts["s2_k4"]), "float32")[0]
    with pytest.raises(CheckpointError, match=r"compressed_dim 8 vs 4"):
        MAPPINGS["LoadSemanticPlan"]().load(other, "test_00001.safetensors")


def test_edit_nodes_make_plans_stage_b_renders(model, parts):
    gen = MAPPINGS["GenerateSemanticPlan"]()
    a = gen.generate(model, parts["pos"], parts["neg"], 3.0, 32, 32, *SAMPLER.values(), seed=0)[0]
    b = gen.generate(model, parts["pos"], parts["neg"], 3.0, 32, 32, *SAMPLER.values(), seed=1)[0]
    n = a["plan"].shape[2]
    part = MAPPINGS["TakePlanRange"]().take(a, 0.0, 1.0)[0]
    joined = MAPPINGS["SpliceSemanticPlans"]().splice(a, b, 1)[0]
    looped = MAPPINGS["RepeatSemanticPlan"]().repeat(part, 3, 0)[0]
    mixed = MAPPINGS["BlendSemanticPlans"]().blend(a, b, 1.0)[0]
    assert joined["plan"].shape[2] == 2 * n - 1 and torch.equal(mixed["plan"], b["plan"])
    assert looped["plan"].shape[2] == 3 * part["plan"].shape[2]
    stage_b = MAPPINGS["SemanticToLatent"]()
    for p in (part, joined, looped):
        lat = stage_b.sample(model, p, parts["pos"], parts["neg"], 0.1, *SAMPLER.values(), seed=0)[0]
        assert lat["samples"].shape[2] == model.video.latent_shape(p["seconds"], 32, 32)[1]
    regen = MAPPINGS["RegeneratePlanRange"]().regenerate(
        model, a, parts["pos"], parts["neg"], 1.0, 2.0, *SAMPLER.values(), seed=3
    )[0]
    span = a["spec"].temporal_patch / a["spec"].fps  # seconds per semantic frame
    j0, j1 = round(1.0 / span), round(2.0 / span)
    assert torch.equal(regen["plan"][:, :, :j0], a["plan"][:, :, :j0])
    assert torch.equal(regen["plan"][:, :, j1:], a["plan"][:, :, j1:])
    assert not torch.allclose(regen["plan"][:, :, j0:j1], a["plan"][:, :, j0:j1])
    replan = MAPPINGS["ReplanSemanticPlan"]()
    new = replan.replan(model, a, parts["pos"], parts["neg"], 0.3, *SAMPLER.values(), seed=3)[0]
    assert new["plan"].shape == a["plan"].shape and new["seconds"] == a["seconds"]
    assert not torch.allclose(new["plan"], a["plan"])
    kept = replan.replan(model, a, parts["pos"], parts["neg"], 0.0, *SAMPLER.values(), seed=3)[0]
    assert torch.equal(kept["plan"], a["plan"])
    lat = stage_b.sample(model, new, parts["pos"], parts["neg"], 0.1, *SAMPLER.values(), seed=0)[0]
    assert lat["samples"].shape[2] == model.video.latent_shape(new["seconds"], 32, 32)[1]
