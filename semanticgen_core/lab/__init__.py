"""The shapes-world laboratory: a procedural text-video world (`world`), its metrics and attribute probe
(`metrics`), and the embedded model trained on it (`embedded`, weights in `weights/`).

It lives apart from the paper's model (the rest of `semanticgen_core`): nothing outside `lab/` imports it except the
CLI's and nodes' default model, the build (`train/embedded.py`, `train/pretrain.py`) and the benchmarks.
"""
