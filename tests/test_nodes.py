"""The ComfyUI node pack without ComfyUI: schemas, conversion helpers, and every node end to end on tiny components.

The pack is imported the way ComfyUI imports it (the repository root as a package), so its relative imports of
semanticgen_core are exercised. Components are tiny random models written to disk with the project's own exporters.
"""

import importlib.util
import inspect
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VAE, TinyTextEncoder, randomize

from semanticgen_core import DIT_CONFIGS, SemanticCompressor, SemanticGenDiT
from semanticgen_core.config import DiTConfig, SemanticSpec, VideoSpec
from semanticgen_core.encoders import Qwen25VLEncoder
from semanticgen_core.models import save_stage1, save_stage2
from semanticgen_core.preview import features_to_rgb
from semanticgen_core.vae import WanVAE
from semanticgen_core.video_io import resample_indices

ROOT = Path(__file__).resolve().parents[1]
PACK = "semanticgen_pack"
VISION = dict(
    depth=1,
    hidden_size=32,
    num_heads=2,
    out_hidden_size=16,
    intermediate_size=64,
    patch_size=8,
    spatial_merge_size=2,
    temporal_patch_size=2,
    fullatt_block_indexes=[0],
    window_size=32,
)
PIXELS = dict(min_pixels=16 * 16, max_pixels=64 * 64)
SPEC = SemanticSpec(kind="qwen2_5_vl", dim=16, compressed_dim=8, fps=4.0, temporal_patch=2, spatial_patch=16, **PIXELS)
VIDEO = VideoSpec(fps=8, z_dim=16)
SAMPLER = dict(steps=2, cfg=2.0, shift=2.0)


def load_pack():
    """Import the repository root as a package, as ComfyUI's load_custom_node does (no ComfyUI installed)."""
    if PACK not in sys.modules:
        spec = importlib.util.spec_from_file_location(PACK, ROOT / "__init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACK] = module
        spec.loader.exec_module(module)
    return sys.modules[PACK]


pack = load_pack()
nodes = sys.modules[f"{PACK}.nodes"]
convert = sys.modules[f"{PACK}.nodes.convert"]
cc = sys.modules[f"{PACK}.nodes.comfy_compat"]
CheckpointError = sys.modules[f"{PACK}.semanticgen_core.checkpoint"].CheckpointError  # the pack's own copy of core
MAPPINGS = pack.NODE_CLASS_MAPPINGS


def cond(ctx):
    """CONDITIONING as ComfyUI's CLIPTextEncode makes it."""
    return [[ctx, {"pooled_output": None}]]


def save_model(folder: Path, k: int = 8, seed: int = 0) -> tuple[Path, Path]:
    """Tiny stage-1 bundle and stage-2 semantic generator with plans of dim k."""
    torch.manual_seed(seed)
    lat_cfg = DiTConfig.from_dict({**DIT_CONFIGS["tiny"].to_dict(), "sem_channels": k})
    sem_cfg = DiTConfig.from_dict({**DIT_CONFIGS["tiny-sem"].to_dict(), "in_channels": k, "out_channels": k})
    lat, sem = randomize(SemanticGenDiT(lat_cfg), 0.1, seed), randomize(SemanticGenDiT(sem_cfg), 0.1, seed + 1)
    comp = SemanticCompressor(SPEC.dim, k)
    spec = SemanticSpec(**{**SPEC.to_dict(), "compressed_dim": k})
    state = {
        **{f"lat_generator.{n}": v for n, v in lat.state_dict().items()},
        **{f"compressor.{n}": v for n, v in comp.state_dict().items()},
    }
    s1, s2 = folder / f"stage1_k{k}.safetensors", folder / f"stage2_k{k}.safetensors"
    save_stage1(s1, state, lat_cfg, comp.config, spec, VIDEO)
    save_stage2(s2, {f"sem_generator.{n}": v for n, v in sem.state_dict().items()}, sem_cfg, spec)
    return s1, s2


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    """Paths of tiny exports, a tiny VAE and a tiny Qwen2.5-VL-architecture encoder, and text conditionings."""
    d = tmp_path_factory.mktemp("parts")
    s1, s2 = save_model(d, 8)
    s1_k4, s2_k4 = save_model(d, 4, seed=5)
    torch.manual_seed(0)
    WanVAE.from_config(TINY_VAE).save(d / "vae.safetensors")
    Qwen25VLEncoder.from_config(VISION, fps=4.0, **PIXELS).save(d / "encoder.safetensors")
    text = TinyTextEncoder()
    pos, neg = (cond(text.encode([p])[0]) for p in ("a red circle moves right", ""))
    return dict(
        s1=s1,
        s2=s2,
        s1_k4=s1_k4,
        s2_k4=s2_k4,
        vae=d / "vae.safetensors",
        enc=d / "encoder.safetensors",
        pos=pos,
        neg=neg,
    )


@pytest.fixture(scope="module")
def model(parts):
    return MAPPINGS["SemanticGenModelLoader"]().load(str(parts["s1"]), str(parts["s2"]), "float32")[0]


@pytest.fixture(scope="module")
def plan(model, parts):
    return MAPPINGS["GenerateSemanticPlan"]().generate(
        model, parts["pos"], parts["neg"], 1.0, 32, 32, **SAMPLER, seed=0
    )[0]


# ----------------------------------------------------------------------------------------------------------------
# Schemas
# ----------------------------------------------------------------------------------------------------------------


def test_pack_imports_without_comfyui():
    assert "comfy" not in sys.modules and "folder_paths" not in sys.modules and not cc.IN_COMFY
    assert set(MAPPINGS) == set(pack.NODE_DISPLAY_NAME_MAPPINGS) and len(MAPPINGS) == 22
    assert cc.torch_device().type in ("cpu", "cuda") and cc.model_files() == [] and cc.input_videos() == []


def test_import_looks_up_no_device_and_changes_no_globals(monkeypatch):
    def looked_up(*args, **kwargs):
        raise AssertionError("a device was looked up at import time")

    monkeypatch.setattr(torch.cuda, "is_available", looked_up)
    monkeypatch.setattr(torch.cuda, "device_count", looked_up)

    def state():
        return torch.get_default_dtype(), torch.get_default_device(), torch.backends.cudnn.benchmark, sys.path[:]

    before = state()
    name = "semanticgen_pack_reimported"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    assert set(module.NODE_CLASS_MAPPINGS) == set(MAPPINGS)
    assert state() == before
    for key in [k for k in sys.modules if k.startswith(name + ".")]:
        del sys.modules[key]


@pytest.mark.parametrize("name", sorted(MAPPINGS))
def test_schema_matches_the_function_and_has_tooltips(name):
    cls = MAPPINGS[name]
    spec = cls.INPUT_TYPES()
    assert set(spec) <= {"required", "optional", "hidden"} and spec["required"]
    assert cls.CATEGORY == "SemanticGen" and cls.DESCRIPTION and cls.__doc__
    required, optional = spec["required"], spec.get("optional", {})
    for inp, cfg in {**required, **optional}.items():
        assert isinstance(cfg, tuple) and len(cfg) == 2, inp
        assert isinstance(cfg[0], (str, list)) and cfg[1].get("tooltip"), f"{name}.{inp} has no tooltip"
        if cfg[0] in ("INT", "FLOAT"):
            assert cfg[1]["min"] <= cfg[1]["default"] <= cfg[1]["max"], inp
    assert isinstance(cls.RETURN_TYPES, tuple) and all(isinstance(t, str) for t in cls.RETURN_TYPES)
    for attr in ("RETURN_NAMES", "OUTPUT_TOOLTIPS"):
        assert len(getattr(cls, attr, cls.RETURN_TYPES)) == len(cls.RETURN_TYPES), attr
    params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
    names = [p for p in params if p != "self"]
    assert set(required) | set(optional) == set(names), f"{name}: schema {sorted(required)} vs signature {names}"
    for p in names:  # optional inputs need defaults; required ones must not hide behind one
        has_default = params[p].default is not inspect.Parameter.empty
        assert has_default == (p in optional), f"{name}.{p}"
    seeds = [n for n, c in required.items() if c[0] == "INT" and n == "seed"]
    assert all(required[s][1]["control_after_generate"] for s in seeds)


def test_custom_types_are_produced_and_consumed():
    produced = {t for cls in MAPPINGS.values() for t in cls.RETURN_TYPES}
    specs = [c for cls in MAPPINGS.values() for sec in cls.INPUT_TYPES().values() for c in sec.values()]
    consumed = {c[0] for c in specs if isinstance(c[0], str)}
    ours = {"SEMANTICGEN_MODEL", "SEMANTIC_PLAN", "SEMANTIC_ENCODER", "SEMANTICGEN_VAE"}
    assert ours <= produced and ours <= consumed
    assert {"LATENT", "IMAGE", "CONDITIONING"} <= produced  # ComfyUI's own types, for native interop
    embedded_first = {
        "SemanticGenModelLoader": "stage1",
        "LoadSemanticEncoder": "weights",
        "SemanticGenVAELoader": "vae_name",
    }
    for node, inp in embedded_first.items():
        assert MAPPINGS[node].INPUT_TYPES()["required"][inp][0][0].startswith("embedded")
    files = MAPPINGS["EncodeReferenceSemantics"].INPUT_TYPES()["required"]["file"][0]
    assert files[0] == "reference_shapes.mp4"


# ----------------------------------------------------------------------------------------------------------------
# Conversion helpers
# ----------------------------------------------------------------------------------------------------------------


def test_image_frames_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 12, 3), dtype=np.uint8)
    image = convert.frames_to_image(frames)
    assert image.shape == (5, 8, 12, 3) and image.dtype == torch.float32 and 0 <= image.min() <= image.max() <= 1
    assert np.array_equal(convert.image_to_frames(image), frames)
    rgba = torch.cat([image, torch.ones(5, 8, 12, 1)], dim=-1)
    assert np.array_equal(convert.image_to_frames(rgba), frames)
    video = torch.linspace(-1, 1, 2 * 3 * 4 * 2 * 2).reshape(2, 3, 4, 2, 2)  # [B, 3, F, H, W]
    out = convert.video_to_image(video)
    assert out.shape == (8, 2, 2, 3) and out.min() == 0 and out.max() == 1
    assert torch.allclose(out[5], (video[1, :, 1].permute(1, 2, 0) + 1) / 2)  # batch-major, as VAEDecode flattens


def test_latent_raw_normalised_round_trip_matches_the_vae():
    vae = WanVAE.from_config(TINY_VAE)
    mean, std = vae.latents_mean.flatten(), vae.latents_std.flatten()
    z = torch.randn(2, 16, 3, 4, 4)
    raw = convert.denormalize_latents(z, mean, std)
    assert torch.allclose(raw, vae.denormalize(z)) and torch.allclose(
        convert.normalize_latents(raw, mean, std), z, atol=1e-5
    )
    assert convert.wrap_latent(raw)["samples"].shape == (2, 16, 3, 4, 4)


def test_conditioning_parsing():
    ctx = torch.randn(1, 6, 24)
    assert torch.equal(convert.parse_conditioning(cond(ctx), 24, "m"), ctx)
    mask = torch.tensor([[True, True, False, False, False, False]])
    out = convert.parse_conditioning(convert.make_conditioning(ctx, mask), 24, "m")
    assert torch.equal(out[:, :2], ctx[:, :2]) and out[:, 2:].abs().sum() == 0
    with pytest.raises(ValueError, match=r"dim 4096.*model m takes text features of dim 24"):
        convert.parse_conditioning(cond(torch.randn(1, 6, 4096)), 24, "m")
    with pytest.raises(ValueError, match="Concat"):
        convert.parse_conditioning(cond(ctx) + cond(ctx), 24, "m")


def test_features_to_rgb_pca():
    x = torch.zeros(1, 8, 2, 3, 5)
    x[:, 0] = torch.linspace(-1, 1, 5)  # one direction of variation: left to right
    rgb = features_to_rgb(x)
    assert rgb.shape == (1, 2, 3, 5, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert (rgb[0, 0, 0, 1:, 0] > rgb[0, 0, 0, :-1, 0]).all()  # first component follows it, sign fixed
    assert torch.allclose(rgb[..., 1:], torch.tensor(0.5))  # no variance left for green and blue
    assert torch.allclose(features_to_rgb(torch.ones(1, 8, 1, 2, 2)), torch.tensor(0.5))
    y = torch.randn(1, 8, 2, 4, 4)
    assert torch.equal(features_to_rgb(y), features_to_rgb(y.clone()))
    assert convert.preview_image(y).size == (256, 256)


def test_resample_indices():
    assert resample_indices(17, 8, 4).tolist() == list(range(0, 17, 2))
    assert resample_indices(10, 4, 4).tolist() == list(range(10))
    assert resample_indices(33, 16, 4).tolist() == [0, 4, 8, 12, 16, 20, 24, 28, 32]


# ----------------------------------------------------------------------------------------------------------------
# Nodes end to end
# ----------------------------------------------------------------------------------------------------------------


def test_text_to_video_nodes_match_the_core_pipeline(model, plan, parts):
    assert plan["plan"].shape == (1, 8, 3, 2, 2) and plan["seconds"] == 1.0 and plan["source"] == "generated"
    preview = MAPPINGS["PreviewSemanticPlan"]().preview(plan)[0]
    assert preview.shape == (3, 32, 32, 3) and 0 <= preview.min() <= preview.max() <= 1
    latent = MAPPINGS["SemanticToLatent"]().sample(model, plan, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=1)[0]
    raw = latent["samples"]
    assert raw.shape == (1, 16, 3, 4, 4) and raw.device.type == "cpu"
    # the node is glue: its LATENT is the pipeline's stage B, denormalised with Wan2.1's statistics
    from semanticgen_core.config import SamplerConfig

    pipe, ctx, unc = model.pipeline, parts["pos"][0][0], parts["neg"][0][0]
    z = pipe.generate_latents(
        plan["plan"], ctx, unc, (16, 3, 4, 4), SamplerConfig(**SAMPLER), 0.1, None, torch.Generator().manual_seed(1)
    )
    vae = MAPPINGS["SemanticGenVAELoader"]().load(str(parts["vae"]), "float32")[0]
    assert torch.allclose(raw, vae.denormalize(z), atol=1e-5)
    image = MAPPINGS["SemanticGenDecode"]().decode(latent, vae, 2)[0]
    assert image.shape == (9, 32, 32, 3) and 0 <= image.min() <= image.max() <= 1  # 1 s at 8 fps: 4k+1 = 9 frames
    whole = convert.video_to_image(vae.decode(z))
    assert torch.allclose(image, whole, atol=1e-4)  # chunked decode = whole decode


def test_a_composed_conditioning_guides_the_latent_sampler_with_its_parts(model, plan, parts):
    text = TinyTextEncoder()
    square = cond(text.encode(["a blue square"])[0])
    composed = convert.composed_conditioning(parts["pos"], [(square, 0.5)])
    assert len(composed) == 2 and composed[1][1][convert.PART_WEIGHT] == 0.5
    ctx, starts = convert.parse_prompt_conditioning(composed, 24, "m")  # stage A (and the main text): the first entry
    assert torch.equal(ctx, parts["pos"][0][0]) and starts is None
    part_ctx, weights = convert.parse_parts(composed, 24, "m")
    assert torch.equal(part_ctx[:, 0], square[0][0]) and weights.tolist() == [[0.5]]
    assert convert.parse_parts(parts["pos"], 24, "m") is None
    node = MAPPINGS["SemanticToLatent"]()
    plain = node.sample(model, plan, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=1)[0]["samples"]
    with_part = node.sample(model, plan, composed, parts["neg"], 0.1, **SAMPLER, seed=1)[0]["samples"]
    zero = convert.composed_conditioning(parts["pos"], [(square, 0.0)])
    at_zero = node.sample(model, plan, zero, parts["neg"], 0.1, **SAMPLER, seed=1)[0]["samples"]
    assert torch.allclose(plain, at_zero, atol=1e-5) and not torch.allclose(plain, with_part, atol=1e-3)
    encoded = MAPPINGS["SemanticGenTextEncode"]().encode("a red triangle AND a triangle :0.5")[0]  # embedded MiniLM
    plain_text = MAPPINGS["SemanticGenTextEncode"]().encode("a red triangle")[0]
    assert len(encoded) == 2 and encoded[1][1][convert.PART_WEIGHT] == 0.5 and len(plain_text) == 1
    assert torch.equal(encoded[0][0], plain_text[0][0])  # the prompt itself, encoded without its parts


def test_swin_sampler_windows_long_plans(model, parts):
    long = MAPPINGS["GenerateSemanticPlan"]().generate(
        model, parts["pos"], parts["neg"], 3.0, 32, 32, **SAMPLER, seed=0
    )[0]
    args = (model, long, parts["pos"], parts["neg"], 0.0, 2, 2.0, 2.0, 3)
    full = MAPPINGS["SemanticToLatent"]().sample(*args)[0]["samples"]
    wide = MAPPINGS["SwinLongVideoSampler"]().sample(*args, window=8)[0]["samples"]
    small = MAPPINGS["SwinLongVideoSampler"]().sample(*args, window=2)[0]["samples"]
    assert full.shape == small.shape == (1, 16, 7, 4, 4)
    assert torch.allclose(full, wide, atol=1e-5) and not torch.allclose(full, small)  # window >= length: full


def test_progress_previews_and_interruption(model, parts, monkeypatch):
    updates = []

    class Bar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            updates.append((value, total, preview))

    monkeypatch.setattr(cc, "progress_bar", Bar)
    MAPPINGS["GenerateSemanticPlan"]().generate(model, parts["pos"], parts["neg"], 1.0, 32, 32, 3, 2.0, 2.0, 0)
    assert [(v, t) for v, t, _ in updates] == [(1, 3), (2, 3), (3, 3)]
    assert all(p[0] == "JPEG" and p[1].size[0] >= 64 for _, _, p in updates)

    class Interrupted(Exception):
        pass

    calls = []

    def interrupt():
        calls.append(1)
        if len(calls) == 2:
            raise Interrupted

    monkeypatch.setattr(cc, "throw_if_interrupted", interrupt)
    with pytest.raises(Interrupted):
        MAPPINGS["GenerateSemanticPlan"]().generate(model, parts["pos"], parts["neg"], 1.0, 32, 32, 5, 2.0, 2.0, 0)
    assert len(calls) == 2  # stopped between steps, not after all of them
    assert next(model.pipeline.lat_generator.parameters()).device == cc.offload_device()  # moved back anyway


def test_reference_plan_from_frames_and_from_the_shipped_clip(model, parts):
    encoder = MAPPINGS["LoadSemanticEncoder"]().load("qwen2_5_vl", str(parts["enc"]), "float32")[0]
    node = MAPPINGS["EncodeReferenceSemantics"]()
    frames = np.random.default_rng(0).integers(0, 256, (17, 48, 40, 3), dtype=np.uint8)  # 2 s at 8 fps
    ref = node.encode(encoder, model, "reference_shapes.mp4", 32, 32, 0.0, convert.frames_to_image(frames), 8.0)[0]
    assert ref["source"] == "reference" and ref["seconds"] == 17 / 8  # 17 frames at 8 fps: a training clip's 17
    assert ref["plan"].shape == (1, 8, 5, 2, 2)  # 17 video frames span 2.125 s -> 9 frames at 4 fps -> 5 pairs
    convert.check_plan(ref, model)
    capped = node.encode(encoder, model, "reference_shapes.mp4", 32, 32, 1.0, convert.frames_to_image(frames), 8.0)[0]
    assert capped["seconds"] == 9 / 8 and capped["plan"].shape[2] == 3  # 1 s -> 9 frames -> 5 semantic -> 3
    shipped = node.encode(encoder, model, "reference_shapes.mp4", 64, 64, 0.0)[0]
    assert shipped["plan"].shape == (1, 8, 5, 4, 4) and shipped["seconds"] == 17 / 8  # 64 px / 16 per token
    latent = MAPPINGS["SemanticToLatent"]().sample(model, ref, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=0)[0]
    assert latent["samples"].shape == (1, 16, 5, 4, 4)  # 17 frames -> 5 latent frames


def test_mismatches_name_both_sides(model, plan, parts):
    other = MAPPINGS["SemanticGenModelLoader"]().load(str(parts["s1_k4"]), str(parts["s2_k4"]), "float32")[0]
    with pytest.raises(CheckpointError, match=r"dim 8.*trained on qwen2_5_vl plans of dim 4"):
        MAPPINGS["SemanticToLatent"]().sample(other, plan, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=0)
    with pytest.raises(CheckpointError, match=r"stage 2 .*stage2_k8.* vs stage 1 .*stage1_k4"):
        MAPPINGS["SemanticGenModelLoader"]().load(str(parts["s1_k4"]), str(parts["s2"]), "float32")
    stretched = {**plan, "seconds": 3.0}
    with pytest.raises(ValueError, match=r"\(3, 2, 2\).*expects \(7, 2, 2\) for 3 s"):
        MAPPINGS["SemanticToLatent"]().sample(model, stretched, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=0)
    wrong_kind = {**plan, "spec": SemanticSpec(kind="vjepa2", dim=1024, compressed_dim=8)}
    with pytest.raises(CheckpointError, match=r"vjepa2 features of dim 8.*trained on qwen2_5_vl"):
        MAPPINGS["SwinLongVideoSampler"]().sample(
            model, wrong_kind, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=0, window=8
        )
    with pytest.raises(ValueError, match=r"dim 384.*text features of dim 24"):
        MAPPINGS["GenerateSemanticPlan"]().generate(
            model, cond(torch.randn(1, 4, 384)), parts["neg"], 1.0, 32, 32, **SAMPLER, seed=0
        )
    with pytest.raises(ValueError, match="embedded shapes encoder is a qwen2_5_vl encoder, but kind 'vjepa2'"):
        MAPPINGS["LoadSemanticEncoder"]().load("vjepa2", "embedded shapes encoder", "float32")
    no_stage2 = MAPPINGS["SemanticGenModelLoader"]().load(
        str(parts["s1"]), "none (reference transfer only)", "float32"
    )[0]
    with pytest.raises(ValueError, match="without a stage-2 semantic generator"):
        MAPPINGS["GenerateSemanticPlan"]().generate(
            no_stage2, parts["pos"], parts["neg"], 1.0, 32, 32, **SAMPLER, seed=0
        )


def test_encoder_of_another_dim_is_named(model, parts, tmp_path):
    Qwen25VLEncoder.from_config({**VISION, "out_hidden_size": 24}, fps=4.0, **PIXELS).save(tmp_path / "e.safetensors")
    encoder = MAPPINGS["LoadSemanticEncoder"]().load("qwen2_5_vl", str(tmp_path / "e.safetensors"), "float32")[0]
    with pytest.raises(CheckpointError, match=r"reference semantic plan is qwen2_5_vl features of dim 24.*dim 16"):
        MAPPINGS["EncodeReferenceSemantics"]().encode(encoder, model, "reference_shapes.mp4", 32, 32, 0.0)


def test_loaders_cache_in_the_node_instance(parts):
    loader = MAPPINGS["SemanticGenModelLoader"]()
    a = loader.load(str(parts["s1"]), str(parts["s2"]), "float32")[0]
    assert loader.load(str(parts["s1"]), str(parts["s2"]), "float32")[0] is a
    assert MAPPINGS["SemanticGenModelLoader"]().load(str(parts["s1"]), str(parts["s2"]), "float32")[0] is not a
    assert torch.allclose(a.latents_mean[:3], torch.tensor([-0.7571, -0.7089, -0.9113]))  # Wan2.1 latent format


def test_missing_files_name_the_folder_and_how_to_get_them(parts):
    loaders = sys.modules[f"{PACK}.nodes.loaders"]
    model, encoder, vae = (
        MAPPINGS[n] for n in ("SemanticGenModelLoader", "LoadSemanticEncoder", "SemanticGenVAELoader")
    )
    assert model.VALIDATE_INPUTS(loaders.EMBEDDED_MODEL, loaders.NO_STAGE2) is True
    assert model.VALIDATE_INPUTS(str(parts["s1"]), str(parts["s2"])) is True  # existing paths are fine
    msg = model.VALIDATE_INPUTS("semanticgen_wan2.1_t2v_1.3b_stage1.safetensors", loaders.EMBEDDED_MODEL)
    assert "stage1 = 'semanticgen_wan2.1_t2v_1.3b_stage1.safetensors'" in msg and "stage2" not in msg.split(":")[0]
    assert "models/semanticgen/" in msg and "train/stage1.py" in msg and "not published" in msg
    msg = encoder.VALIDATE_INPUTS("Qwen2.5-VL-7B-Instruct")
    assert "models/semanticgen/" in msg and "huggingface-cli download Qwen/Qwen2.5-VL-7B-Instruct" in msg
    msg = vae.VALIDATE_INPUTS("wan_2.1_vae.safetensors")
    assert "models/vae/" in msg and loaders.DOWNLOADS["wan_2.1_vae.safetensors"][1] in msg
    assert vae.VALIDATE_INPUTS(loaders.EMBEDDED_VAE) is True


def test_reference_file_none_needs_a_connected_input(model, parts):
    sampling = sys.modules[f"{PACK}.nodes.sampling"]
    assert sampling.reference_files()[-1] == sampling.FROM_INPUT
    encoder = MAPPINGS["LoadSemanticEncoder"]().load("qwen2_5_vl", str(parts["enc"]), "float32")[0]
    node = MAPPINGS["EncodeReferenceSemantics"]()
    with pytest.raises(ValueError, match="neither 'video' .* nor 'images' is connected"):
        node.encode(encoder, model, sampling.FROM_INPUT, 32, 32, 0.0)
    frames = np.random.default_rng(0).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    plan = node.encode(encoder, model, sampling.FROM_INPUT, 32, 32, 0.0, convert.frames_to_image(frames), 8.0)[0]
    assert plan["source"] == "reference"


def test_stage_b_previews_use_wan21_factors_in_wan_space(model, parts, monkeypatch):
    from semanticgen_core.preview import WAN21_LATENT_RGB_BIAS, WAN21_LATENT_RGB_FACTORS, latent_to_rgb
    from semanticgen_core.vae import wan21_vae_config

    z = torch.randn(1, 16, 2, 6, 10, generator=torch.Generator().manual_seed(0))
    # ComfyUI's Latent2RGBPreviewer: linear(x0[0, :, 0].movedim(0, -1), factors^T, bias), then (x + 1) / 2
    comfy = torch.nn.functional.linear(
        z[0, :, 0].movedim(0, -1), torch.tensor(WAN21_LATENT_RGB_FACTORS).T, torch.tensor(WAN21_LATENT_RGB_BIAS)
    )
    assert torch.allclose(latent_to_rgb(z)[0, 0], ((comfy + 1) / 2).clamp(0, 1), atol=1e-6)
    img = convert.preview_image(z, wan21=True)
    expected = (latent_to_rgb(z)[0, 0] * 255).round().to(torch.uint8).numpy()
    assert img.size == (250, 150) and (np.asarray(img)[::25, ::25] == expected).all()  # nearest x25, no VAE

    cfg = wan21_vae_config()
    wan = convert.SemanticGenModel(
        model.pipeline, torch.tensor(cfg["latents_mean"]), torch.tensor(cfg["latents_std"]), "w"
    )
    assert wan.wan21_latents and model.wan21_latents  # the tiny model records no statistics: Wan 2.1's are assumed
    other = convert.SemanticGenModel(model.pipeline, torch.zeros(16), torch.ones(16), "embedded-like")
    assert not other.wan21_latents  # another VAE space keeps the PCA preview

    seen = []
    monkeypatch.setattr(convert, "preview_image", lambda x, size=256, wan21=False: seen.append(wan21) or img)
    plan = MAPPINGS["GenerateSemanticPlan"]().generate(wan, parts["pos"], parts["neg"], 1.0, 32, 32, **SAMPLER, seed=0)[
        0
    ]
    MAPPINGS["SemanticToLatent"]().sample(wan, plan, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=0)
    assert seen == [False] * SAMPLER["steps"] + [True] * SAMPLER["steps"]  # plan: PCA; stage B: Wan 2.1 factors


def test_lora_select_and_budget_options_of_the_loader(parts, plan, tmp_path):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(2)
    lora = {}
    for name in ("blocks.0.self_attn.q", "blocks.1.ffn.2"):
        w = SemanticGenDiT(DIT_CONFIGS["tiny"]).get_submodule(name).weight
        lora[f"diffusion_model.{name}.lora_down.weight"] = torch.randn(2, w.shape[1], generator=g)
        lora[f"diffusion_model.{name}.lora_up.weight"] = torch.randn(w.shape[0], 2, generator=g)
    save_file(lora, str(tmp_path / "style.safetensors"))
    select = MAPPINGS["SemanticGenLoraSelect"]()
    chain = select.select(str(tmp_path / "style.safetensors"), 0.5)[0]
    chain = select.select(str(tmp_path / "style.safetensors"), 0.25, prev_lora=chain)[0]
    assert [s for _, s in chain] == [0.5, 0.25]
    s1, s2 = str(parts["s1"]), str(parts["s2"])

    def latent(lora=None, **opts):
        options = {"blocks_on_device": -1, "attention": "auto", "compile": False, "lora_mode": "runtime", **opts}
        runtime = MAPPINGS["SemanticGenRuntimeOptions"]().options(**options)[0]
        model = MAPPINGS["SemanticGenModelLoader"]().load(s1, s2, "float32", lora=lora, runtime=runtime)[0]
        return MAPPINGS["SemanticToLatent"]().sample(model, plan, parts["pos"], parts["neg"], 0.1, **SAMPLER, seed=1)[0]

    plain = latent()["samples"]
    runtime = latent(lora=chain, lora_mode="runtime", attention="sdpa", blocks_on_device=0)["samples"]
    merged = latent(lora=chain, lora_mode="merge", blocks_on_device=1)["samples"]
    assert not torch.allclose(plain, runtime, atol=1e-3)  # the LoRA changes the result
    assert torch.allclose(runtime, merged, atol=1e-4)  # merged == applied at runtime, offloaded or not
    assert torch.allclose(plain, latent(blocks_on_device=0)["samples"], atol=0)  # offloading changes nothing
    with pytest.raises(ValueError, match="pip install|CUDA only"):
        latent(attention="sage")
