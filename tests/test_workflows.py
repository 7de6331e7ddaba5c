"""The shipped workflows without ComfyUI: structure against ComfyUI's node definitions, conversion to the API format
the server executes, and the embedded-model workflows run end to end in a small executor that follows ComfyUI's rules.

Node definitions: ComfyUI core from tests/fixtures/object_info_core.json (ComfyUI 0.3.64's /object_info), ours from
INPUT_TYPES serialised as the server does. Conversion: tests/fixtures/ui_to_api.py.txt (a copy of the converter checked
against the real frontend). The Wan2.1 variants need downloads and are checked structurally only.
"""

import importlib.machinery
import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_nodes import MAPPINGS, ROOT, pack

from semanticgen_core.video_io import read_video, write_video

FIXTURES = Path(__file__).resolve().parent / "fixtures"
WORKFLOWS = sorted((ROOT / "workflows").glob("*.json"))
EMBEDDED = [p for p in WORKFLOWS if p.stem.endswith("_embedded")]
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


def test_the_expected_workflows_ship():
    names = {p.stem for p in WORKFLOWS}
    for kind in ("t2v", "reference_transfer", "long_video"):
        assert {f"semanticgen_{kind}_embedded", f"semanticgen_{kind}_wan2.1_1.3b"} <= names
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
        if not path.stem.endswith("_wan2.1_1.3b"):
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
