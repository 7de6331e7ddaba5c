"""Evaluation of the embedded shapes-world model, and of each of its parts (issue targets in brackets).

Held-out prompts are attribute combinations and paraphrase templates never seen in training; the attribute probe
(`lab.metrics.AttributeProbe`, trained on fresh renders) reads colour / shape / motion from pixels. Rates come with
95 % Wilson intervals.

1. geometry: plan tokens / stage-B tokens at several lengths [<= 1/16], next to the paper's own ratio
2. text adherence on n held-out prompts: colour [>= 95 %], shape [>= 90 %], motion [>= 90 %]; the same scenes with
   canonical captions (what the paraphrase templates cost) and in fresh wording (lab.world FRESH_TEMPLATES, written
   after the training grammar, never trained), colour by kind of held-out scene and by template, the commonest mistakes
3. crispness: Frechet distance on probe features, generated vs real renders, next to real vs real [<= 2x floor];
   edge sharpness (strongest luma gradients) generated vs real [within 20 %], and where it is lost (VAE
   reconstructions of real clips; stage B given real plans; the Frechet distance's: benchmarks/frechet_parts.py)
4. where misses come from: the probe itself on real renders of the same scenes, the VAE (PSNR on held-out 8 s
   clips [>= 30 dB]; the probe on reconstructions, also per colour with the object's mean reconstructed RGB), the
   encoder (linear probes of attributes and positions on its features and on the compressed plan), stage B given
   real plans (plans encoded from held-out clips; in conflict: plan_conflict.py), stage A's plans (row 2)
5. reference transfer: keeps the reference's motion [>= 95 %], takes the prompt's colour [>= 90 %], frames with a
   trace of the reference's colour (against the rate in real renders of the prompt's scene, and in text-to-video of
   the same prompts and seeds without a reference) [none visible]; with the manifest's re-planning, the same
   references with the plan as encoded
6. 60 s videos: the character kept per 4 s segment [>= 95 %] (also by kind: held-out colour-shape pairs or not);
   stage A's share of the wall time [<= 10 %]
7. the README's 2 s command end to end through the CLI [<= 15 s]

    python benchmarks/embedded_eval.py                  # n = 100 prompts, 50 references, 5 one-minute videos
    python benchmarks/embedded_eval.py --json eval.json --weights DIR   # `train/embedded.py ship --to DIR` output
    python benchmarks/embedded_eval.py --readout-only --weights DIR      # 4b alone: encoder and plan read-outs
    python benchmarks/embedded_eval.py --composition-only                # prompts composed with their shape (A AND B)
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from semanticgen_core.config import SemanticSpec, VideoSpec  # noqa: E402
from semanticgen_core.lab import metrics  # noqa: E402
from semanticgen_core.lab.claims_metrics import bootstrap_ci  # noqa: E402
from semanticgen_core.lab.embedded import embedded_path, load_embedded_pipeline, manifest  # noqa: E402
from semanticgen_core.lab.world import (  # noqa: E402
    BACKGROUNDS,
    COLORS,
    HELDOUT_COMBOS,
    HELDOUT_TEMPLATES,
    MOTION_FINITE,
    SHAPES,
    ShapesWorld,
    caption,
    parse_caption,
    render,
    sample_scene,
    template_of,
)
from semanticgen_core.pipeline import video_to_uint8  # noqa: E402
from semanticgen_core.vae import frames_to_video  # noqa: E402

ATTRS = ("color", "shape", "motion")
FPS, SIZE = 8, 64


def rate(hits) -> dict:
    """A rate with its 95 % Wilson interval."""
    hits = [bool(h) for h in hits]
    lo, hi = metrics.wilson_interval(sum(hits), len(hits))
    return {"rate": float(np.mean(hits)) if hits else float("nan"), "lo": lo, "hi": hi, "n": len(hits)}


def fmt(r: dict) -> str:
    return f"{r['rate']:.0%} [{r['lo']:.0%}, {r['hi']:.0%}] (n={r['n']})"


def generate(pipe, prompts, seconds=2.0, batch=10, seed=0, **kw) -> list[np.ndarray]:
    """uint8 videos for prompts, batched (one seed per batch, offset by the batch index)."""
    return [v for b in range(0, len(prompts), batch)
            for v in pipe(prompts[b : b + batch], seconds=seconds, height=SIZE, width=SIZE, seed=seed + b, **kw)]  # fmt: skip


def attribute_hits(probe, videos, truths) -> dict:
    """Per attribute, hits of the probe against truth dicts (color/shape/motion)."""
    preds = probe.predict_batch(videos)
    return {k: [p[k] == t[k] for p, t in zip(preds, truths)] for k in ATTRS}


# ------------------------------------------------------------------------------------------------------------------


def geometry(pipe) -> dict:
    """Plan tokens / stage-B tokens at several lengths, ours and the paper's (Qwen2.5-VL 1.6 fps vs Wan VAE at 24
    fps, 480x832)."""
    out = {}
    patch = pipe.lat_generator.config.patch_size
    for seconds in (0.5, 2.0, 8.0, 60.0):
        c, t, h, w = pipe.config.video.latent_shape(seconds, SIZE, SIZE)
        ts, hs, ws = pipe.plan_grid(seconds, SIZE, SIZE)
        out[f"ours_{seconds:g}s"] = (ts * hs * ws) / ((t // patch[0]) * (h // patch[1]) * (w // patch[2]))
    paper_video, paper_sem = VideoSpec(fps=24), SemanticSpec(fps=1.6)
    for seconds in (2.0, 10.0, 60.0):
        c, t, h, w = paper_video.latent_shape(seconds, 480, 832)
        ts, hs, ws = paper_sem.grid(seconds, 480, 832)
        out[f"paper_{seconds:g}s"] = (ts * hs * ws) / (t * (h // 2) * (w // 2))
    return out


def frechet_scores(probe, videos, real, seed: int) -> dict:
    """Frechet distance on probe features, generated vs real renders of the same held-out scenes, next to the
    real-vs-real floor (renders of other held-out scenes, prompt seed + 7)."""
    real2 = [ShapesWorld(n=len(real), seed=seed + 7, split="heldout")[i]["frames"] for i in range(len(real))]
    e_gen, e_real, e_real2 = probe.embed(videos), probe.embed(real), probe.embed(real2)
    # a 16-d PCA basis fitted on real clips: with ~100 clips a 288-d covariance is mostly noise
    basis = np.linalg.svd(np.concatenate([e_real, e_real2]) - e_real.mean(0), full_matrices=False)[2][:16].T
    e_gen, e_real, e_real2 = e_gen @ basis, e_real @ basis, e_real2 @ basis
    return {"generated_vs_real": metrics.frechet_distance(e_gen, e_real),
            "real_vs_real": metrics.frechet_distance(e_real2, e_real)}  # fmt: skip


def stage_b_on_real_plans(pipe, world, n: int, alter=None) -> list[np.ndarray]:
    """Stage B on the real plans of `world`'s first n scenes (`alter(i, scene)`: of another scene) and their captions
    (the t2v sampler, not transfer's)."""
    sem_fps, config = pipe.config.semantic.fps, pipe.config
    pipe.config = replace(config, transfer_sampler=None, transfer_replan=0.0)
    try:
        out = []
        for i in range(n):
            scene, text = world.scene(i)
            ref = render(alter(i, scene) if alter else scene, 2.0, fps=sem_fps, num_frames=round(2.0 * sem_fps) + 1)
            out.append(pipe(text, seconds=2.0, height=SIZE, width=SIZE, seed=i, reference=ref)[0])
        return out
    finally:
        pipe.config = config


def linear_probe_scores(pipe, n_train=400, n_test=200, seed=0) -> dict:
    """Linear read-out (ridge on one-hot / coordinates) of attributes and per-token positions from the encoder's
    features and from the compressed plan (the compressor's mean): trained on train-split clips, tested on held-out
    ones. What the plan can carry at all. `*_seen`: the same read-outs on new clips of the training combinations; far
    above the held-out figure, the attribute is there but tied to what it was seen with. `plan_*_sampled` /
    `plan_*_generated`: the plan's read-out on samples of the held-out clips' plans and on stage A's plans for their
    captions (2 s, the plan sampler): below the sampled figure, stage A loses what the plan could carry."""
    enc, comp = pipe.semantic_encoder, pipe.compressor
    fps = pipe.config.semantic.fps
    from semanticgen_core.lab.world import Scene

    def featurize(split, n, s):
        world = ShapesWorld(n=n, seed=s, split=split, fps=fps, num_frames=9)
        feats, plans, labels, pos, sampled = [], [], {k: [] for k in (*ATTRS, "background")}, [], []
        gen = torch.Generator().manual_seed(s)
        for i in range(n):
            item = world[i]
            with torch.no_grad():
                f = enc.encode(item["frames"])  # [1, d, T_s, 1, 1]
                plan = comp(f)
            feats.append(f[0].mean(dim=(2, 3)).T.numpy())  # [T_s, d] (space pooled: one token per frame here)
            plans.append(plan.mean[0].mean(dim=(2, 3)).T.numpy())
            sampled.append(plan.sample(gen)[0].mean(dim=(2, 3)).T.numpy())  # what stage A learns to generate
            for k in labels:
                labels[k].append(item["attributes"][k])
            t = (np.arange(f.shape[2]) * 2 + 0.5) / fps  # centre of each token's two frames
            pos.append(np.stack(Scene(**item["scene"]).position(np.minimum(t, 8 / fps)), -1))
        return feats, plans, labels, pos, sampled, [world.scene(i)[1] for i in range(n)]

    def generated_plans(captions, s, batch=50):  # stage A's plans for the held-out clips' captions, 2 s
        out, gen = [], torch.Generator().manual_seed(s)
        for i in range(0, len(captions), batch):
            ctx, uncond = pipe.encode_text(captions[i : i + batch])
            z = pipe.generate_plan(ctx, uncond, pipe.plan_grid(2.0, SIZE, SIZE), None, gen)
            out += [zi.float().mean(dim=(2, 3)).T.numpy() for zi in z]
        return out

    def ridge(x, y, lam=10.0):  # standardised inputs; lam keeps the few hundred clips from being interpolated
        x1 = np.concatenate([x, np.ones((len(x), 1))], 1)
        return np.linalg.solve(x1.T @ x1 + lam * np.eye(x1.shape[1]), x1.T @ y)

    def apply(w, x):
        return np.concatenate([x, np.ones((len(x), 1))], 1) @ w

    def clip_features(tokens):  # [T_s, d] -> [2d]: what the clip shows on average, and how it changes
        return np.concatenate([tokens.mean(0), tokens[-1] - tokens[0]])

    tr, te = featurize("train", n_train, seed + 100), featurize("heldout", n_test, seed + 200)
    seen = featurize("train", n_test, seed + 300)
    generated = generated_plans(te[5], seed + 400)
    out = {}
    for name, idx in (("encoder", 0), ("plan", 1)):
        x_tr, x_te, x_seen = (np.stack([clip_features(f) for f in d[idx]]) for d in (tr, te, seen))
        mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
        x_tr, x_te, x_seen = ((x - mu) / sd for x in (x_tr, x_te, x_seen))
        extra = []  # the plan's read-out (fit on real plans' means) on posterior samples and on stage A's plans
        if name == "plan":
            extra = [(f"_{kind}", (np.stack([clip_features(f) for f in plans]) - mu) / sd, te)
                     for kind, plans in (("sampled", te[4]), ("generated", generated))]  # fmt: skip
        for k, classes in (("color", list(COLORS)), ("shape", list(SHAPES)), ("motion", metrics.ATTRIBUTES["motion"]),
                           ("background", list(BACKGROUNDS))):  # fmt: skip
            w = ridge(x_tr, np.eye(len(classes))[[classes.index(v) for v in tr[2][k]]])
            for suffix, x, d in (("", x_te, te), ("_seen", x_seen, seen), *extra):
                pred = apply(w, x).argmax(1)
                out[f"{name}_{k}{suffix}"] = rate([classes[p] == v for p, v in zip(pred, d[2][k])])
        t_tr, t_te = np.concatenate(tr[idx]), np.concatenate(te[idx])  # per token
        mu, sd = t_tr.mean(0), t_tr.std(0) + 1e-6
        w = ridge((t_tr - mu) / sd, np.concatenate(tr[3]))
        err = apply(w, (t_te - mu) / sd) - np.concatenate(te[3])
        out[f"{name}_position_rmse_px"] = float(np.sqrt((err**2).mean()) * SIZE)
    return out


def colour_breakdown(scenes, videos, probe) -> dict:
    """Colour and shape hits by kind of held-out scene (a held-out colour-shape or colour-motion pair) and the
    commonest (true, drawn) colour and shape mistakes."""
    preds = probe.predict_batch(videos)
    kinds, shape_kinds = {"color_shape": [], "color_motion": []}, {"color_shape": [], "color_motion": []}
    for s, p in zip(scenes, preds):
        kind = "color_shape" if (s.color, s.shape) in HELDOUT_COMBOS["color_shape"] else "color_motion"
        kinds[kind].append(p["color"] == s.color)
        shape_kinds[kind].append(p["shape"] == s.shape)
    mistakes = Counter(f"{s.color} -> {p['color']}" for s, p in zip(scenes, preds) if p["color"] != s.color)
    shapes = Counter(f"{s.shape} -> {p['shape']}" for s, p in zip(scenes, preds) if p["shape"] != s.shape)
    return {"by_kind": {k: rate(v) for k, v in kinds.items()}, "mistakes": dict(mistakes.most_common(4)),
            "shape_by_kind": {k: rate(v) for k, v in shape_kinds.items()},
            "shape_mistakes": dict(shapes.most_common(6))}  # fmt: skip


def composition_scores(pipe, probe, n: int, seed: int = 0, weights=(0.5, 1.0)) -> dict:
    """The held-out prompts as written, then each composed with its shape alone, "PROMPT AND a triangle moves left
    :w" (compose.py; the shape phrase in a training form, COLOURLESS: no colour word): colour / shape / motion and
    shape on held-out colour-shape / colour-motion pairs. A user's remedy for a drawn shape, measured; the plain
    prompts are the target's figure."""
    world = ShapesWorld(n=n, seed=seed, split="heldout", paraphrase=1.0)
    scenes, prompts = zip(*[world.scene(i) for i in range(n)])
    truths = [parse_caption(p) for p in prompts]
    out = {}
    for w in (0.0, *weights):
        shapes = [f"a {t['shape']} {MOTION_FINITE[t['motion']][0]}" for t in truths]  # circle, square, triangle
        texts = [f"{p} AND {shape} :{w:g}" if w else p for p, shape in zip(prompts, shapes)]
        videos = generate(pipe, texts, seed=seed)
        hits = attribute_hits(probe, videos, truths)
        out[f"weight_{w:g}"] = {**{k: rate(hits[k]) for k in ATTRS},
                                "shape_by_kind": colour_breakdown(scenes, videos, probe)["shape_by_kind"]}  # fmt: skip
    out["example"] = texts[0]
    return out


def vae_per_colour(pipe, probe, n=8, seed=0) -> dict:
    """Per colour: the probe on VAE reconstructions of n 2 s train-split scenes recoloured, and the object's mean RGB
    in the reconstruction (pixels of the object's colour in the render)."""
    from dataclasses import replace

    rng = np.random.default_rng(seed + 4)
    scenes, out, latents = [sample_scene(rng, "train") for _ in range(n)], {}, {}
    for c, rgb in COLORS.items():
        hits, means, zs = [], [], []
        for s in scenes:
            x = render(replace(s, color=c), 2.0, fps=FPS, num_frames=17)
            with torch.no_grad():
                zs.append(pipe.vae.encode(frames_to_video(x)))
                rec = video_to_uint8(pipe.vae.decode(zs[-1]))[0]
            hits.append(probe.predict(rec)["color"] == c)
            means.append(rec[np.abs(x.astype(np.float32) - rgb).sum(-1) < 30].mean(0))
        out[c] = {"probe": float(np.mean(hits)), "rgb": [round(float(v)) for v in np.mean(means, 0)]}
        latents[c] = torch.cat(zs)
    # how far apart the encoder puts two colours of the same scenes (normalised latents, all n scenes together)
    names = list(COLORS)
    out["latent_distance"] = {f"{a}-{b}": float((latents[a] - latents[b]).norm())
                              for i, a in enumerate(names) for b in names[i + 1 :]}  # fmt: skip
    return out


def vae_scores(vae, probe, n: int, seed: int) -> dict:
    """A VAE on n held-out 2 s clips and n 8 s clips (rng seed `seed`): PSNR of the 8 s ones, the probe on the
    reconstructions (2 s clips; the last 2 s of 8 s clips), edge sharpness of the 2 s reconstructions and clips."""
    rng = np.random.default_rng(seed)
    psnrs, recon_hits, sharp = [], {}, {"recon": [], "real": []}
    for name, seconds in (("2s", 2.0), ("8s_tail", 8.0)):
        clips = [sample_scene(rng, "heldout", seconds) for _ in range(n)]
        recs = []
        for scene in clips:
            x = render(scene, seconds, fps=FPS, num_frames=round(seconds * FPS) + 1)
            with torch.no_grad():
                rec = video_to_uint8(vae.decode(vae.encode(frames_to_video(x))))[0]
            if name == "8s_tail":
                psnrs.append(metrics.psnr(rec, x))
            else:
                sharp["recon"].append(metrics.edge_sharpness(rec))
                sharp["real"].append(metrics.edge_sharpness(x))
            recs.append(rec[-17:])
        h = attribute_hits(probe, recs, [{k: getattr(s, k) for k in ATTRS} for s in clips])
        recon_hits[name] = {k: rate(h[k]) for k in ATTRS}
    return {"psnr_8s_mean": float(np.mean(psnrs)), "psnr_8s_min": float(np.min(psnrs)), "probe": recon_hits,
            "sharpness_recon": float(np.mean(sharp["recon"])), "sharpness_real": float(np.mean(sharp["real"]))}  # fmt: skip


def transfer_scores(
    pipe, probe, n: int, seed: int, plan_noise: float | None = None, replan: float | None = None, control: bool = False
) -> dict:
    """Reference transfer on n held-out references (rng seed `seed`): "a <colour> <shape>" of another colour and
    shape than the reference's; the motion kept, the prompt's colour and shape taken, frames with a trace of the
    reference's colour (and the same in real renders of the prompt's scene; with `control`, in text-to-video of the
    same prompt and seed without any reference: the generator's own stray pixels of that colour, and the excess over
    it with a bootstrap interval over references)."""
    sem_fps = pipe.config.semantic.fps
    rng = np.random.default_rng(seed)
    refs, gens, colour_ok, shape_ok, trace_gen, trace_real, trace_t2v, bg_ok = [], [], [], [], [], [], [], []
    for i in range(n):
        scene = sample_scene(rng, "heldout")
        ref = render(scene, 2.0, fps=sem_fps, num_frames=round(2.0 * sem_fps) + 1)
        color = [c for c in COLORS if c != scene.color][i % 5]
        shape = [s for s in SHAPES if s != scene.shape][i % 2]
        out = pipe(f"a {color} {shape}", seconds=2.0, height=SIZE, width=SIZE, seed=i, reference=ref,
                   plan_noise=plan_noise, replan=replan)[0]  # fmt: skip
        if control:
            t2v = pipe(f"a {color} {shape}", seconds=2.0, height=SIZE, width=SIZE, seed=i)[0]
            trace_t2v.append(metrics.colour_trace(t2v, COLORS[scene.color]))
        refs.append(render(scene, 2.0, fps=FPS, num_frames=17))
        gens.append(out)
        pred = probe.predict(out)
        colour_ok.append(pred["color"] == color)
        bg_ok.append(metrics.background_of(out) == scene.background)
        shape_ok.append(pred["shape"] == shape)
        target = render(scene.__class__(**{**scene.__dict__, "color": color, "shape": shape}), 2.0, FPS)
        trace_gen.append(metrics.colour_trace(out, COLORS[scene.color]))
        trace_real.append(metrics.colour_trace(target, COLORS[scene.color]))
    preds = probe.predict_batch(refs + gens)
    return {
        "motion_kept": rate([a["motion"] == b["motion"] for a, b in zip(preds[: len(refs)], preds[len(refs) :])]),
        "prompt_colour": rate(colour_ok),
        "prompt_shape": rate(shape_ok),
        "background_kept": rate(bg_ok),
        "reference_colour_trace_frames": float(np.mean(trace_gen)),
        "reference_colour_trace_frames_real": float(np.mean(trace_real)),
        **({"reference_colour_trace_frames_t2v": float(np.mean(trace_t2v)),  # and the excess, paired by reference
            "reference_colour_trace_excess": bootstrap_ci([a - b for a, b in zip(trace_gen, trace_t2v)])}
           if control else {}),
    }  # fmt: skip


def long_scores(pipe, probe, n_long: int, seed: int, window) -> dict:
    """60 s videos of held-out prompts: the character (colour and shape) per 4 s segment, and each stage's time.

    A video's segments share its prompt and noise, so they are not independent trials: the segment rate's interval is
    a bootstrap over videos, the share of videos kept whole beside it (Wilson, n = videos); so for held-out pairs.
    """
    long_world = ShapesWorld(n=n_long, seed=seed + 3, split="heldout", paraphrase=0.0)
    per_video, times = [], {"plan": 0.0, "latents": 0.0, "decode": 0.0}
    for i in range(n_long):
        prompt = long_world.scene(i)[1]
        gen = torch.Generator().manual_seed(i)
        t0 = time.time()
        ctx, uncond = pipe.encode_text([prompt])
        z_sem = pipe.generate_plan(ctx, uncond, pipe.plan_grid(60.0, SIZE, SIZE), None, gen)
        t1 = time.time()
        z = pipe.generate_latents(z_sem, ctx, uncond, pipe.config.video.latent_shape(60.0, SIZE, SIZE), None, None,
                                  window, gen)  # fmt: skip
        t2 = time.time()
        frames = np.concatenate(list(pipe.iter_decode(z)))
        t3 = time.time()
        times["plan"] += t1 - t0
        times["latents"] += t2 - t1
        times["decode"] += t3 - t2
        attrs = parse_caption(prompt)
        preds = metrics.segment_predictions(probe, frames, window_seconds=4.0, fps=FPS)
        kept = [p["color"] == attrs["color"] and p["shape"] == attrs["shape"] for p in preds]
        drawn = Counter(f"{p['color']} {p['shape']}" for p in preds).most_common(2)
        per_video.append({"prompt": prompt, "kept": float(np.mean(kept)), "segments": len(kept), "drawn": drawn,
                          "heldout_pair": (attrs["color"], attrs["shape"]) in HELDOUT_COMBOS["color_shape"]})  # fmt: skip
    segment_rate, lo, hi = bootstrap_ci([v["kept"] for v in per_video])
    n_segments = sum(v["segments"] for v in per_video)
    by_kind = {f"heldout_pair_{p}": (*bootstrap_ci([v["kept"] for v in per_video if v["heldout_pair"] == p]),
                                     sum(v["heldout_pair"] == p for v in per_video)) for p in (True, False)}  # fmt: skip
    return {
        "character_kept": {"rate": segment_rate, "lo": lo, "hi": hi, "n": n_segments, "interval": "videos"},
        "videos_kept_whole": rate([v["kept"] == 1.0 for v in per_video]),
        "character_kept_by_kind": by_kind,  # (rate, lo, hi, videos): held-out colour-shape pairs', the others'
        "per_video": per_video,
        "seconds": times,
        "stage_a_share": times["plan"] / sum(times.values()),
    }


def main(args):
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    probe = metrics.AttributeProbe.load(embedded_path("probe", args.weights))
    pipe = load_embedded_pipeline(with_encoder=True, weights_dir=args.weights)
    window = manifest(args.weights).get("window")
    r = {"n": args.n, "n_ref": args.n_ref, "n_long": args.n_long}
    t_start = time.time()

    # 1. geometry
    r["geometry"] = geometry(pipe)

    # 2. text adherence on held-out prompts
    world = ShapesWorld(n=args.n, seed=args.seed, split="heldout", paraphrase=1.0)
    scenes, prompts = zip(*[world.scene(i) for i in range(args.n)])
    videos = generate(pipe, list(prompts), seed=args.seed)
    truths = [parse_caption(p) for p in prompts]
    hits = attribute_hits(probe, videos, truths)
    r["adherence"] = {k: rate(hits[k]) for k in ATTRS}
    r["adherence"]["all"] = rate([all(hits[k][i] for k in ATTRS) for i in range(args.n)])
    r["adherence"]["colour_breakdown"] = colour_breakdown(scenes, videos, probe)
    templates = [template_of(p) for p in prompts]
    r["adherence"]["colour_by_template"] = {
        t: rate([h for h, u in zip(hits["color"], templates) if u == t]) for t in HELDOUT_TEMPLATES
    }
    canonical = [caption(s) for s in scenes]  # same scenes, seeds and truths: only the wording differs
    hits_c = attribute_hits(probe, generate(pipe, canonical, seed=args.seed), truths)
    r["adherence_canonical"] = {k: rate(hits_c[k]) for k in ATTRS}
    # the same scenes in wording written after the training grammar was widened (never trained, never tuned on)
    fresh = [caption(s, np.random.default_rng([args.seed, 23, i]), "paraphrase", "fresh") for i, s in enumerate(scenes)]
    hits_f = attribute_hits(probe, generate(pipe, fresh, seed=args.seed), truths)
    r["adherence_fresh"] = {k: rate(hits_f[k]) for k in ATTRS}

    # 3. crispness against real renders of the same scenes, and the real-vs-real floor (other scenes, same split)
    real = [world[i]["frames"] for i in range(args.n)]
    hits_real = attribute_hits(probe, real, truths)  # the instrument: the probe on real renders of the same scenes
    r["probe_on_real"] = {k: rate(hits_real[k]) for k in ATTRS}
    r["frechet"] = frechet_scores(probe, videos, real, args.seed)
    r["sharpness"] = {"generated": float(np.mean([metrics.edge_sharpness(v) for v in videos])),
                      "real": float(np.mean([metrics.edge_sharpness(v) for v in real]))}  # fmt: skip
    r["flicker"] = {"generated": float(np.mean([metrics.temporal_flickering(v) for v in videos])),
                    "real": float(np.mean([metrics.temporal_flickering(v) for v in real]))}  # fmt: skip

    # 4a. the VAE: PSNR on held-out 8 s clips; the probe on reconstructions (2 s clips, last 2 s of 8 s clips)
    vae = vae_scores(pipe.vae, probe, args.n_vae, args.seed + 2)
    r["sharpness"].update(vae_reconstruction=vae.pop("sharpness_recon"), vae_real=vae.pop("sharpness_real"))
    r["vae"] = {**vae, "per_colour": vae_per_colour(pipe, probe, seed=args.seed)}

    # 4b. the encoder and the compressed plan: linear read-outs
    r["linear_probe"] = linear_probe_scores(pipe, seed=args.seed)

    # 4c. stage B given real plans (row 2's stage B sampler, so that only the plan's source differs)
    real_plan_videos = stage_b_on_real_plans(pipe, world, args.n_ref)
    h = attribute_hits(probe, real_plan_videos, [{k: getattr(scenes[i], k) for k in ATTRS} for i in range(args.n_ref)])
    r["stage_b_real_plans"] = {k: rate(h[k]) for k in ATTRS}
    r["sharpness"]["stage_b_real_plans"] = float(np.mean([metrics.edge_sharpness(v) for v in real_plan_videos]))

    # 5. reference transfer: layout and motion from the reference, colour and shape from the prompt
    r["transfer"] = transfer_scores(pipe, probe, args.n_ref, args.seed + 1, control=True)
    if pipe.config.transfer_replan > 0:  # the same references with the reference's plan as encoded (no stage A)
        r["transfer_as_encoded"] = transfer_scores(pipe, probe, args.n_ref, args.seed + 1, replan=0.0)

    # 6. one-minute videos: the character per 4 s segment; the wall time of each stage
    r["long"] = long_scores(pipe, probe, args.n_long, args.seed, window)

    # 7. the README's 2 s command, end to end in a fresh process
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time()
        subprocess.run([sys.executable, "-m", "semanticgen_core", "generate", "--quiet", "--prompt",
                        "a red circle moves to the right", "--seconds", "2", "--out", str(Path(tmp, "a.mp4"))],
                       check=True, env={**os.environ, **({"SEMANTICGEN_EMBEDDED_WEIGHTS": args.weights}
                                                         if args.weights else {})})  # fmt: skip
        r["cli_2s_seconds"] = time.time() - t0
    r["eval_seconds"] = time.time() - t_start
    print_table(r)
    if args.json:
        Path(args.json).write_text(json.dumps(r, indent=1))
    return r


def print_table(r: dict) -> None:
    g, a, v, lp, sb, tr, lg = (r[k] for k in ("geometry", "adherence", "vae", "linear_probe", "stage_b_real_plans",
                                             "transfer", "long"))  # fmt: skip
    fr, sh = r["frechet"], r["sharpness"]
    rows = [
        ("plan / stage-B tokens at 0.5 / 2 / 8 / 60 s", " / ".join(f"1/{1 / g[f'ours_{s}s']:.0f}"
                                                                  for s in ("0.5", "2", "8", "60")), "<= 1/16"),
        ("the paper's ratio (480x832, 24 fps VAE, Qwen 1.6 fps) at 2 / 10 / 60 s",
         " / ".join(f"1/{1 / g[f'paper_{s}s']:.0f}" for s in ("2", "10", "60")), "-"),
        ("text adherence: colour", fmt(a["color"]), ">= 95 %"),
        ("text adherence: shape", fmt(a["shape"]), ">= 90 %"),
        ("text adherence: motion", fmt(a["motion"]), ">= 90 %"),
        ("text adherence: all three", fmt(a["all"]), "-"),
        ("the same scenes with canonical captions (colour / shape / motion)",
         " / ".join(f"{r['adherence_canonical'][k]['rate']:.0%}" for k in ATTRS), "-"),
        ("the same scenes in fresh wording (FRESH_TEMPLATES, never trained; colour / shape / motion)",
         " / ".join(fmt(r["adherence_fresh"][k]) for k in ATTRS) if "adherence_fresh" in r else "not run", "-"),
        ("colour on held-out colour-shape / colour-motion pairs",
         " / ".join(fmt(a["colour_breakdown"]["by_kind"][k]) for k in ("color_shape", "color_motion")), "-"),
        ("shape on held-out colour-shape / colour-motion pairs", " / ".join(
            fmt(a["colour_breakdown"]["shape_by_kind"][k]) for k in ("color_shape", "color_motion"))
         if "shape_by_kind" in a["colour_breakdown"] else "not run", "-"),
        ("colour by held-out paraphrase template", ", ".join(f"'{t}' {v['rate']:.0%} (n={v['n']})"
                                                              for t, v in a["colour_by_template"].items()), "-"),
        ("commonest colour mistakes (true -> drawn: count)",
         ", ".join(f"{k}: {v}" for k, v in a["colour_breakdown"]["mistakes"].items()) or "none", "-"),
        ("shape mistakes (true -> drawn: count)",
         ", ".join(f"{k}: {v}" for k, v in a["colour_breakdown"].get("shape_mistakes", {}).items()) or "none", "-"),
        ("Frechet distance (probe features): generated vs real / real vs real",
         f"{fr['generated_vs_real']:.2f} / {fr['real_vs_real']:.2f} ({fr['generated_vs_real'] / fr['real_vs_real']:.1f}x)",
         "<= 2x"),
        ("edge sharpness: generated / real", f"{sh['generated']:.1f} / {sh['real']:.1f} "
                                             f"({sh['generated'] / sh['real'] - 1:+.0%})", "within 20 %"),
        ("edge sharpness where it is lost: VAE reconstructions / their real clips; stage B given real plans",
         f"{sh['vae_reconstruction']:.1f} / {sh['vae_real']:.1f} ({sh['vae_reconstruction'] / sh['vae_real'] - 1:+.0%});"
         f" {sh['stage_b_real_plans']:.1f} ({sh['stage_b_real_plans'] / sh['real'] - 1:+.0%} of real)", "-"),
        ("temporal flickering: generated / real", f"{r['flicker']['generated']:.4f} / {r['flicker']['real']:.4f}", "-"),
        ("the probe on real renders of the same scenes (colour / shape / motion)",
         " / ".join(f"{r['probe_on_real'][k]['rate']:.0%}" for k in ATTRS), "-"),
        ("VAE: PSNR on held-out 8 s clips (mean, min)", f"{v['psnr_8s_mean']:.1f} dB, {v['psnr_8s_min']:.1f} dB",
         ">= 30 dB"),
        ("VAE ceiling: probe on reconstructions, 2 s (colour / shape / motion)",
         " / ".join(f"{v['probe']['2s'][k]['rate']:.0%}" for k in ATTRS), "-"),
        ("VAE ceiling per colour: probe on reconstructions (object's mean RGB)",
         ", ".join(f"{c} {v['per_colour'][c]['probe']:.0%} ({', '.join(map(str, v['per_colour'][c]['rgb']))})"
                   for c in COLORS), "-"),
        ("VAE latents: blue-purple distance / the nearest other pair / the farthest pair",
         (lambda d: f"{d['blue-purple']:.0f} / {min(x for k, x in d.items() if k != 'blue-purple'):.0f} / "
                    f"{max(d.values()):.0f}")(v["per_colour"]["latent_distance"]), "-"),
        ("VAE ceiling: the same, last 2 s of 8 s clips", " / ".join(f"{v['probe']['8s_tail'][k]['rate']:.0%}"
                                                                     for k in ATTRS), "-"),
        *((f"{name}, linear read-out (colour / shape / motion / background; position RMSE)",
           " / ".join(f"{lp[f'{key}_{k}']['rate']:.0%}" for k in (*ATTRS, "background"))
           + f"; {lp[f'{key}_position_rmse_px']:.1f} px (new clips of training combinations: "
           + " / ".join(f"{lp[f'{key}_{k}_seen']['rate']:.0%}" for k in (*ATTRS, "background")) + ")", "-")
          for name, key in (("encoder features", "encoder"), ("compressed plan (k dims)", "plan"))),
        ("the plan's read-out on held-out clips' plans, sampled / stage A's plans for their captions (colour / shape "
         "/ motion)", " / ".join(f"{lp[f'plan_{k}_sampled']['rate']:.0%}" for k in ATTRS) + " ; " + " / ".join(
             f"{lp[f'plan_{k}_generated']['rate']:.0%}" for k in ATTRS) if "plan_shape_generated" in lp else "not run",
         "-"),
        ("stage B given real plans (colour / shape / motion)", " / ".join(f"{sb[k]['rate']:.0%}" for k in ATTRS), "-"),
        ("reference transfer keeps the motion", fmt(tr["motion_kept"]), ">= 95 %"),
        ("reference transfer takes the prompt's colour", fmt(tr["prompt_colour"]), ">= 90 %"),
        ("reference transfer takes the prompt's shape", fmt(tr["prompt_shape"]), "-"),
        ("reference transfer keeps the reference's background", fmt(tr["background_kept"]), "-"),
        ("frames with a trace of the reference's colour (real renders of the prompt; text-to-video of the prompt, "
         "same seeds, no reference)", f"{tr['reference_colour_trace_frames']:.0%} "
         f"({tr['reference_colour_trace_frames_real']:.0%}; {tr['reference_colour_trace_frames_t2v']:.0%}); excess "
         "{:+.1%} [{:+.1%}, {:+.1%}]".format(*tr["reference_colour_trace_excess"]), "none"),
        *([("the same references, the plan as encoded (no re-planning): motion / colour / shape / background; trace",
            (lambda t: " / ".join(f"{t[k]['rate']:.0%}" for k in ("motion_kept", "prompt_colour", "prompt_shape",
                                                                   "background_kept"))
             + f"; {t['reference_colour_trace_frames']:.0%}")(r["transfer_as_encoded"]), "-")]
          if "transfer_as_encoded" in r else []),
        ("60 s videos keep their character (4 s segments; interval: bootstrap over videos)",
         fmt(lg["character_kept"]), ">= 95 %"),
        ("60 s videos kept whole (every segment); segments kept on held-out colour-shape pairs / the others",
         fmt(lg["videos_kept_whole"]) + "; " + " / ".join("{:.0%} [{:.0%}, {:.0%}] ({} videos)".format(*v)
                                                          for v in lg["character_kept_by_kind"].values()), "-"),
        ("60 s: stage A's share of the wall time (plan / latents / decode s)",
         f"{lg['stage_a_share']:.1%} ({lg['seconds']['plan']:.1f} / {lg['seconds']['latents']:.1f} / "
         f"{lg['seconds']['decode']:.1f})", "<= 10 %"),
        ("2 s clip through the CLI, end to end", f"{r['cli_2s_seconds']:.1f} s", "<= 15 s"),
    ]  # fmt: skip
    print(f"\n| metric (n={r['n']} prompts, {r['n_ref']} references, {r['n_long']} x 60 s) | measured | target |")
    print("| --- | --- | --- |")
    for name, value, target in rows:
        print(f"| {name} | {value} | {target} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100, help="held-out prompts")
    p.add_argument("--n-ref", type=int, default=50, help="reference-transfer clips (and real-plan clips)")
    p.add_argument("--n-long", type=int, default=5, help="60 s videos")
    p.add_argument("--n-vae", type=int, default=100, help="clips for the VAE's PSNR and probe ceiling")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts and references")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--weights", default=None, help="a folder laid out like semanticgen_core/lab/weights/")
    p.add_argument(
        "--readout-only", action="store_true",
        help="only the linear read-outs of the encoder and the plan (row 4b; held-out and seen combinations), a minute",
    )  # fmt: skip
    p.add_argument("--long-only", action="store_true", help="only the 60 s videos (row 6), per video, ~16 s each")
    p.add_argument(
        "--composition-only", action="store_true",
        help="only the held-out prompts composed with their shape (A AND B, compose.py) against as written, minutes",
    )  # fmt: skip
    args = p.parse_args()
    if args.long_only:
        torch.set_num_threads(args.threads)
        pipe = load_embedded_pipeline(with_encoder=False, weights_dir=args.weights)
        probe = metrics.AttributeProbe.load(embedded_path("probe", args.weights))
        res = long_scores(pipe, probe, args.n_long, args.seed, manifest(args.weights).get("window"))
        print(json.dumps(res, indent=1))
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=1))
    elif args.composition_only:
        torch.set_num_threads(args.threads)
        pipe = load_embedded_pipeline(with_encoder=False, weights_dir=args.weights)
        res = composition_scores(pipe, metrics.AttributeProbe.load(embedded_path("probe", args.weights)), args.n)
        print(json.dumps(res, indent=1))
    elif args.readout_only:
        torch.set_num_threads(args.threads)
        scores = linear_probe_scores(
            load_embedded_pipeline(with_encoder=True, weights_dir=args.weights), seed=args.seed
        )
        print(json.dumps({k: v["rate"] if isinstance(v, dict) else v for k, v in scores.items()}, indent=1))
    else:
        main(args)
