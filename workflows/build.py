"""Regenerate the shipped workflows (UI format, as the canvas saves them) and their pictures in docs/.

    python workflows/build.py            # writes workflows/*.json and docs/workflow_*.png

Widgets are given by name and laid out in the order the ComfyUI frontend creates them (required then optional inputs;
a seed adds its "control after generate" value), from our nodes' INPUT_TYPES and ComfyUI's core node definitions
(tests/fixtures/object_info_core.json). Edit a workflow here, or in the canvas and save it back over the JSON.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NOTE_TYPES = {"Note", "MarkdownNote"}

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

NOTE_EMBEDDED = (
    "## SemanticGen, embedded model\nRuns with nothing downloaded: the shapes-world model ships inside the pack "
    "(64x64, 8 fps). Stage A plans the whole clip in a compact semantic space; **Preview Semantic Plan** shows the "
    "plan (PCA colours per semantic frame) before stage B renders it into VAE latents."
)
NOTE_WAN = (
    "## SemanticGen on Wan2.1-T2V-1.3B\nPut these files in ComfyUI/models/:\n"
    "- `text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors` and `vae/wan_2.1_vae.safetensors` "
    "(Comfy-Org/Wan_2.1_ComfyUI_repackaged)\n"
    "- `semanticgen/semanticgen_wan2.1_t2v_1.3b_stage1.safetensors` and `..._stage2.safetensors`: SemanticGen "
    "exports trained from Wan2.1-T2V-1.3B with `train/stage1.py` and `train/stage2.py` (see README)\n"
    "- for reference videos: `semanticgen/Qwen2.5-VL-7B-Instruct/` "
    "(`huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct --local-dir ...`; only the vision tower is read)"
)


def load_specs() -> dict:
    """object_info-style specs: ComfyUI core (fixture) plus ours (from INPUT_TYPES, as the server serialises them)."""
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
    return specs


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


class Graph:
    """A UI-format workflow under construction."""

    def __init__(self, specs: dict):
        self.specs, self.nodes, self.links = specs, [], []

    def node(self, type_: str, pos, widgets: dict | None = None, title: str | None = None, width: int = 320):
        widgets = dict(widgets or {})
        if type_ in NOTE_TYPES:
            n = {
                "id": len(self.nodes) + 1,
                "type": type_,
                "pos": list(pos),
                "size": [width, 200],
                "flags": {},
                "order": 0,
                "mode": 0,
                "inputs": [],
                "outputs": [],
                "properties": {},
                "widgets_values": [widgets["text"]],
                "color": "#432",
                "bgcolor": "#653",
            }
            self.nodes.append(n)
            return n
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
        height = 46 + 22 * max(len(sockets), len(outputs)) + 26 * len(values)
        n = {
            "id": len(self.nodes) + 1,
            "type": type_,
            "pos": list(pos),
            "size": [width, height],
            "flags": {},
            "order": 0,
            "mode": 0,
            "inputs": sockets,
            "outputs": outputs,
            "properties": {"Node name for S&R": type_},
            "widgets_values": values,
        }
        if title:
            n["title"] = title
        self.nodes.append(n)
        return n

    def link(self, src: dict, output: str, dst: dict, input_: str) -> None:
        out = next(i for i, o in enumerate(src["outputs"]) if o["name"] == output)
        slot = next(i for i, s in enumerate(dst["inputs"]) if s["name"] == input_)
        link_id, typ = len(self.links) + 1, src["outputs"][out]["type"]
        self.links.append([link_id, src["id"], out, dst["id"], slot, typ])
        src["outputs"][out]["links"].append(link_id)
        dst["inputs"][slot]["link"] = link_id

    def save(self, path: Path) -> dict:
        """Execution order (topological) into each node's 'order', then write the canvas JSON."""
        deps = {n["id"]: {link[1] for link in self.links if link[3] == n["id"]} for n in self.nodes}
        done: list[int] = []
        while len(done) < len(self.nodes):
            done += [i for i in sorted(deps) if i not in done and deps[i] <= set(done)][:1]
        for n in self.nodes:
            n["order"] = done.index(n["id"])
        ui = {
            "id": f"semanticgen-{path.stem}",
            "revision": 0,
            "last_node_id": len(self.nodes),
            "last_link_id": len(self.links),
            "nodes": self.nodes,
            "links": self.links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [40, 40]}, "frontendVersion": "1.28.6"},
            "version": 0.4,
        }
        path.write_text(json.dumps(ui, indent=1) + "\n")
        return ui


# ----------------------------------------------------------------------------------------------------------------
# The workflows
# ----------------------------------------------------------------------------------------------------------------


def text_nodes(g: Graph, positive: str, negative: str, wan: bool, x: int = 20, y: int = 300):
    """(positive, negative) CONDITIONING nodes: our MiniLM encoder, or Load CLIP (wan) + CLIP Text Encode."""
    if not wan:
        pos = g.node("SemanticGenTextEncode", (x, y), {"text": positive}, "Positive prompt")
        neg = g.node("SemanticGenTextEncode", (x, y + 170), {"text": negative}, "Negative prompt")
        return pos, neg
    clip = g.node("CLIPLoader", (x - 400, y), UMT5)
    pos = g.node("CLIPTextEncode", (x, y), {"text": positive}, "Positive prompt")
    neg = g.node("CLIPTextEncode", (x, y + 170), {"text": negative}, "Negative prompt")
    g.link(clip, "CLIP", pos, "clip")
    g.link(clip, "CLIP", neg, "clip")
    return pos, neg


def decode_and_save(g: Graph, latent: dict, prefix: str, fps: float, wan: bool, tiled: bool = False, x: int = 1260):
    """LATENT -> IMAGE (SemanticGen Decode, or core VAE Decode for Wan) -> Create Video -> Save Video."""
    if wan:
        vae = g.node("VAELoader", (x - 420, 620), WAN_VAE)
        if tiled:
            dec = g.node(
                "VAEDecodeTiled", (x, 40), {"tile_size": 512, "overlap": 64, "temporal_size": 64, "temporal_overlap": 8}
            )
        else:
            dec = g.node("VAEDecode", (x, 40))
        g.link(vae, "VAE", dec, "vae")
        g.link(latent, "LATENT", dec, "samples")
    else:
        vae = g.node("SemanticGenVAELoader", (x - 420, 620), {"vae_name": "embedded shapes VAE", "dtype": "auto"})
        dec = g.node("SemanticGenDecode", (x, 40), {"chunk": 4})
        g.link(vae, "vae", dec, "vae")
        g.link(latent, "LATENT", dec, "samples")
    video = g.node("CreateVideo", (x, 240), {"fps": fps})
    save = g.node("SaveVideo", (x, 400), {"filename_prefix": f"video/{prefix}", "format": "auto", "codec": "auto"})
    g.link(dec, "IMAGE", video, "images")
    g.link(video, "VIDEO", save, "video")


def plan_preview(g: Graph, plan: dict, x: int = 840, y: int = 400) -> None:
    prev = g.node("PreviewSemanticPlan", (x, y))
    img = g.node("PreviewImage", (x, y + 110), width=260)
    g.link(plan, "plan", prev, "plan")
    g.link(prev, "IMAGE", img, "images")


def text_to_video(specs, wan: bool, long: bool) -> Graph:
    """Text -> plan (stage A) -> latents (stage B: full attention, or shifted windows for long) -> video."""
    g = Graph(specs)
    g.node("MarkdownNote", (20, -240), {"text": NOTE_WAN if wan else NOTE_EMBEDDED}, width=700)
    prompt = "a purple circle moves to the right" if long else "a red circle moves to the right"
    if wan:
        prompt = (
            "a red kite flies over a sunny beach, waves rolling in, people walking along the shore"
            if not long
            else "a lone hiker walks through a misty pine forest at dawn, then reaches a lake"
        )
    pos, neg = text_nodes(g, prompt, WAN_NEGATIVE if wan else "", wan)
    model = g.node("SemanticGenModelLoader", (20, 40), WAN if wan else EMBEDDED)
    size = {"width": 832, "height": 480} if wan else {"width": 64, "height": 64}
    sampler = {"steps": 30, "cfg": 6.0, "shift": 8.0} if wan else {"steps": 20, "cfg": 4.0, "shift": 2.0}
    plan = g.node(
        "GenerateSemanticPlan",
        (420, 40),
        {"seconds": 60.0 if long else (5.0 if wan else 2.0), **size, **sampler, "seed": 42},
    )
    if long:
        latent = g.node("SwinLongVideoSampler", (840, 40), {"plan_noise": 0.1, **sampler, "seed": 42, "window": 8})
    else:
        latent = g.node("SemanticToLatent", (840, 40), {"plan_noise": 0.1, **sampler, "seed": 42})
    for dst in (plan, latent):
        g.link(model, "model", dst, "model")
        g.link(pos, "CONDITIONING", dst, "positive")
        g.link(neg, "CONDITIONING", dst, "negative")
    g.link(plan, "plan", latent, "plan")
    plan_preview(g, plan)
    kind = "long" if long else "t2v"
    decode_and_save(g, latent, f"SemanticGen_{kind}", 16.0 if wan else 8.0, wan, tiled=long and wan)
    return g


def reference_transfer(specs, wan: bool) -> Graph:
    """Reference video -> its plan (encoder + compressor) -> latents with a new prompt -> video."""
    g = Graph(specs)
    g.node(
        "MarkdownNote",
        (20, -240),
        {
            "text": NOTE_WAN
            if wan
            else NOTE_EMBEDDED + "\n\nThe reference clip "
            "`reference_shapes.mp4` ships with the pack (a green circle moving right); the prompt changes its colour."
        },
        width=700,
    )
    prompt = "a yellow circle moves to the right"
    if wan:
        prompt = "a golden retriever runs across a snowy field, soft winter light"
    pos, neg = text_nodes(g, prompt, WAN_NEGATIVE if wan else "", wan)
    model = g.node("SemanticGenModelLoader", (20, 40), WAN if wan else EMBEDDED)
    enc = g.node(
        "LoadSemanticEncoder",
        (20, 640),
        QWEN if wan else {"kind": "qwen2_5_vl", "weights": "embedded shapes encoder", "dtype": "auto"},
    )
    size = {"width": 832, "height": 480} if wan else {"width": 64, "height": 64}
    ref = g.node(
        "EncodeReferenceSemantics",
        (420, 40),
        {"file": "reference_shapes.mp4", **size, "max_seconds": 0.0, "fps": 16.0 if wan else 8.0},
    )
    if wan:  # a user's clip through ComfyUI's own Load Video (VIDEO input overrides the file widget)
        video = g.node("LoadVideo", (20, 820), {"file": "reference.mp4"})
        g.link(video, "VIDEO", ref, "video")
    sampler = {"steps": 30, "cfg": 6.0, "shift": 8.0} if wan else {"steps": 20, "cfg": 4.0, "shift": 2.0}
    latent = g.node("SemanticToLatent", (840, 40), {"plan_noise": 0.1, **sampler, "seed": 42})
    g.link(enc, "encoder", ref, "encoder")
    g.link(model, "model", ref, "model")
    g.link(model, "model", latent, "model")
    g.link(ref, "plan", latent, "plan")
    g.link(pos, "CONDITIONING", latent, "positive")
    g.link(neg, "CONDITIONING", latent, "negative")
    plan_preview(g, ref)
    decode_and_save(g, latent, "SemanticGen_reference", 16.0 if wan else 8.0, wan)
    return g


SCHEDULE_PROMPTS = [  # (start seconds, prompt): one character, a motion per segment
    (0.0, "a purple circle moves to the right"),
    (15.0, "a purple circle moves up"),
    (30.0, "a purple circle moves to the left"),
    (45.0, "a purple circle moves down"),
]


def prompt_schedule_minute(specs) -> Graph:
    """One minute from several prompts (embedded model): Prompt Schedule -> plan (stage A, full attention over the
    minute, each semantic frame reading its segment's prompt) -> shifted-window stage B -> video."""
    g = Graph(specs)
    note = (
        NOTE_EMBEDDED + "\n\n**One minute, several prompts**: each prompt starts at its time (Prompt Schedule: "
        "start_2, start_3, ...). The plan is made for the whole minute at once, so the character stays the same "
        "while its motion follows the schedule. Save Semantic Plan (connected to the plan) keeps it for editing."
    )
    g.node("MarkdownNote", (20, -240), {"text": note}, width=700)
    model = g.node("SemanticGenModelLoader", (20, 40), EMBEDDED)
    texts = [g.node("SemanticGenTextEncode", (20, 240 + 150 * i), {"text": p}, f"Prompt {i + 1} ({s:g} s)")
             for i, (s, p) in enumerate(SCHEDULE_PROMPTS)]  # fmt: skip
    neg = g.node("SemanticGenTextEncode", (20, 240 + 150 * len(texts)), {"text": ""}, "Negative prompt")
    starts = {f"start_{i + 1}": s for i, (s, _) in enumerate(SCHEDULE_PROMPTS) if i}
    sched = g.node("SemanticGenPromptSchedule", (420, 420), starts)
    for i, t in enumerate(texts):
        g.link(t, "CONDITIONING", sched, f"prompt_{i + 1}")
    sampler = {"steps": 20, "cfg": 4.0, "shift": 2.0}
    plan = g.node(
        "GenerateSemanticPlan", (420, 40), {"seconds": 60.0, "width": 64, "height": 64, **sampler, "seed": 42}
    )
    latent = g.node("SwinLongVideoSampler", (840, 40), {"plan_noise": 0.1, **sampler, "seed": 42, "window": 8})
    for dst in (plan, latent):
        g.link(model, "model", dst, "model")
        g.link(sched, "schedule", dst, "positive")
        g.link(neg, "CONDITIONING", dst, "negative")
    g.link(plan, "plan", latent, "plan")
    plan_preview(g, plan)
    decode_and_save(g, latent, "SemanticGen_schedule", 8.0, wan=False)
    return g


WORKFLOWS = {
    "semanticgen_t2v_embedded": lambda s: text_to_video(s, wan=False, long=False),
    "semanticgen_reference_transfer_embedded": lambda s: reference_transfer(s, wan=False),
    "semanticgen_long_video_embedded": lambda s: text_to_video(s, wan=False, long=True),
    "semanticgen_t2v_wan2.1_1.3b": lambda s: text_to_video(s, wan=True, long=False),
    "semanticgen_reference_transfer_wan2.1_1.3b": lambda s: reference_transfer(s, wan=True),
    "semanticgen_long_video_wan2.1_1.3b": lambda s: text_to_video(s, wan=True, long=True),
    "semanticgen_prompt_schedule_embedded": prompt_schedule_minute,
}


# ----------------------------------------------------------------------------------------------------------------
# Pictures
# ----------------------------------------------------------------------------------------------------------------

LINK_COLORS = {
    "MODEL": "#B39DDB",
    "CLIP": "#FFD500",
    "VAE": "#FF6E6E",
    "LATENT": "#FF9CF9",
    "IMAGE": "#64B5F6",
    "CONDITIONING": "#FFA931",
    "VIDEO": "#8BC34A",
    "SEMANTICGEN_MODEL": "#B39DDB",
    "SEMANTIC_PLAN": "#4DD0E1",
    "SEMANTIC_ENCODER": "#AED581",
    "SEMANTICGEN_VAE": "#FF6E6E",
}


def draw(ui: dict, specs: dict, path: Path) -> None:
    """A canvas-like PNG of a UI workflow: nodes with their widgets, links as curves coloured by type."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(13)
    xs = [n["pos"][0] for n in ui["nodes"]] + [n["pos"][0] + n["size"][0] for n in ui["nodes"]]
    ys = [n["pos"][1] for n in ui["nodes"]] + [n["pos"][1] + n["size"][1] for n in ui["nodes"]]
    x0, y0, pad = min(xs) - 30, min(ys) - 60, 30
    img = Image.new("RGB", (int(max(xs) - x0 + pad), int(max(ys) - y0 + pad)), "#202020")
    d = ImageDraw.Draw(img)
    nodes = {n["id"]: n for n in ui["nodes"]}

    def slot_xy(n, i, output):
        x = n["pos"][0] - x0 + (n["size"][0] if output else 0)
        return x, n["pos"][1] - y0 + 14 + 22 * i

    for n in ui["nodes"]:
        x, y, w, h = n["pos"][0] - x0, n["pos"][1] - y0, *n["size"]
        note = n["type"] in NOTE_TYPES
        d.rounded_rectangle((x, y - 26, x + w, y + h), 8, fill="#3a3226" if note else "#353535", outline="#555")
        d.rounded_rectangle((x, y - 26, x + w, y), 8, fill="#5a4a2a" if note else "#2b4a5a")
        title = n.get("title") or specs.get(n["type"], {}).get("display_name") or n["type"]
        d.text((x + 10, y - 20), title, fill="white", font=font)
        if note:
            text = n["widgets_values"][0].replace("## ", "").replace("`", "")
            lines = [ln for para in text.split("\n") for ln in textwrap.wrap(para, w // 7) or [""]]
            for i, line in enumerate(lines[: (h - 10) // 18]):
                d.text((x + 10, y + 8 + 18 * i), line, fill="#ddd", font=font)
            continue
        for i, s in enumerate(n["inputs"]):
            d.ellipse((x - 5, y + 9 + 22 * i, x + 5, y + 19 + 22 * i), fill=LINK_COLORS.get(s["type"], "#aaa"))
            d.text((x + 10, y + 7 + 22 * i), s["name"], fill="#ccc", font=font)
        for i, s in enumerate(n["outputs"]):
            d.ellipse((x + w - 5, y + 9 + 22 * i, x + w + 5, y + 19 + 22 * i), fill=LINK_COLORS.get(s["type"], "#aaa"))
            d.text((x + w - 10, y + 7 + 22 * i), s["name"], fill="#ccc", font=font, anchor="ra")
        top = y + 14 + 22 * max(len(n["inputs"]), len(n["outputs"]))
        pos = 0
        for i, (name, cfg) in enumerate((nm, c) for nm, c in ordered_inputs(specs[n["type"]]) if is_widget(c)):
            value = str(n["widgets_values"][pos])
            pos += widget_slots(name, cfg)
            text = f"{name}: {value.splitlines()[0] if value else chr(34) * 2}"
            d.rounded_rectangle((x + 8, top + 26 * i, x + w - 8, top + 26 * i + 20), 6, fill="#222")
            d.text((x + 16, top + 26 * i + 3), text[: w // 7], fill="#ddd", font=font)
    for _, a, ai, b, bi, typ in ui["links"]:
        (sx, sy), (tx, ty) = slot_xy(nodes[a], ai, True), slot_xy(nodes[b], bi, False)
        pts = []
        for t in (k / 40 for k in range(41)):  # cubic Bezier leaving and entering horizontally, as litegraph draws
            px = (1 - t) ** 3 * sx + 3 * (1 - t) ** 2 * t * (sx + 80) + 3 * (1 - t) * t**2 * (tx - 80) + t**3 * tx
            pts.append((px, (1 - t) ** 2 * (1 + 2 * t) * sy + t**2 * (3 - 2 * t) * ty))
        d.line(pts, fill=LINK_COLORS.get(typ, "#aaa"), width=3)
    img.save(path)


def main() -> None:
    specs = load_specs()
    (ROOT / "docs").mkdir(exist_ok=True)
    for name, make in WORKFLOWS.items():
        ui = make(specs).save(ROOT / "workflows" / f"{name}.json")
        draw(ui, specs, ROOT / "docs" / f"workflow_{name}.png")
        print(f"wrote workflows/{name}.json and docs/workflow_{name}.png")


if __name__ == "__main__":
    main()
