"""Native interop in the real ComfyUI app (outside CI: it starts a ComfyUI server; minutes on CPU).

    nice -n 15 python benchmarks/comfy_interop.py --comfy COMFY_TREE --python COMFY_VENV/bin/python \
        --runner path/to/run_workflow.py [--work /tmp/interop]

COMFY_TREE is a ComfyUI source tree, COMFY_VENV a Python environment that runs it with this pack's requirements, and
run_workflow.py a harness that starts that server on 127.0.0.1 with the given custom-node folders, runs an API-format
prompt and reports per node (docs/comfyui.md says where the ones used for the README's numbers come from). Nothing is
downloaded: the model files are made here, with random weights, in the layouts ComfyUI reads.

One prompt, run by the real server, checks:
1. LATENT: the embedded model's stage-B output decoded by core **VAEDecode** with a full-architecture Wan 2.1 VAE file
   (random weights, original key layout = ComfyUI's `models/vae/wan_2.1_vae.safetensors`) equals **SemanticGen
   Decode** of the same LATENT with the same file.
2. IMAGE: our decoded frames go into core **CreateVideo** -> **SaveVideo** and **SaveAnimatedWEBP**; the files they
   write hold our frames (up to codec error) and frame count.
3. CONDITIONING: core **CLIPLoader** (a random CLIP-L file, type stable_diffusion) + **CLIPTextEncode** feed our
   **Generate Semantic Plan** and **Semantic To Latent** (a tiny random SemanticGen model with 768-dim text, in
   `models/semanticgen/`), which accept ComfyUI's `[[cond [1, 77, 768], {"pooled_output": ...}]]`.
A probe node (written into the scratch folder, not part of the pack) saves the tensors it receives for the comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semanticgen_core import DIT_CONFIGS, SemanticCompressor, SemanticGenDiT  # noqa: E402
from semanticgen_core.config import DiTConfig, SemanticSpec, VideoSpec  # noqa: E402
from semanticgen_core.models import save_stage1, save_stage2  # noqa: E402
from semanticgen_core.vae import WanVAE, diffusers_to_original, wan21_vae_config  # noqa: E402
from semanticgen_core.video_io import read_video  # noqa: E402

VAE_FILE = "wan_2.1_vae_random_weights.safetensors"
CLIP_FILE = "clip_l_random_weights.safetensors"
TINY = ("interop_tiny_text768_stage1.safetensors", "interop_tiny_text768_stage2.safetensors")

PROBE = '''
import os
import torch
from safetensors.torch import save_file

OUT = os.environ["INTEROP_PROBE_DIR"]


class InteropProbe:
    """Saves what it receives (IMAGE, LATENT samples, CONDITIONING cond and extras' shapes) for the checker."""

    CATEGORY = "interop"
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "probe"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"tag": ("STRING", {"default": "x"})},
                "optional": {"image": ("IMAGE",), "latent": ("LATENT",), "cond": ("CONDITIONING",)}}

    def probe(self, tag, image=None, latent=None, cond=None):
        t, info = {}, {}
        if image is not None:
            t["image"] = image.float().contiguous()
        if latent is not None:
            t["latent"] = latent["samples"].float().contiguous()
        if cond is not None:
            t["cond"] = cond[0][0].float().contiguous()
            info = {k: (list(v.shape) if torch.is_tensor(v) else repr(v)) for k, v in cond[0][1].items()}
        save_file(t, os.path.join(OUT, tag + ".safetensors"), metadata={"extras": repr(info), "len": str(len(cond or []))})
        return {}


NODE_CLASS_MAPPINGS = {"InteropProbe": InteropProbe}
'''


# ----------------------------------------------------------------------------------------------------------------
# Files in ComfyUI's layout
# ----------------------------------------------------------------------------------------------------------------


def write_models(models: Path, comfy: Path) -> None:
    """Random-weight model files: full Wan 2.1 VAE (original keys), CLIP-L (ComfyUI's config), tiny SemanticGen."""
    torch.manual_seed(0)
    (models / "vae").mkdir(parents=True, exist_ok=True)
    vae = WanVAE.from_config(wan21_vae_config())  # the full Wan 2.1 architecture (127 M parameters)
    state = diffusers_to_original({k: v.contiguous() for k, v in vae.model.state_dict().items()})
    save_file(state, models / "vae" / VAE_FILE)

    from transformers import CLIPTextConfig, CLIPTextModel

    cfg = json.loads((comfy / "comfy" / "sd1_clip_config.json").read_text())
    keep = {k: v for k, v in cfg.items() if k in CLIPTextConfig().to_dict() and k != "architectures"}
    clip = CLIPTextModel(CLIPTextConfig(**keep))
    (models / "text_encoders").mkdir(exist_ok=True)
    state = {("" if k.startswith("text_model.") else "text_model.") + k: v for k, v in clip.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, models / "text_encoders" / CLIP_FILE)  # HF key names

    # tiny SemanticGen model taking 768-dim text (CLIP-L's width), plans of dim 8
    lat_cfg = DiTConfig.from_dict({**DIT_CONFIGS["tiny"].to_dict(), "sem_channels": 8, "text_dim": 768})
    sem_cfg = DiTConfig.from_dict({**DIT_CONFIGS["tiny-sem"].to_dict(), "in_channels": 8, "out_channels": 8})
    sem_cfg = DiTConfig.from_dict({**sem_cfg.to_dict(), "text_dim": 768})
    lat, sem = SemanticGenDiT(lat_cfg), SemanticGenDiT(sem_cfg)
    spec = SemanticSpec(kind="qwen2_5_vl", dim=16, compressed_dim=8, fps=4.0, temporal_patch=2, spatial_patch=16)
    comp = SemanticCompressor(spec.dim, 8)
    state = {
        **{f"lat_generator.{n}": v for n, v in lat.state_dict().items()},
        **{f"compressor.{n}": v for n, v in comp.state_dict().items()},
    }
    (models / "semanticgen").mkdir(exist_ok=True)
    save_stage1(models / "semanticgen" / TINY[0], state, lat_cfg, comp.config, spec, VideoSpec(fps=8, z_dim=16))
    save_stage2(models / "semanticgen" / TINY[1], {f"sem_generator.{n}": v for n, v in sem.state_dict().items()},
                sem_cfg, spec)  # fmt: skip


def prompt() -> dict:
    """The API prompt: embedded model -> LATENT -> both decoders -> probes, video and WEBP; CLIP -> our samplers."""
    sampler = {"steps": 4, "cfg": 4.0, "shift": 2.0, "seed": 7}
    size = {"width": 64, "height": 64}
    nodes = {
        "1": ("SemanticGenModelLoader", {"stage1": "embedded shapes model", "stage2": "embedded shapes model",
                                         "dtype": "float32"}),
        "2": ("SemanticGenTextEncode", {"text": "a red circle moves to the right"}),
        "3": ("SemanticGenTextEncode", {"text": ""}),
        "4": ("GenerateSemanticPlan", {"model": ["1", 0], "positive": ["2", 0], "negative": ["3", 0],
                                       "seconds": 2.0, **size, **sampler}),
        "5": ("SemanticToLatent", {"model": ["1", 0], "plan": ["4", 0], "positive": ["2", 0],
                                   "negative": ["3", 0], "plan_noise": 0.1, **sampler}),
        "6": ("VAELoader", {"vae_name": VAE_FILE}),
        "7": ("VAEDecode", {"samples": ["5", 0], "vae": ["6", 0]}),
        "8": ("SemanticGenVAELoader", {"vae_name": VAE_FILE, "dtype": "float32"}),
        "9": ("SemanticGenDecode", {"samples": ["5", 0], "vae": ["8", 0], "chunk": 2}),
        "10": ("InteropProbe", {"tag": "core_decode", "image": ["7", 0], "latent": ["5", 0]}),
        "11": ("InteropProbe", {"tag": "our_decode", "image": ["9", 0]}),
        "12": ("CreateVideo", {"images": ["9", 0], "fps": 8.0}),
        "13": ("SaveVideo", {"video": ["12", 0], "filename_prefix": "interop/video", "format": "mp4",
                             "codec": "h264"}),
        "14": ("SaveAnimatedWEBP", {"images": ["9", 0], "filename_prefix": "interop/webp", "fps": 8.0,
                                    "lossless": True, "quality": 100, "method": "default"}),
        "20": ("CLIPLoader", {"clip_name": CLIP_FILE, "type": "stable_diffusion", "device": "default"}),
        "21": ("CLIPTextEncode", {"clip": ["20", 0], "text": "a red kite over a beach"}),
        "22": ("CLIPTextEncode", {"clip": ["20", 0], "text": ""}),
        "23": ("SemanticGenModelLoader", {"stage1": TINY[0], "stage2": TINY[1], "dtype": "float32"}),
        "24": ("GenerateSemanticPlan", {"model": ["23", 0], "positive": ["21", 0], "negative": ["22", 0],
                                        "seconds": 1.0, "width": 32, "height": 32, **sampler}),
        "25": ("SemanticToLatent", {"model": ["23", 0], "plan": ["24", 0], "positive": ["21", 0],
                                    "negative": ["22", 0], "plan_noise": 0.1, **sampler}),
        "26": ("InteropProbe", {"tag": "clip_conditioning", "cond": ["21", 0], "latent": ["25", 0]}),
    }  # fmt: skip
    return {k: {"class_type": c, "inputs": i} for k, (c, i) in nodes.items()}


# ----------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------


def check(work: Path) -> dict:
    """Compare what the probes saw and what the core nodes wrote; returns the measured numbers."""
    probe, out = work / "probe", work / "base" / "output" / "interop"
    core, ours = load_file(probe / "core_decode.safetensors"), load_file(probe / "our_decode.safetensors")
    a, b = core["image"], ours["image"]
    res = {
        "latent_shape": list(core["latent"].shape),
        "core_vae_decode_shape": list(a.shape),
        "semanticgen_decode_shape": list(b.shape),
        "max_abs_diff": float((a - b).abs().max()) if a.shape == b.shape else None,
        "pixels_strictly_inside_0_1": float(((b > 0) & (b < 1)).float().mean()),
        "image_std": float(b.std()),
    }
    videos, webps = sorted(out.glob("video*.mp4")), sorted(out.glob("webp*.webp"))
    frames = read_video(videos[-1])
    ref = (b.numpy() * 255).round().astype(np.int16)
    res["mp4_frames"], res["mp4_mean_abs_error_levels"] = len(frames), float(np.abs(frames - ref).mean())
    from PIL import Image

    with Image.open(webps[-1]) as im:
        res["webp_frames"] = im.n_frames
        im.seek(0)
        res["webp_first_frame_max_abs_error_levels"] = int(np.abs(np.asarray(im.convert("RGB")) - ref[0]).max())
    clip = load_file(probe / "clip_conditioning.safetensors")
    res["clip_cond_shape"] = list(clip["cond"].shape)
    res["clip_stage_b_latent_shape"] = list(clip["latent"].shape)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--comfy", type=Path, required=True, help="ComfyUI source tree (holds main.py)")
    ap.add_argument("--python", required=True, help="python of an environment that runs that ComfyUI")
    ap.add_argument("--runner", type=Path, required=True, help="run_workflow.py harness (starts the server, runs)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/semanticgen_interop"), help="scratch folder")
    ap.add_argument("--startup-timeout", type=int, default=900, help="seconds to wait for the server")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds the prompt may run (CPU: the full Wan VAE)")
    args = ap.parse_args()
    work = args.work.resolve()
    for d in ("models", "probe", "packs/interop_probe", "base"):
        (work / d).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    if not (work / "models" / "vae" / VAE_FILE).is_file():
        write_models(work / "models", args.comfy)
    print(f"model files ready ({time.time() - t0:.0f} s)", flush=True)
    (work / "packs" / "interop_probe" / "__init__.py").write_text(PROBE)
    pack = work / "packs" / "ComfyUI-SemanticGen"
    if not pack.exists():
        pack.symlink_to(ROOT)
    (work / "prompt.json").write_text(json.dumps(prompt(), indent=1))
    cmd = [sys.executable, str(args.runner), "--comfy", str(args.comfy), "--python", args.python,
           "--nodes", str(pack), "--nodes", str(work / "packs" / "interop_probe"), "--models-dir", str(work / "models"),
           "--base-dir", str(work / "base"), "--keep", "--no-cache", "--format", "api", "--workflow",
           str(work / "prompt.json"), "--startup-timeout", str(args.startup_timeout), "--timeout", str(args.timeout), "--report",
           str(work / "report.json")]  # fmt: skip
    env = {**__import__("os").environ, "INTEROP_PROBE_DIR": str(work / "probe")}
    t1 = time.time()
    run = subprocess.run(cmd, env=env)
    print(f"server run: exit {run.returncode} ({time.time() - t1:.0f} s)", flush=True)
    if run.returncode != 0:
        return run.returncode
    res = check(work)
    (work / "interop.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))
    ok = (
        res["max_abs_diff"] is not None
        and res["max_abs_diff"] < 1e-4
        and res["mp4_frames"] == res["semanticgen_decode_shape"][0] == res["webp_frames"]
        and res["clip_cond_shape"][-1] == 768
    )
    print("INTEROP", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
