"""Regenerate the shipped workflows (UI format, as the canvas saves them), their pictures in docs/ and thumbnails.

    python workflows/build.py                # workflows/*.json and docs/workflow_*.png
    python workflows/build.py --thumbnails   # also workflows/*.jpg (runs the embedded model on the short workflows)

Widgets are given by name and laid out in the order the ComfyUI frontend creates them (required then optional inputs;
a seed adds its "control after generate" value), from our nodes' INPUT_TYPES and ComfyUI's core node definitions
(tests/fixtures/object_info_core.json). Edit a workflow here, or in the canvas and save it back over the JSON.

ComfyUI's Templates dialog shows a pack's workflows by file name only (frontend 1.27: the name is the card's title,
the name with '-' and '_' read as spaces its description, `<name>.jpg` its thumbnail; no index file is read for
custom-node templates), so the file names are the human titles. Each workflow keeps a short slug for its fixed
uuid4 `id` and its picture in docs/.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import textwrap
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pictures import draw, thumbnail  # noqa: E402

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
TITLE_H = 30  # litegraph draws the title bar above a node's pos
GROWS = 320  # room left under a node that shows images after a run (step previews, Preview Image, Save Video)
VIEW = (1560, 820)  # canvas area (px) the whole workflow must fit at load: a 1080p browser window minus the menus

EMBEDDED = {"stage1": "embedded shapes model", "stage2": "embedded shapes model", "dtype": "auto"}
WAN = {
    "stage1": "semanticgen_wan2.1_t2v_1.3b_stage1.safetensors",
    "stage2": "semanticgen_wan2.1_t2v_1.3b_stage2.safetensors",
    "dtype": "auto",
}
UMT5 = {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}
WAN_VAE = {"vae_name": "wan_2.1_vae.safetensors"}
QWEN = {"kind": "qwen2_5_vl", "weights": "Qwen2.5-VL-7B-Instruct", "dtype": "auto"}
WAN_NEGATIVE = "static, blurry, low quality, worst quality, deformed, watermark, subtitles"
SAMPLER_EMBEDDED = {"steps": 20, "cfg": 4.0, "shift": 2.0}  # stage B; stage A unguided (train/embedded.py PLAN_SAMPLER)
PLAN_SAMPLER_EMBEDDED = {**SAMPLER_EMBEDDED, "cfg": 1.0}
TRANSFER_SAMPLER_EMBEDDED = {**SAMPLER_EMBEDDED, "cfg": 3.0}  # stage B on a reference's plan (TRANSFER_SAMPLER)
REPLAN_EMBEDDED = {"denoise": 0.35, **SAMPLER_EMBEDDED, "cfg": 3.0}  # stage A re-plans it (TRANSFER_REPLAN)
SAMPLER_WAN = {"steps": 30, "cfg": 6.0, "shift": 8.0}

NOTE_EMBEDDED = (
    "## SemanticGen, embedded model (no downloads)\n"
    "The shapes-world model ships inside the pack (64x64, 8 fps); press **Run**. Stage A plans the whole clip in a "
    "compact semantic space, **Preview Semantic Plan** shows that plan (PCA colours, one image per semantic frame), "
    "then stage B renders it into VAE latents; both samplers show a preview at every step."
)
NOTE_REFERENCE_EMBEDDED = (
    "\n\nThe reference clip `reference_shapes.mp4` ships with the pack (a green circle moving right): its plan keeps "
    "the layout and motion, the prompt sets the colour. **Re-plan with Prompt** re-samples that plan from "
    "`denoise` 0.35 with the prompt (stage A, cfg 3): the prompt's colour is taken far more often than from the plan "
    "as encoded (README, Sampling); bypass it to render the reference's plan as it is."
)
NOTE_WAN = (
    "## SemanticGen on Wan2.1-T2V-1.3B: files to get first\n"
    "**Downloads** (ComfyUI offers them when the workflow opens): `models/text_encoders/"
    "umt5_xxl_fp8_e4m3fn_scaled.safetensors` and `models/vae/wan_2.1_vae.safetensors` from "
    "[Comfy-Org/Wan_2.1_ComfyUI_repackaged](https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged).\n\n"
    "**Not published: the SemanticGen stages.** Nobody has released SemanticGen weights, so "
    "`models/semanticgen/semanticgen_wan2.1_t2v_1.3b_stage1.safetensors` and `..._stage2.safetensors` are yours to "
    "train from Wan2.1-T2V-1.3B (train/README.md):\n"
    "```\npython train/prepare.py --videos data/clips --out cache --vae Wan2.1_VAE.safetensors ...\n"
    "accelerate launch train/stage1.py --data cache --out runs/s1 --init-wan Wan2.1-T2V-1.3B-Diffusers\n"
    "accelerate launch train/stage2.py --data cache --out runs/s2 --stage1 runs/s1/stage1_bundle.safetensors "
    "--init-wan Wan2.1-T2V-1.3B-Diffusers\n```\n"
    "then copy `runs/s1/stage1_bundle.safetensors` and `runs/s2/stage2_semantic_generator.safetensors` to those "
    "names. Until then the loader says which file is missing and where it goes."
)
NOTE_REFERENCE_WAN = (
    "\n\n**Reference clip:** upload it in **Load Video** (it expects `input/reference.mp4`). The semantic encoder is "
    "the Hugging Face folder `models/semanticgen/Qwen2.5-VL-7B-Instruct/` (`huggingface-cli download "
    "Qwen/Qwen2.5-VL-7B-Instruct --local-dir ...`; only the vision tower is read)."
)


def load_specs() -> tuple[dict, object]:
    """object_info-style specs (ComfyUI core from the fixture, ours from INPUT_TYPES as the server serialises them),
    and our pack's nodes package (its download table and file choices)."""
    specs = json.loads((ROOT / "tests" / "fixtures" / "object_info_core.json").read_text())
    spec = importlib.util.spec_from_file_location("semanticgen_pack", ROOT / "__init__.py")
    pack = importlib.util.module_from_spec(spec)
    sys.modules["semanticgen_pack"] = pack
    spec.loader.exec_module(pack)
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        inputs = json.loads(json.dumps(cls.INPUT_TYPES()))
        specs[name] = {
            "input": inputs,
            "input_order": {k: list(v) for k, v in inputs.items()},
            "output": list(cls.RETURN_TYPES),
            "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            "display_name": pack.NODE_DISPLAY_NAME_MAPPINGS[name],
            "category": cls.CATEGORY,
        }
    return specs, pack.nodes


def is_widget(cfg) -> bool:
    typ, opts = cfg[0], cfg[1] if len(cfg) > 1 else {}
    return (isinstance(typ, list) or typ in WIDGET_TYPES) and not opts.get("forceInput")


def widget_slots(name: str, cfg) -> int:
    """widgets_values entries of one widget input: a seed adds its control value, an upload widget one more."""
    opts = cfg[1] if len(cfg) > 1 else {}
    control = cfg[0] == "INT" and (opts.get("control_after_generate") or name in ("seed", "noise_seed"))
    return 1 + bool(control) + bool(opts.get("video_upload") or opts.get("image_upload"))


def ordered_inputs(spec) -> list[tuple[str, list]]:
    """(name, cfg) in the frontend's order: required, then optional."""
    out = []
    for section in ("required", "optional"):
        sec = spec["input"].get(section) or {}
        out += [(n, sec[n]) for n in (spec.get("input_order", {}).get(section) or sec)]
    return out


def widget_values(node: dict, specs: dict) -> list[tuple[str, str]]:
    """(name, value as text) of a UI node's widgets, in the frontend's order (a seed's control value skipped)."""
    out, pos = [], 0
    for name, cfg in ((nm, c) for nm, c in ordered_inputs(specs[node["type"]]) if is_widget(c)):
        out.append((name, str(node["widgets_values"][pos])))
        pos += widget_slots(name, cfg)
    return out


def fixed_uuid4(slug: str) -> str:
    """A uuid4-formatted id derived from the slug: the frontend's schema wants a uuid, and the files must not churn."""
    return str(uuid.UUID(bytes=uuid.uuid5(uuid.NAMESPACE_URL, f"semanticgen/workflows/{slug}").bytes, version=4))


def note_height(text: str, width: int) -> int:
    """Rendered height of a MarkdownNote, as measured in the frontend (about width / 6.2 characters a line, 17 px a
    line, headings and paragraph gaps extra)."""
    lines = sum(len(textwrap.wrap(line, int(width / 6.2))) or 1 for line in text.split("\n"))
    return 40 + 17 * lines + 14 * text.count("\n\n") + 14 * text.count("## ")


class Graph:
    """A UI-format workflow under construction: nodes are made, then placed in columns."""

    def __init__(self, specs: dict, nodes):
        self.specs, self.downloads, self.nodes, self.links = specs, nodes.loaders.DOWNLOADS, [], []
        self.from_input = nodes.sampling.FROM_INPUT  # Encode Reference Semantics' file choice for a connected VIDEO
        self.grows: set[int] = set()  # nodes that show images after a run
        self.meta: dict = {}  # what the thumbnail needs (prompt, length, reference)

    def note(self, text: str, width: int) -> dict:
        n = {
            "id": len(self.nodes) + 1,
            "type": "MarkdownNote",
            "pos": [0, 0],
            "size": [width, note_height(text, width)],
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {},
            "widgets_values": [text],
            "color": "#432",
            "bgcolor": "#653",
        }
        self.nodes.append(n)
        return n

    def node(self, type_: str, widgets: dict | None = None, title: str | None = None, width=340, height=None):
        widgets = dict(widgets or {})
        spec, values, sockets = self.specs[type_], [], []
        for name, cfg in ordered_inputs(spec):
            if not is_widget(cfg):
                sockets.append({"name": name, "type": cfg[0], "link": None})
                continue
            opts = cfg[1] if len(cfg) > 1 else {}
            values.append(widgets.pop(name) if name in widgets else opts.get("default", (cfg[0] or [None])[0]))
            if cfg[0] == "INT" and widget_slots(name, cfg) > 1:
                values.append("fixed")  # control after generate: keep the seed, so a re-run gives the same video
            if opts.get("video_upload") or opts.get("image_upload"):
                values.append("image")
        if widgets:
            raise KeyError(f"{type_}: no widgets named {sorted(widgets)}")
        outputs = [
            {"name": n, "type": t, "links": [], "slot_index": i}
            for i, (n, t) in enumerate(zip(spec["output_name"], spec["output"]))
        ]
        n = {
            "id": len(self.nodes) + 1,
            "type": type_,
            "pos": [0, 0],
            "size": [width, height or 46 + 22 * max(len(sockets), len(outputs)) + 26 * len(values)],
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": sockets,
            "outputs": outputs,
            "properties": {"Node name for S&R": type_},
            "widgets_values": values,
        }
        files = [v for v in values if isinstance(v, str) and v in self.downloads]
        if files:  # drives ComfyUI's missing-models dialog (name, url, models/ sub-folder)
            n["properties"]["models"] = [
                {"name": f, "url": self.downloads[f][1], "directory": self.downloads[f][0]} for f in files
            ]
        if title:
            n["title"] = title
        if type_ in ("GenerateSemanticPlan", "SemanticToLatent", "SwinLongVideoSampler", "PreviewImage", "SaveVideo"):
            self.grows.add(n["id"])
        if type_ == "LoadVideo":  # shows the picked clip
            self.grows.add(n["id"])
        self.nodes.append(n)
        return n

    def link(self, src: dict, output: str, dst: dict, input_: str) -> None:
        out = next(i for i, o in enumerate(src["outputs"]) if o["name"] == output)
        slot = next(i for i, s in enumerate(dst["inputs"]) if s["name"] == input_)
        link_id, typ = len(self.links) + 1, src["outputs"][out]["type"]
        self.links.append([link_id, src["id"], out, dst["id"], slot, typ])
        src["outputs"][out]["links"].append(link_id)
        dst["inputs"][slot]["link"] = link_id

    def column(self, x: int, y: int, nodes: list[dict], gap: int = 40) -> int:
        """Stack nodes top-down from (x, y); a node that shows images after a run gets GROWS px of room below it.
        Returns the y below the column."""
        for n in nodes:
            n["pos"] = [x, y + TITLE_H]
            y += TITLE_H + n["size"][1] + gap + (GROWS if n["id"] in self.grows else 0)
        return y

    def view(self) -> dict:
        """extra.ds: the scale and offset at which every node (title bars included) fits VIEW at load."""
        x0 = min(n["pos"][0] for n in self.nodes)
        y0 = min(n["pos"][1] - TITLE_H for n in self.nodes)
        x1 = max(n["pos"][0] + n["size"][0] for n in self.nodes)
        y1 = max(n["pos"][1] + n["size"][1] for n in self.nodes)
        margin = 20
        scale = round(min(1.0, (VIEW[0] - 2 * margin) / (x1 - x0), (VIEW[1] - 2 * margin) / (y1 - y0)), 3)
        return {"scale": scale, "offset": [round(margin / scale - x0, 1), round(margin / scale - y0, 1)]}

    def save(self, path: Path, slug: str) -> dict:
        """Execution order (topological) into each node's 'order', then write the canvas JSON."""
        deps = {n["id"]: {link[1] for link in self.links if link[3] == n["id"]} for n in self.nodes}
        done: list[int] = []
        while len(done) < len(self.nodes):
            done += [i for i in sorted(deps) if i not in done and deps[i] <= set(done)][:1]
        for n in self.nodes:
            n["order"] = done.index(n["id"])
        ui = {
            "id": fixed_uuid4(slug),
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": self.view(), "frontendVersion": "1.27.10"},
            "version": 0.4,
        }
        path.write_text(json.dumps(ui, indent=1) + "\n")
        return ui


# ----------------------------------------------------------------------------------------------------------------
# The workflows
# ----------------------------------------------------------------------------------------------------------------

COL = 380  # column pitch (node width 340 + gap)


def text_nodes(g: Graph, positive: str, negative: str, wan: bool) -> list[dict]:
    """[Load CLIP (wan),] positive, negative CONDITIONING nodes: our MiniLM encoder, or CLIP Text Encode (umt5)."""
    if not wan:
        pos = g.node("SemanticGenTextEncode", {"text": positive}, "Positive prompt", height=120)
        neg = g.node("SemanticGenTextEncode", {"text": negative}, "Negative prompt", height=100)
        return [pos, neg]
    clip = g.node("CLIPLoader", UMT5)
    pos = g.node("CLIPTextEncode", {"text": positive}, "Positive prompt", height=120)
    neg = g.node("CLIPTextEncode", {"text": negative}, "Negative prompt", height=100)
    g.link(clip, "CLIP", pos, "clip")
    g.link(clip, "CLIP", neg, "clip")
    return [clip, pos, neg]


def decode_and_save(g: Graph, latent: dict, prefix: str, fps: float, wan: bool, tiled: bool = False) -> list[dict]:
    """LATENT -> IMAGE (SemanticGen Decode, or core VAE Decode for Wan) -> Create Video -> Save Video."""
    if wan:
        vae = g.node("VAELoader", WAN_VAE)
        if tiled:
            dec = g.node(
                "VAEDecodeTiled", {"tile_size": 512, "overlap": 64, "temporal_size": 64, "temporal_overlap": 8}
            )
        else:
            dec = g.node("VAEDecode")
        g.link(vae, "VAE", dec, "vae")
    else:
        vae = g.node("SemanticGenVAELoader", {"vae_name": "embedded shapes VAE", "dtype": "auto"})
        dec = g.node("SemanticGenDecode", {"chunk": 4})
        g.link(vae, "vae", dec, "vae")
    g.link(latent, "LATENT", dec, "samples")
    video = g.node("CreateVideo", {"fps": fps})
    save = g.node("SaveVideo", {"filename_prefix": f"video/{prefix}", "format": "auto", "codec": "auto"})
    g.link(dec, "IMAGE", video, "images")
    g.link(video, "VIDEO", save, "video")
    return [vae, dec, video, save]


def plan_preview(g: Graph, plan: dict) -> list[dict]:
    prev = g.node("PreviewSemanticPlan")
    img = g.node("PreviewImage")
    g.link(plan, "plan", prev, "plan")
    g.link(prev, "IMAGE", img, "images")
    return [prev, img]


def text_to_video(specs, nodes, wan: bool, long: bool) -> Graph:
    """Text -> plan (stage A) -> latents (stage B: full attention, or shifted windows for long) -> video."""
    g = Graph(specs, nodes)
    note = g.note(NOTE_WAN if wan else NOTE_EMBEDDED, 5 * COL - 40)
    prompt = "a purple circle moves to the right" if long else "a red circle moves to the right"
    if wan:
        prompt = (
            "a lone hiker walks through a misty pine forest at dawn, then reaches a lake"
            if long
            else "a red kite flies over a sunny beach, waves rolling in, people walking along the shore"
        )
    model = g.node("SemanticGenModelLoader", WAN if wan else EMBEDDED)
    texts = text_nodes(g, prompt, WAN_NEGATIVE if wan else "", wan)
    pos, neg = texts[-2:]
    size = {"width": 832, "height": 480} if wan else {"width": 64, "height": 64}
    sampler = SAMPLER_WAN if wan else SAMPLER_EMBEDDED
    seconds = 60.0 if long else (5.0 if wan else 2.0)
    plan_sampler = SAMPLER_WAN if wan else PLAN_SAMPLER_EMBEDDED
    plan = g.node("GenerateSemanticPlan", {"seconds": seconds, **size, **plan_sampler, "seed": 42})
    stage_b = "SwinLongVideoSampler" if long else "SemanticToLatent"
    latent = g.node(stage_b, {"plan_noise": 0.1, **sampler, "seed": 42, **({"window": 8} if long else {})})
    for dst in (plan, latent):
        g.link(model, "model", dst, "model")
        g.link(pos, "CONDITIONING", dst, "positive")
        g.link(neg, "CONDITIONING", dst, "negative")
    g.link(plan, "plan", latent, "plan")
    previews = plan_preview(g, plan)
    kind = "long" if long else "t2v"
    tail = decode_and_save(g, latent, f"SemanticGen_{kind}", 16.0 if wan else 8.0, wan, tiled=long and wan)
    top = g.column(0, 0, [note])
    g.column(0, top, [model, *texts])
    g.column(COL, top, [plan])
    g.column(2 * COL, top, previews)
    g.column(3 * COL, top, [latent])
    g.column(4 * COL, top, tail)
    g.meta = {"prompt": prompt, "seconds": seconds, "window": 8 if long else None}
    return g


def reference_transfer(specs, nodes, wan: bool) -> Graph:
    """Reference video -> its plan (encoder + compressor) -> latents with a new prompt -> video."""
    g = Graph(specs, nodes)
    text = (NOTE_WAN + NOTE_REFERENCE_WAN) if wan else (NOTE_EMBEDDED + NOTE_REFERENCE_EMBEDDED)
    note = g.note(text, 6 * COL - 40)
    prompt = (
        "a golden retriever runs across a snowy field, soft winter light"
        if wan
        else "a yellow circle moves to the right"
    )
    model = g.node("SemanticGenModelLoader", WAN if wan else EMBEDDED)
    enc = g.node("LoadSemanticEncoder", QWEN if wan else {"kind": "qwen2_5_vl", "weights": "embedded shapes encoder"})
    size = {"width": 832, "height": 480} if wan else {"width": 64, "height": 64}
    fps = 16.0 if wan else 8.0
    sources = [model, enc]
    if wan:  # a user's clip through ComfyUI's own Load Video, which the file widget defers to
        video = g.node("LoadVideo", {"file": "reference.mp4"})
        ref = g.node("EncodeReferenceSemantics", {"file": g.from_input, **size, "max_seconds": 0.0, "fps": fps})
        g.link(video, "VIDEO", ref, "video")
        sources.append(video)
    else:
        ref = g.node(
            "EncodeReferenceSemantics", {"file": "reference_shapes.mp4", **size, "max_seconds": 0.0, "fps": fps}
        )
    texts = text_nodes(g, prompt, WAN_NEGATIVE if wan else "", wan)
    pos, neg = texts[-2:]
    sampler = SAMPLER_WAN if wan else TRANSFER_SAMPLER_EMBEDDED
    latent = g.node("SemanticToLatent", {"plan_noise": 0.1, **sampler, "seed": 42})
    g.link(enc, "encoder", ref, "encoder")
    g.link(model, "model", ref, "model")
    g.link(model, "model", latent, "model")
    plan, planners = ref, []
    if not wan:  # the embedded model takes the prompt's colour far more often from a re-planned reference plan
        plan = g.node("ReplanSemanticPlan", {**REPLAN_EMBEDDED, "seed": 42})
        g.link(model, "model", plan, "model")
        g.link(ref, "plan", plan, "plan")
        g.link(pos, "CONDITIONING", plan, "positive")
        g.link(neg, "CONDITIONING", plan, "negative")
        planners = [plan]
    g.link(plan, "plan", latent, "plan")
    g.link(pos, "CONDITIONING", latent, "positive")
    g.link(neg, "CONDITIONING", latent, "negative")
    previews = plan_preview(g, plan)
    tail = decode_and_save(g, latent, "SemanticGen_reference", fps, wan)
    top = g.column(0, 0, [note])
    g.column(0, top, sources)
    g.column(COL, top, [ref, *previews])
    g.column(2 * COL, top, [*texts, *planners])
    g.column(3 * COL, top, [latent])
    g.column(4 * COL, top, tail)
    g.meta = {"prompt": prompt, "reference": "reference_shapes.mp4"}
    return g


SCHEDULE_PROMPTS = [  # (start seconds, prompt): one character, a motion per segment
    (0.0, "a purple circle moves to the right"),
    (15.0, "a purple circle moves up"),
    (30.0, "a purple circle moves to the left"),
    (45.0, "a purple circle moves down"),
]


def prompt_schedule_minute(specs, nodes) -> Graph:
    """One minute from several prompts (embedded model): Prompt Schedule -> plan (stage A, full attention over the
    minute, each semantic frame reading its segment's prompt) -> shifted-window stage B -> video."""
    g = Graph(specs, nodes)
    text = (
        NOTE_EMBEDDED + "\n\n**One minute, several prompts**: each prompt starts at its time (Prompt Schedule: "
        "start_2, start_3, ...). The plan is made for the whole minute at once, so the character stays the same "
        "while its motion follows the schedule. Save Semantic Plan (connected to the plan) keeps it for editing."
    )
    note = g.note(text, 6 * COL - 40)
    model = g.node("SemanticGenModelLoader", EMBEDDED)
    texts = [g.node("SemanticGenTextEncode", {"text": p}, f"Prompt {i + 1} ({s:g} s)")
             for i, (s, p) in enumerate(SCHEDULE_PROMPTS)]  # fmt: skip
    neg = g.node("SemanticGenTextEncode", {"text": ""}, "Negative prompt")
    sched = g.node("SemanticGenPromptSchedule", {f"start_{i + 1}": s for i, (s, _) in enumerate(SCHEDULE_PROMPTS) if i})
    for i, t in enumerate(texts):
        g.link(t, "CONDITIONING", sched, f"prompt_{i + 1}")
    plan = g.node(
        "GenerateSemanticPlan", {"seconds": 60.0, "width": 64, "height": 64, **PLAN_SAMPLER_EMBEDDED, "seed": 42}
    )
    latent = g.node("SwinLongVideoSampler", {"plan_noise": 0.1, **SAMPLER_EMBEDDED, "seed": 42, "window": 8})
    for dst in (plan, latent):
        g.link(model, "model", dst, "model")
        g.link(sched, "schedule", dst, "positive")
        g.link(neg, "CONDITIONING", dst, "negative")
    g.link(plan, "plan", latent, "plan")
    save_plan = g.node("SaveSemanticPlan", {})
    g.link(plan, "plan", save_plan, "plan")
    previews = plan_preview(g, plan)
    tail = decode_and_save(g, latent, "SemanticGen_schedule", 8.0, wan=False)
    top = g.column(0, 0, [note])
    g.column(0, top, [model, *texts[:2]])
    g.column(COL, top, [*texts[2:], neg])
    g.column(2 * COL, top, [sched, plan])
    g.column(3 * COL, top, [save_plan, *previews])
    g.column(4 * COL, top, [latent])
    g.column(5 * COL, top, tail)
    g.meta = {"prompt": SCHEDULE_PROMPTS[0][1], "seconds": 60.0, "window": 8}
    return g


@dataclass(frozen=True)
class Workflow:
    slug: str  # fixed id and docs picture name
    name: str  # file name = the Templates dialog's title (and, read with spaces, its description)
    make: Callable
    embedded: bool


WORKFLOWS = [
    Workflow("semanticgen_t2v_embedded", "Text to video (embedded model, no downloads)",
             lambda s, d: text_to_video(s, d, wan=False, long=False), True),
    Workflow("semanticgen_reference_transfer_embedded", "Reference video transfer (embedded model, no downloads)",
             lambda s, d: reference_transfer(s, d, wan=False), True),
    Workflow("semanticgen_long_video_embedded", "One-minute video (embedded model, no downloads)",
             lambda s, d: text_to_video(s, d, wan=False, long=True), True),
    Workflow("semanticgen_t2v_wan2.1_1.3b", "Text to video (Wan2.1-T2V-1.3B, needs downloads and training)",
             lambda s, d: text_to_video(s, d, wan=True, long=False), False),
    Workflow("semanticgen_reference_transfer_wan2.1_1.3b",
             "Reference video transfer (Wan2.1-T2V-1.3B, needs downloads and training)",
             lambda s, d: reference_transfer(s, d, wan=True), False),
    Workflow("semanticgen_long_video_wan2.1_1.3b", "One-minute video (Wan2.1-T2V-1.3B, needs downloads and training)",
             lambda s, d: text_to_video(s, d, wan=True, long=True), False),
    Workflow("semanticgen_prompt_schedule_embedded", "One minute, several prompts (embedded model, no downloads)",
             prompt_schedule_minute, True),
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--thumbnails", action="store_true", help="also write workflows/<name>.jpg (runs the model)")
    args = parser.parse_args()
    specs, nodes = load_specs()
    (ROOT / "docs").mkdir(exist_ok=True)
    for wf in WORKFLOWS:
        g = wf.make(specs, nodes)
        ui = g.save(ROOT / "workflows" / f"{wf.name}.json", wf.slug)
        picture = ROOT / "docs" / f"workflow_{wf.slug}.png"
        draw(ui, specs, lambda n: widget_values(n, specs), picture)
        print(f"wrote workflows/{wf.name}.json and docs/{picture.name}")
        if args.thumbnails:
            thumbnail(wf, picture, g.meta, ROOT / "workflows" / f"{wf.name}.jpg")
            print(f"wrote workflows/{wf.name}.jpg")


if __name__ == "__main__":
    main()
