"""Plan nodes: prompt schedules, plan files, and plan edits in time. Each converts ComfyUI types, calls one
semanticgen_core function (schedule, plan_io, plan_edit), wraps the result.

CONDITIONING x N ─ Prompt Schedule ─ CONDITIONING (schedule) ─ Generate Semantic Plan / stage-B samplers (positive)
SEMANTIC_PLAN ─ Save / Take Range / Splice / Repeat / Blend / Regenerate Range / Re-plan ─ SEMANTIC_PLAN
"""

from __future__ import annotations

import torch

from ..semanticgen_core import flow, plan_edit
from ..semanticgen_core.config import SamplerConfig
from ..semanticgen_core.plan_io import check_plan, load_plan, save_plan
from ..semanticgen_core.schedule import parse_schedule
from . import comfy_compat as cc
from .convert import StepProgress, make_conditioning, plan_from_core, plan_to_core, schedule_conditioning
from .sampling import MODEL, NEGATIVE, PLAN, PLAN_CFG, POSITIVE, SEED, SHIFT, STEPS, number, text_pair

SECONDS_AT = number("FLOAT", 0.0, 0.0, 600.0, "Time in the plan, seconds.", step=0.25)
REPLAN_T = number(
    "FLOAT", 0.2, 0.0, 1.0,
    "Flow time the plan is noised to before stage A re-samples it with the prompt (like a sampler's denoise): "
    "0 keeps the plan, 1 makes a new one. The embedded model on a reference's plan: 0.2 at cfg 3 took the prompt's "
    "colour in 90 % of held-out references (77 % as encoded) and kept the motion; from 0.5 the motion drifts.",
    step=0.05,
)  # fmt: skip
REPLAN_CFG = number(
    "FLOAT", 3.0, 1.0, 30.0,
    "Stage A's guidance scale while re-planning (1 = none). The embedded model: 3 took the prompt's colour more "
    "often than 1 or 2 at the same motion kept (README, Sampling).",
    step=0.1,
)  # fmt: skip
CROSSFADE = number("INT", 1, 0, 64, "Semantic frames mixed across the cut (0: a hard cut).")
SCHEDULE_SLOTS = 4  # prompts of the CONDITIONING schedule node


def _starts_tip(i: int) -> str:
    return f"Start of prompt {i}, seconds (after the one before). Used only when prompt_{i} is connected."


# ----------------------------------------------------------------------------------------------------------------
# Prompt schedules
# ----------------------------------------------------------------------------------------------------------------


class SemanticGenPromptSchedule:
    """Several CONDITIONINGs, each from a start time -> one schedule CONDITIONING for the plan and stage-B nodes."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "A long video from several prompts: prompt_1 from 0 s, prompt_2 from start_2, ... Stage A plans the whole "
        "video at once while each semantic frame reads its own prompt; stage B's windows read theirs."
    )
    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("schedule",)
    OUTPUT_TOOLTIPS = ("The prompts with their start times: connect it as 'positive' of the SemanticGen samplers.",)
    FUNCTION = "build"

    @classmethod
    def INPUT_TYPES(cls):
        optional = {}
        for i in range(2, SCHEDULE_SLOTS + 1):
            optional[f"start_{i}"] = number("FLOAT", 6.0 * (i - 1), 0.0, 600.0, _starts_tip(i), step=0.25)
            optional[f"prompt_{i}"] = ("CONDITIONING", {"tooltip": f"Prompt {i} (a text encode)."})
        return {
            "required": {"prompt_1": ("CONDITIONING", {"tooltip": "The first prompt, from 0 s."})},
            "optional": optional,
        }

    def build(self, prompt_1, start_2=6.0, prompt_2=None, start_3=12.0, prompt_3=None, start_4=18.0, prompt_4=None):
        pairs = [(0.0, prompt_1), (start_2, prompt_2), (start_3, prompt_3), (start_4, prompt_4)]
        pairs = [(s, c) for s, c in pairs if c is not None]
        return (schedule_conditioning([c for _, c in pairs], [s for s, _ in pairs]),)


class SemanticGenPromptScheduleText:
    """Multiline 'SECONDS: prompt' text -> schedule CONDITIONING with the embedded model's text encoder."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "A prompt schedule as text, one prompt per line: 'a red square moves right', '6: it moves up', "
        "'14: it stays still' (a line without a time starts at 0). Embedded model (MiniLM); for Wan2.1 models "
        "use Prompt Schedule with CLIP Text Encode nodes."
    )
    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("schedule",)
    OUTPUT_TOOLTIPS = ("The prompts with their start times: connect it as 'positive' of the SemanticGen samplers.",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        tip = "One prompt per line, 'SECONDS: prompt'; the first line may omit its time (0)."
        return {"required": {"text": ("STRING", {"multiline": True, "tooltip": tip})}}

    def encode(self, text):
        from ..semanticgen_core.lab.embedded import manifest
        from .loaders import text_encoder

        schedule = parse_schedule([ln for ln in text.splitlines() if ln.strip()], "prompt line")
        encoder = text_encoder(manifest()["text_max_length"])
        with torch.no_grad():
            conds = [make_conditioning(*encoder.encode([p])) for _, p in schedule]
        return (schedule_conditioning(conds, [s for s, _ in schedule]),)


# ----------------------------------------------------------------------------------------------------------------
# Plan files
# ----------------------------------------------------------------------------------------------------------------


class SaveSemanticPlan:
    """SEMANTIC_PLAN -> output/semantic_plans/PREFIX_NNNNN.safetensors (with its spec, length and size)."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Saves a semantic plan with its spec, so it can be loaded, edited and rendered later."
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        tip = "File name prefix in output/semantic_plans/ (a number is appended)."
        return {"required": {"plan": PLAN, "filename_prefix": ("STRING", {"default": "plan", "tooltip": tip})}}

    def save(self, plan, filename_prefix):
        folder = cc.plan_dir()
        n = 1 + len(list(folder.glob(f"{filename_prefix}_*.safetensors"))) if folder.is_dir() else 1
        path = save_plan(folder / f"{filename_prefix}_{n:05d}.safetensors", plan_to_core(plan))
        return {"ui": {"text": [str(path)]}}


class LoadSemanticPlan:
    """A plan file -> SEMANTIC_PLAN, checked against the model that will render it."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Loads a saved semantic plan; its encoder, dims and grid must fit the model."
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The saved plan with its length and size.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        tip = "A plan from output/semantic_plans/ (Save Semantic Plan) or input/."
        return {"required": {"model": MODEL, "file": (cc.plan_files() or ["(no saved plans)"], {"tooltip": tip})}}

    def load(self, model, file):
        path = cc.plan_path(file)
        plan = load_plan(path)
        check_plan(plan, model.semantic, model.video, f"plan file {path.name} vs model {model.name}")
        return (plan_from_core(plan),)


# ----------------------------------------------------------------------------------------------------------------
# Edits
# ----------------------------------------------------------------------------------------------------------------


class TakePlanRange:
    """The part of a plan between two times."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Cuts a time range out of a plan (to the nearest semantic frame)."
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The range as a plan of its own length.",)
    FUNCTION = "take"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"plan": PLAN, "start": SECONDS_AT, "end": SECONDS_AT}}

    def take(self, plan, start, end):
        return (plan_from_core(plan_edit.take(plan_to_core(plan), start, end)),)


class SpliceSemanticPlans:
    """Plan a, then plan b, crossfaded over a few semantic frames at the cut."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Joins two plans in time; away from the cut each frame is exactly one plan's."
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("a then b (minus the crossfaded frames).",)
    FUNCTION = "splice"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"a": PLAN, "b": PLAN, "crossfade": CROSSFADE}}

    def splice(self, a, b, crossfade):
        return (plan_from_core(plan_edit.splice(plan_to_core(a), plan_to_core(b), crossfade)),)


class RepeatSemanticPlan:
    """A plan several times in a row (a loop)."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Loops a plan: the same semantic frames several times, optionally crossfaded at each seam."
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The repeated plan.",)
    FUNCTION = "repeat"

    @classmethod
    def INPUT_TYPES(cls):
        times = number("INT", 2, 1, 100, "How many times in a row.")
        crossfade = number("INT", 0, 0, 64, "Semantic frames mixed at each seam (0: a hard cut).")
        return {"required": {"plan": PLAN, "times": times, "crossfade": crossfade}}

    def repeat(self, plan, times, crossfade):
        return (plan_from_core(plan_edit.repeat(plan_to_core(plan), times, crossfade)),)


class BlendSemanticPlans:
    """(1 - weight) a + weight b, frame by frame."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = "Mixes two plans of the same length and size."
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The blended plan.",)
    FUNCTION = "blend"

    @classmethod
    def INPUT_TYPES(cls):
        weight = number("FLOAT", 0.5, 0.0, 1.0, "Weight of b (0: a, 1: b).", step=0.05)
        return {"required": {"a": PLAN, "b": PLAN, "weight": weight}}

    def blend(self, a, b, weight):
        return (plan_from_core(plan_edit.blend(plan_to_core(a), plan_to_core(b), weight)),)


class RegeneratePlanRange:
    """Stage A again over a time range of a plan; the rest is kept exactly."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Regenerates the plan between start and end from the prompt (stage-A inpainting in time: the kept "
        "frames are held at every step, so the new part fits them)."
    )
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The plan with the range regenerated.",)
    FUNCTION = "regenerate"

    @classmethod
    def INPUT_TYPES(cls):
        required = {"model": MODEL, "plan": PLAN, "positive": POSITIVE, "negative": NEGATIVE}
        required.update(start=SECONDS_AT, end=SECONDS_AT, steps=STEPS, cfg=PLAN_CFG, shift=SHIFT, seed=SEED)
        return {"required": required}

    def regenerate(self, model, plan, positive, negative, start, end, steps, cfg, shift, seed):
        def edit(pipe, p, ctx, uncond, starts, generator):
            return plan_edit.regenerate(pipe, p, start, end, ctx, uncond, SamplerConfig(steps, cfg, shift), generator,
                                        StepProgress(steps), starts)  # fmt: skip

        return (stage_a_edit(model, plan, positive, negative, seed, edit),)


class ReplanSemanticPlan:
    """Stage A again over the whole plan, from the plan noised to a flow time (SDEdit on the plan)."""

    CATEGORY = "SemanticGen"
    DESCRIPTION = (
        "Re-samples a plan with a new prompt from the plan noised to `denoise`: what the noise drowns (a reference "
        "video's colour) follows the prompt, what survives it (layout, motion) is kept."
    )
    RETURN_TYPES = ("SEMANTIC_PLAN",)
    RETURN_NAMES = ("plan",)
    OUTPUT_TOOLTIPS = ("The re-planned plan, same length and size.",)
    FUNCTION = "replan"

    @classmethod
    def INPUT_TYPES(cls):
        required = {"model": MODEL, "plan": PLAN, "positive": POSITIVE, "negative": NEGATIVE, "denoise": REPLAN_T}
        required.update(steps=STEPS, cfg=REPLAN_CFG, shift=SHIFT, seed=SEED)
        return {"required": required}

    def replan(self, model, plan, positive, negative, denoise, steps, cfg, shift, seed):
        n = len(flow.schedule_from(denoise, steps, shift)) - 1 if denoise < 1 else steps  # the steps below denoise

        def edit(pipe, p, ctx, uncond, starts, generator):
            return plan_edit.replan(pipe, p, denoise, ctx, uncond, SamplerConfig(steps, cfg, shift), generator,
                                    StepProgress(n), starts)  # fmt: skip

        return (stage_a_edit(model, plan, positive, negative, seed, edit),)


def stage_a_edit(model, plan, positive, negative, seed, edit):
    """Check the plan against the model, encode the prompts, and run edit(pipe, plan, ctx, uncond, starts,
    generator) (a stage-A plan_edit call) with the generators on the device; the edited plan as a SEMANTIC_PLAN."""
    pipe, p = model.pipeline, plan_to_core(plan)
    if pipe.sem_generator is None:
        raise ValueError(f"model {model.name} was loaded without a stage-2 semantic generator; pick one")
    check_plan(p, model.semantic, model.video, f"{plan['source']} plan vs model {model.name}")
    ctx, uncond, starts = text_pair(model, positive, negative, pipe.sem_generator.config.text_dim)
    generator = torch.Generator("cpu").manual_seed(seed)
    with cc.on_device(pipe.sem_generator, pipe.lat_generator):
        dev = dict(device=pipe.device, dtype=pipe.dtype)
        return plan_from_core(edit(pipe, p, ctx.to(**dev), uncond.to(**dev), starts, generator))
