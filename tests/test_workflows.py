"""The shipped workflows without ComfyUI: structure against ComfyUI's node definitions, conversion to the API format
the server executes, and the embedded-model workflows run end to end in a small executor that follows ComfyUI's rules.

Node definitions: ComfyUI core from tests/fixtures/object_info_core.json (ComfyUI 0.3.64's /object_info), ours from
INPUT_TYPES serialised as the server does. Conversion: tests/fixtures/ui_to_api.py.txt (a copy of the converter checked
against the real frontend). The Wan2.1 variants need downloads and are checked structurally only.
"""

import copy
import importlib.machinery
import importlib.util
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import torch
from test_nodes import MAPPINGS, PACK, ROOT, pack

from semanticgen_core.video_io import read_video, write_video

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
EMBEDDED = [p for p in WORKFLOWS if "(embedded model" in p.stem]
WAN = [p for p in WORKFLOWS if "(Wan2.1-T2V-1.3B" in p.stem]
EMBEDDED_NAMES = {p.stem for p in EMBEDDED}  # these must run with nothing downloaded: file combos hold listed values
NOTE_TYPES = {"Note", "MarkdownNote"}  # frontend-only nodes, dropped by the conversion
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
FILE_INPUTS = {"stage1", "stage2", "weights", "vae_name", "clip_name", "file"}  # combos listing files on disk
# CI overrides for every node with the input: 2 steps; the 60 s workflow runs 6 s (13 latent frames, still more than
# its window of 8, so the shifted windows are exercised; decoding 481 frames would dominate the run)
FAST = {"steps": lambda v: 2, "seconds": lambda v: min(v, 6.0)}
FAST.update({f"start_{i}": lambda v: v / 10 for i in range(2, 9)})  # prompt schedules: 60 s -> 6 s


def load_converter():
    loader = importlib.machinery.SourceFileLoader("ui_to_api", str(FIXTURES / "ui_to_api.py.txt"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("ui_to_api", loader))
    loader.exec_module(module)
    return module


def node_info(name: str, cls) -> dict:
    """What ComfyUI's /object_info serves for a classic node (server.py node_info), JSON round-tripped."""
    inputs = json.loads(json.dumps(cls.INPUT_TYPES()))
    return {
        "input": inputs,
        "input_order": {k: list(v) for k, v in inputs.items()},
        "output": list(cls.RETURN_TYPES),
        "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
        "output_node": getattr(cls, "OUTPUT_NODE", False),
        "name": name,
        "category": cls.CATEGORY,
    }


ui_to_api = load_converter()
CORE = json.loads((FIXTURES / "object_info_core.json").read_text())
OURS = {name: node_info(name, cls) for name, cls in MAPPINGS.items()}
OBJECT_INFO = {**CORE, **OURS}


def widget_inputs(spec: dict) -> list[tuple[str, list, int]]:
    """(name, cfg, widgets_values slots) of each widget input, in the frontend's order."""
    return [(n, cfg, k) for n, cfg, _ in ui_to_api._ordered_inputs(spec) if (k := ui_to_api._widget_slots(n, cfg))]


def download_name(value) -> bool:
    """A file (or Hugging Face folder) a user downloads into ComfyUI's models/ or input/ folders."""
    return isinstance(value, str) and (value.endswith((".safetensors", ".mp4")) or value.startswith("Qwen2.5-VL-"))


def check_value(where: str, name: str, cfg: list, value, file_ok) -> None:
    """A widget value fits its declared input: type, range, or one of the options."""
    typ, opts = cfg[0], cfg[1] if len(cfg) > 1 and isinstance(cfg[1], dict) else {}
    options = typ if isinstance(typ, list) else opts.get("options") if typ == "COMBO" else None
    if options is not None:
        if name in FILE_INPUTS and value not in options:
            assert file_ok(value), f"{where}: {name}={value!r} is not an expected file name"
        else:
            assert value in options, f"{where}: {name}={value!r} not in {options}"
        return
    kinds = {"INT": int, "FLOAT": (int, float), "STRING": str, "BOOLEAN": bool}
    assert isinstance(value, kinds[typ]) and not (typ != "BOOLEAN" and isinstance(value, bool)), f"{where}: {name}"
    if typ in ("INT", "FLOAT"):
        assert opts.get("min", -np.inf) <= value <= opts.get("max", np.inf), f"{where}: {name}={value} out of range"


# ----------------------------------------------------------------------------------------------------------------
# Structure
# ----------------------------------------------------------------------------------------------------------------


def test_the_expected_workflows_ship_with_thumbnails():
    names = {p.stem for p in WORKFLOWS}
    for kind in ("Text to video", "Reference video transfer", "One-minute video"):
        assert {
            f"{kind} (embedded model, no downloads)",
            f"{kind} (Wan2.1-T2V-1.3B, needs downloads and training)",
        } <= names
    for path in WORKFLOWS:  # the Templates dialog's card image: <name>.jpg beside <name>.json
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file() and thumb.read_bytes()[:3] == b"\xff\xd8\xff", f"{thumb.name} missing or not a JPEG"
    clip = ROOT / "workflows" / "assets" / "reference_shapes.mp4"  # listed first by Encode Reference Semantics
    assert read_video(clip).shape == (17, 64, 64, 3) and clip.stat().st_size < 50_000


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_nodes_links_and_widgets_fit_the_definitions(path):
    ui = json.loads(path.read_text())
    assert ui_to_api.is_ui_format(ui) and ui["last_node_id"] >= max(n["id"] for n in ui["nodes"])
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert len(nodes) == len(ui["nodes"])
    for n in ui["nodes"]:
        assert n["type"] in OBJECT_INFO or n["type"] in NOTE_TYPES, f"node {n['id']}: unknown type {n['type']}"
    links = {link[0]: link for link in ui["links"]}
    for link_id, src, src_slot, dst, dst_slot, typ in ui["links"]:
        a, b = nodes[src], nodes[dst]
        declared_out = OBJECT_INFO[a["type"]]["output"][src_slot]
        socket = b["inputs"][dst_slot]
        declared_in = dict((n, cfg) for n, cfg, _ in ui_to_api._ordered_inputs(OBJECT_INFO[b["type"]]))[socket["name"]]
        assert a["outputs"][src_slot]["type"] == declared_out == typ, f"link {link_id}: output type"
        assert socket["type"] == typ and declared_in[0] in (typ, "*"), f"link {link_id}: {typ} into {declared_in[0]}"
        assert socket["link"] == link_id and link_id in a["outputs"][src_slot]["links"], f"link {link_id}: not mirrored"
    for n in ui["nodes"]:
        if n["type"] in NOTE_TYPES:
            continue
        spec, where = OBJECT_INFO[n["type"]], f"{path.stem} node {n['id']} ({n['type']})"
        linked = {s["name"] for s in n["inputs"] if s["link"] is not None}
        assert all(s["link"] in links for s in n["inputs"] if s["link"] is not None), where
        required = spec["input"].get("required", {})
        sockets = [nm for nm, cfg in required.items() if not ui_to_api._widget_slots(nm, cfg)]
        assert set(sockets) <= linked, f"{where}: unlinked required input {set(sockets) - linked}"
        widgets, values = widget_inputs(spec), n["widgets_values"]
        assert len(values) == sum(k for *_, k in widgets), f"{where}: {values} vs widgets {[w[0] for w in widgets]}"
        pos, file_ok = 0, (lambda v: False) if path.stem in EMBEDDED_NAMES else download_name
        for name, cfg, k in widgets:
            check_value(where, name, cfg, values[pos], file_ok)
            if k == 2 and cfg[0] == "INT":  # seed: value, then "control after generate"
                assert values[pos + 1] in CONTROL_VALUES, f"{where}: {name} control {values[pos + 1]!r}"
            pos += k


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_converts_to_the_api_format(path):
    ui = json.loads(path.read_text())
    api, warnings = ui_to_api.convert(ui, OBJECT_INFO)
    assert warnings == []
    assert len(api) == len([n for n in ui["nodes"] if n["type"] not in NOTE_TYPES])
    for nid, node in api.items():
        required = OBJECT_INFO[node["class_type"]]["input"].get("required", {})
        missing = set(required) - set(node["inputs"])
        assert not missing, f"{path.stem} node {nid}: missing {missing}"
    outputs = [nid for nid, n in api.items() if OBJECT_INFO[n["class_type"]].get("output_node")]
    assert any(api[o]["class_type"] == "SaveVideo" for o in outputs)


def test_real_weight_variants_are_wired_for_the_downloaded_files():
    for path in WORKFLOWS:
        if path not in WAN:
            continue
        api, _ = ui_to_api.convert(json.loads(path.read_text()), OBJECT_INFO)
        by_type = {}
        for node in api.values():
            by_type.setdefault(node["class_type"], []).append(node["inputs"])
        assert by_type["CLIPLoader"] == [
            {"clip_name": "umt5_xxl_fp8_e4m3fn_scaled.safetensors", "type": "wan", "device": "default"}
        ]
        assert by_type["VAELoader"] == [{"vae_name": "wan_2.1_vae.safetensors"}]
        assert len(by_type["CLIPTextEncode"]) == 2 and "SemanticGenTextEncode" not in by_type
        loader = by_type["SemanticGenModelLoader"][0]
        assert loader["stage1"].startswith("semanticgen_wan2.1_t2v_1.3b") and loader["stage2"].endswith(".safetensors")
        assert by_type.get("LoadSemanticEncoder", [{"weights": "Qwen2.5-VL-7B-Instruct"}])[0]["weights"].startswith(
            "Qwen2.5-VL"
        )
        assert {"VAEDecode", "VAEDecodeTiled"} & set(by_type) and "SemanticGenDecode" not in by_type


# ----------------------------------------------------------------------------------------------------------------
# What the frontend checks on load (ComfyUI_frontend workflowSchema.ts, zod, schema 0.4; linkFixer.ts)
# ----------------------------------------------------------------------------------------------------------------

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)  # uuid4
NODE_FLAGS = {"collapsed", "pinned", "allow_interaction", "horizontal", "skip_repeated_outputs"}


def is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_node_id(v) -> bool:  # zNodeId: integer or string
    return (is_num(v) and float(v).is_integer()) or isinstance(v, str)


def is_vec2(v) -> bool:  # zVector2: [x, y] (or {0: x, 1: y})
    if isinstance(v, dict):
        return is_num(v.get("0")) and is_num(v.get("1"))
    return isinstance(v, list) and len(v) == 2 and all(map(is_num, v))


def is_data_type(v) -> bool:  # zDataType: string, list of strings, or number
    return isinstance(v, str) or is_num(v) or (isinstance(v, list) and all(isinstance(x, str) for x in v))


def model_file_errors(m, where: str) -> list[str]:  # zModelFile: name, url (a URL), directory; hash optional
    errs = [f"{where}: {k} must be a string" for k in ("name", "url", "directory") if not isinstance(m.get(k), str)]
    if isinstance(m.get("url"), str) and not (urlparse(m["url"]).scheme and urlparse(m["url"]).netloc):
        errs.append(f"{where}: url {m['url']!r} is not a URL")
    return errs


def frontend_schema_errors(ui: dict) -> list[str]:
    """What ComfyUI_frontend's zod schema (zComfyWorkflow, version 0.4) and its link fixer report for a workflow; an
    empty list means it loads without the 'Invalid workflow against zod schema' toast and without link repairs."""
    errs = []
    if not is_num(ui.get("version")):
        return ["version: missing or not a number"]
    if "id" in ui and not (isinstance(ui["id"], str) and UUID.match(ui["id"])):
        errs.append(f"id: Invalid uuid {ui['id']!r}")
    if "revision" in ui and not is_num(ui["revision"]):
        errs.append("revision: not a number")
    if not is_node_id(ui.get("last_node_id")) or not is_num(ui.get("last_link_id")):
        errs.append("last_node_id / last_link_id")
    for key in ("config", "extra"):
        if ui.get(key) is not None and not isinstance(ui[key], dict):
            errs.append(f"{key}: not an object")
    ds = (ui.get("extra") or {}).get("ds")
    if ds is not None and not (is_num(ds.get("scale")) and is_vec2(ds.get("offset"))):
        errs.append("extra.ds: scale / offset")
    for m in ui.get("models", []):
        errs += model_file_errors(m, "models")
    for g in ui.get("groups", []):
        if not isinstance(g.get("title"), str) or not (
            len(g.get("bounding", [])) == 4 and all(map(is_num, g["bounding"]))
        ):
            errs.append(f"group {g}: title / bounding")
    nodes = ui.get("nodes")
    if not isinstance(nodes, list):
        return [*errs, "nodes: not an array"]
    for n in nodes:
        where = f"node {n.get('id')}"
        if not is_node_id(n.get("id")) or not isinstance(n.get("type"), str):
            errs.append(f"{where}: id / type")
        for key in ("pos", "size"):
            if not is_vec2(n.get(key)):
                errs.append(f"{where}: {key}")
        flags = n.get("flags")
        if not isinstance(flags, dict) or any(not isinstance(flags[k], bool) for k in NODE_FLAGS & set(flags)):
            errs.append(f"{where}: flags")
        if not is_num(n.get("order")) or not is_num(n.get("mode")):
            errs.append(f"{where}: order / mode")
        for s in n.get("inputs", []):
            if not isinstance(s.get("name"), str) or not is_data_type(s.get("type")):
                errs.append(f"{where}: input {s}")
            if s.get("link") is not None and not is_num(s["link"]):
                errs.append(f"{where}: input {s['name']} link")
        for s in n.get("outputs", []):
            if not isinstance(s.get("name"), str) or not is_data_type(s.get("type")):
                errs.append(f"{where}: output {s}")
            if s.get("links") is not None and not (isinstance(s["links"], list) and all(map(is_num, s["links"]))):
                errs.append(f"{where}: output {s['name']} links")
        props = n.get("properties")
        if not isinstance(props, dict):
            errs.append(f"{where}: properties")
        else:
            if "Node name for S&R" in props and not isinstance(props["Node name for S&R"], str):
                errs.append(f"{where}: Node name for S&R")
            for m in props.get("models", []):
                errs += model_file_errors(m, f"{where} properties.models")
        if "widgets_values" in n and not isinstance(n["widgets_values"], (list, dict)):
            errs.append(f"{where}: widgets_values")
        for key in ("color", "bgcolor"):
            if key in n and not isinstance(n[key], str):
                errs.append(f"{where}: {key}")
    by_id = {n.get("id"): n for n in nodes}
    links = ui.get("links")
    if not isinstance(links, list):
        return [*errs, "links: not an array"]
    for link in links:  # zComfyLink, then linkFixer: both ends exist and mirror the link
        if not (isinstance(link, list) and len(link) == 6):
            errs.append(f"link {link}: not a 6-tuple")
            continue
        lid, a, a_slot, b, b_slot, typ = link
        if not (is_num(lid) and is_node_id(a) and is_node_id(b) and is_num(a_slot) and is_num(b_slot)):
            errs.append(f"link {link}: ids / slots")
            continue
        if not is_data_type(typ):
            errs.append(f"link {lid}: type")
        src, dst = by_id.get(a), by_id.get(b)
        if src is None or dst is None:
            errs.append(f"link {lid}: origin {a} or target {b} does not exist")
            continue
        outs, ins = src.get("outputs", []), dst.get("inputs", [])
        if a_slot >= len(outs) or lid not in (outs[a_slot].get("links") or []):
            errs.append(f"link {lid}: origin({a}).outputs[{a_slot}].links does not contain it")
        if b_slot >= len(ins) or ins[b_slot].get("link") != lid:
            errs.append(f"link {lid}: target({b}).inputs[{b_slot}].link is not it")
    ids = [link[0] for link in links if isinstance(link, list) and link]
    if len(set(ids)) != len(ids):
        errs.append("links: duplicate ids")
    for n in nodes:  # a node slot naming a link that does not exist is patched away by the fixer
        named = [s.get("link") for s in n.get("inputs", [])] + [
            x for s in n.get("outputs", []) for x in s.get("links") or []
        ]
        errs += [
            f"node {n.get('id')}: names link {x}, which does not exist" for x in named if x is not None and x not in ids
        ]
    return errs


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_passes_the_frontends_schema_and_link_checks(path):
    assert frontend_schema_errors(json.loads(path.read_text())) == []


def test_the_schema_check_catches_what_the_frontend_refuses():
    ui = json.loads(WORKFLOWS[0].read_text())
    assert frontend_schema_errors(ui) == []

    def broken(change):
        bad = copy.deepcopy(ui)
        change(bad)
        return frontend_schema_errors(bad)

    assert broken(lambda u: u.update(id="semanticgen-t2v")) == ["id: Invalid uuid 'semanticgen-t2v'"]
    assert broken(lambda u: u.pop("version")) == ["version: missing or not a number"]
    assert any(
        "does not contain it" in e
        for e in broken(
            lambda u: u["nodes"][-1]["inputs"][0].update(link=None) or u["nodes"][-2]["outputs"][0]["links"].clear()
        )
    )
    assert broken(lambda u: u["nodes"][1].pop("flags")) == [f"node {ui['nodes'][1]['id']}: flags"]
    assert any(
        "not a URL" in e
        for e in broken(
            lambda u: u["nodes"][1]["properties"].update(
                models=[{"name": "a.safetensors", "url": "a.safetensors", "directory": "vae"}]
            )
        )
    )


def test_workflow_ids_are_distinct_uuid4s_that_do_not_change():
    build = load_build()
    ids = {p.stem: json.loads(p.read_text())["id"] for p in WORKFLOWS}
    assert len(set(ids.values())) == len(ids) and all(UUID.match(i) for i in ids.values())
    assert {wf.name: build.fixed_uuid4(wf.slug) for wf in build.WORKFLOWS} == ids  # from the slug: no churn


def load_build():
    spec = importlib.util.spec_from_file_location("workflows_build", ROOT / "workflows" / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["workflows_build"] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


# After a run the frontend (1.27.10, measured with headless Chromium) grows these nodes below their widgets: samplers
# by their 256 px step preview (+158), Preview Image by its images (+178 for 5 plan frames), Save Video by the
# player (+292), Load Video by the clip. build.py leaves GROWS px under them.
GROWTH = {"GenerateSemanticPlan": 200, "SemanticToLatent": 200, "SwinLongVideoSampler": 200, "PreviewImage": 300,
          "SaveVideo": 300, "LoadVideo": 300}  # fmt: skip
TITLE_H, VIEW = 30, (1560, 820)  # title bar above pos; the canvas area a 1080p browser window leaves


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_layout_fits_the_screen_at_load_and_nothing_overlaps_after_a_run(path):
    ui = json.loads(path.read_text())
    boxes = {}
    for n in ui["nodes"]:
        (x, y), (w, h) = n["pos"], n["size"]
        boxes[n["id"]] = (x, y - TITLE_H, x + w, y + h + GROWTH.get(n["type"], 0))
    items = sorted(boxes.items())
    for i, (a, p) in enumerate(items):
        for b, q in items[i + 1 :]:
            assert not (p[0] < q[2] and q[0] < p[2] and p[1] < q[3] and q[1] < p[3]), f"nodes {a} and {b} overlap"
    ds = ui["extra"]["ds"]  # screen = (graph + offset) * scale
    for n in ui["nodes"]:
        (x, y), (w, h) = n["pos"], n["size"]
        left, top = (x + ds["offset"][0]) * ds["scale"], (y - TITLE_H + ds["offset"][1]) * ds["scale"]
        right, bottom = (x + w + ds["offset"][0]) * ds["scale"], (y + h + ds["offset"][1]) * ds["scale"]
        assert 0 <= left and right <= VIEW[0] and 0 <= top and bottom <= VIEW[1], f"node {n['id']} off screen at load"
    assert ds["scale"] >= 0.6  # still readable


def test_wan_variants_guide_the_user():
    loaders = sys.modules[f"{PACK}.nodes.loaders"]
    sampling = sys.modules[f"{PACK}.nodes.sampling"]
    for path in WAN:
        ui = json.loads(path.read_text())
        nodes = {n["id"]: n for n in ui["nodes"]}
        for n in ui["nodes"]:
            if n["type"] in ("CLIPLoader", "VAELoader"):  # ComfyUI's missing-models dialog offers these downloads
                name = n["widgets_values"][0]
                directory, url = loaders.DOWNLOADS[name]
                assert n["properties"]["models"] == [{"name": name, "url": url, "directory": directory}]
                assert url.startswith("https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/")
                assert url.endswith(f"/{directory}/{name}")
        (note,) = [n["widgets_values"][0] for n in ui["nodes"] if n["type"] == "MarkdownNote"]
        for text in ("semanticgen_wan2.1_t2v_1.3b_stage1", "_stage2", "train/stage1.py", "train/stage2.py",
                     "not published", "text_encoders/umt5", "vae/wan_2.1_vae"):  # fmt: skip
            assert text.lower() in note.lower(), text
        for ref in (n for n in ui["nodes"] if n["type"] == "EncodeReferenceSemantics"):
            video = next(s for s in ref["inputs"] if s["name"] == "video")
            link = next(link for link in ui["links"] if link[0] == video["link"])
            assert nodes[link[1]]["type"] == "LoadVideo" and nodes[link[1]]["widgets_values"][0] == "reference.mp4"
            assert ref["widgets_values"][0] == sampling.FROM_INPUT  # the file widget defers to Load Video
            assert "reference.mp4" in note


# ----------------------------------------------------------------------------------------------------------------
# Running the embedded workflows
# ----------------------------------------------------------------------------------------------------------------


class VideoStandIn:
    """What ComfyUI's CreateVideo returns (VideoFromComponents), reduced to its parts."""

    def __init__(self, images, fps):
        self.images, self.fps = images, fps


def core_stand_ins(out_dir: Path, record: dict) -> dict:
    """Minimal CreateVideo / SaveVideo / PreviewImage that check the types they receive (and write the file)."""

    def is_image(x):
        return (
            torch.is_tensor(x)
            and x.ndim == 4
            and x.shape[-1] == 3
            and x.dtype == torch.float32
            and 0 <= x.min() <= x.max() <= 1
        )

    class CreateVideo:
        FUNCTION = "create"

        def create(self, images, fps, audio=None):
            assert is_image(images) and isinstance(fps, float)
            return (VideoStandIn(images, fps),)

    class SaveVideo:
        FUNCTION = "save"

        def save(self, video, filename_prefix, format, codec):
            assert isinstance(video, VideoStandIn) and format in ("auto", "mp4") and codec in ("auto", "h264")
            path = out_dir / f"{filename_prefix.replace('/', '_')}_00001_.mp4"
            write_video(path, (video.images * 255).round().to(torch.uint8).numpy(), fps=video.fps)
            record.setdefault("videos", []).append(path)
            return {"ui": {"images": [{"filename": path.name, "type": "output"}]}}

    class PreviewImage:
        FUNCTION = "preview"

        def preview(self, images):
            assert is_image(images)
            record.setdefault("previews", []).append(tuple(images.shape))
            return {"ui": {"images": []}}

    for cls in (CreateVideo, SaveVideo, PreviewImage):
        cls.INPUT_TYPES = classmethod(lambda c, name=cls.__name__: CORE[name]["input"])
    return {"CreateVideo": CreateVideo, "SaveVideo": SaveVideo, "PreviewImage": PreviewImage}


def validate(node_id: str, cls, inputs: dict) -> None:
    """ComfyUI's validate_inputs for widget values: required present, numbers in range, combo values listed."""
    spec = json.loads(json.dumps(cls.INPUT_TYPES()))
    for section in ("required", "optional"):
        for name, cfg in (spec.get(section) or {}).items():
            if name not in inputs:
                assert section == "optional", f"node {node_id}: required input {name!r} missing"
                continue
            value = inputs[name]
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                continue  # a link
            if isinstance(cfg[0], list) or cfg[0] in WIDGET_TYPES:
                check_value(f"node {node_id}", name, cfg, value, lambda v: False)


def execute(prompt: dict, classes: dict) -> dict:
    """Run an API prompt: only nodes that lead to an output node, in topological order, links as [id, index]."""
    needed, stack = set(), [nid for nid, n in prompt.items() if OBJECT_INFO[n["class_type"]].get("output_node")]
    while stack:
        nid = stack.pop()
        if nid not in needed:
            needed.add(nid)
            stack += [v[0] for v in prompt[nid]["inputs"].values() if isinstance(v, list)]
    outputs, done = {}, []
    while len(done) < len(needed):
        ready = [
            n
            for n in sorted(needed - set(done))
            if all(v[0] in outputs for v in prompt[n]["inputs"].values() if isinstance(v, list))
        ]
        assert ready, "the graph has a cycle"
        nid = ready[0]
        cls = classes[prompt[nid]["class_type"]]
        validate(nid, cls, prompt[nid]["inputs"])
        kwargs = {k: outputs[v[0]][v[1]] if isinstance(v, list) else v for k, v in prompt[nid]["inputs"].items()}
        result = getattr(cls(), cls.FUNCTION)(**kwargs)
        outputs[nid] = result.get("result", ()) if isinstance(result, dict) else result
        done.append(nid)
    return outputs


@pytest.mark.parametrize("path", EMBEDDED, ids=lambda p: p.stem)
def test_embedded_workflow_runs_end_to_end(path, tmp_path):
    api, _ = ui_to_api.convert(json.loads(path.read_text()), OBJECT_INFO)
    for node in api.values():
        node["inputs"].update({k: fast(node["inputs"][k]) for k, fast in FAST.items() if k in node["inputs"]})
    record: dict = {}
    t0 = time.time()
    outputs = execute(api, {**pack.NODE_CLASS_MAPPINGS, **core_stand_ins(tmp_path, record)})
    seconds = time.time() - t0
    (video,) = record["videos"]
    frames = read_video(video)
    plans = [
        o[0]
        for nid, o in outputs.items()
        if api[nid]["class_type"] in ("GenerateSemanticPlan", "EncodeReferenceSemantics")
    ]
    length = plans[0]["seconds"]
    expected = 4 * round((length * 8 - 1) / 4) + 1  # 8 fps, 4k + 1 frames
    assert frames.shape == (expected, 64, 64, 3), f"{path.stem}: {frames.shape}"
    assert record["previews"] == [(plans[0]["plan"].shape[2], 64, 64, 3)]  # one plan preview per semantic frame
    assert frames.std() > 1.0  # not a blank video
    windowed = [n for n in api.values() if n["class_type"] == "SwinLongVideoSampler"]
    assert all((expected - 1) // 4 + 1 > n["inputs"]["window"] for n in windowed)  # more latent frames than the window
    print(f"{path.stem}: {expected} frames in {seconds:.1f} s")
