"""Prompt composition ("A AND B :w", compose.py): parsing, the guided velocity, and the pipeline and CLI using it."""

import pytest
import torch
from test_pipeline import pipe  # noqa: F401  (the tiny pipeline fixture)

from semanticgen_core.compose import encode_parts, split_prompt
from semanticgen_core.sampling import guided


def test_split_prompt_reads_parts_and_weights_and_refuses_empty_parts():
    assert split_prompt("a red circle") == ("a red circle", [])
    assert split_prompt("") == ("", []) and split_prompt(" a circle ") == (" a circle ", [])  # plain: as written
    assert split_prompt("the shape is red and moves up") == ("the shape is red and moves up", [])  # lower-case "and"
    assert split_prompt("a red triangle AND a triangle :0.5 AND a red thing :-1") == (
        "a red triangle", [("a triangle", 0.5), ("a red thing", -1.0)])  # fmt: skip
    for bad in ("a red circle AND  :2", " AND a circle", "a circle AND "):
        with pytest.raises(ValueError, match="AND"):
            split_prompt(bad)


def test_composed_guidance_adds_each_part_at_its_weight_times_the_scale():
    def model_fn(x, t, context):  # a velocity that depends on the context: x times the context's mean per sample
        return x * context.mean(dim=(1, 2)).view(-1, 1, 1) + t.view(-1, 1, 1)

    torch.manual_seed(0)
    x, t = torch.randn(2, 3, 4), torch.full((2,), 0.5)
    ctx, unc = torch.randn(2, 5, 6), torch.randn(1, 3, 6)
    parts = (torch.randn(2, 2, 4, 6), torch.tensor([[0.5, 0.0], [1.0, -1.0]]))
    pad = lambda c, s: torch.nn.functional.pad(c, (0, 0, 0, s - c.shape[1]))  # noqa: E731
    v = lambda c: model_fn(x, t, pad(c, 5))  # noqa: E731  every context padded to the longest (5 tokens)
    v_u = v(unc.expand(2, -1, -1))
    want = v_u + 4.0 * (v(ctx) - v_u)
    for k in range(2):
        want = want + 4.0 * parts[1][:, k].view(2, 1, 1) * (v(parts[0][:, k]) - v_u)
    assert torch.allclose(guided(model_fn, ctx, unc, 4.0, parts)(x, t), want, atol=1e-6)
    zero = (parts[0], torch.zeros(2, 2))  # weight 0: plain classifier-free guidance
    assert torch.allclose(guided(model_fn, ctx, unc, 4.0, zero)(x, t), guided(model_fn, ctx, unc, 4.0)(x, t))
    with pytest.raises(ValueError, match="not a prompt schedule"):
        guided(model_fn, ctx[:, None], unc, 4.0, parts)


def test_encode_parts_pads_prompts_with_fewer_parts_at_weight_zero():
    seen = []

    def encode(texts):
        seen.append(texts)
        return torch.arange(len(texts), dtype=torch.float32).view(-1, 1, 1).expand(-1, 3, 2)

    assert encode_parts(encode, [[], []]) is None and not seen  # nothing composed: no extra encoding
    ctx, w = encode_parts(encode, [[("a", 0.5)], [("b", 1.0), ("c", 2.0)]])
    assert seen == [["a", "", "b", "c"]] and ctx.shape == (2, 2, 3, 2)
    assert torch.equal(w, torch.tensor([[0.5, 0.0], [1.0, 2.0]]))


def test_pipeline_composes_prompts_and_refuses_composed_schedule_segments(pipe):  # noqa: F811
    kw = dict(seconds=1.0, height=32, width=32, seed=3, return_latents=True)
    plain = pipe("a red circle moves right", **kw)
    zero = pipe("a red circle moves right AND a blue square :0", **kw)
    steps = {"composed": [], "plain": []}
    composed = pipe("a red circle moves right AND a blue square", **kw, callback=steps["composed"].append)
    pipe("a red circle moves right", **kw, callback=steps["plain"].append)
    last_plan = {k: [i for i in v if i["stage"] == "plan"][-1]["denoised"] for k, v in steps.items()}
    assert torch.equal(last_plan["composed"], last_plan["plain"])  # stage A plans from the first part alone
    assert torch.allclose(plain, zero, atol=1e-5) and not torch.allclose(plain, composed, atol=1e-3)
    both = pipe(["a red circle moves right"] * 2, **kw)  # a plain prompt beside a composed one: its part is padded
    batch = pipe(["a red circle moves right", "a red circle moves right AND a blue square"], **kw)
    assert torch.allclose(batch[0], both[0], atol=1e-5) and not torch.allclose(batch[1], both[1], atol=1e-3)
    with pytest.raises(ValueError, match="schedule's segments take plain prompts"):
        pipe([(0.0, "a red circle"), (0.5, "a circle AND a square")], **kw)


def test_cli_splits_one_composed_prompt_and_refuses_one_in_a_schedule():
    from semanticgen_core.cli import _split_parts

    assert _split_parts([(0.0, "a red triangle AND a triangle :0.5")]) == ([(0.0, "a red triangle")],
                                                                           [("a triangle", 0.5)])  # fmt: skip
    assert _split_parts([(0.0, "a"), (1.0, "b")]) == ([(0.0, "a"), (1.0, "b")], [])
    with pytest.raises(ValueError, match="schedule's segments take plain prompts"):
        _split_parts([(0.0, "a"), (1.0, "b AND c")])
