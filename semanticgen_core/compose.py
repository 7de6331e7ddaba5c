"""Prompt composition: "A AND B AND C :0.5" guides with every part at once (Composable Diffusion, Liu et al. 2022).

    v = v_u + cfg (v_A - v_u) + sum_k cfg w_k (v_k - v_u)        (w_k: a part's " :w" suffix, default 1)

The parts are a product of experts: each pulls the sample towards what its text shows. A model that draws an
attribute combination never seen in training wrongly (the shapes lab: "a red triangle" comes out round) can be
told the attribute again on its own, "a red triangle moves left AND a triangle moves left :0.5" (README, "Prompt
composition"). " AND " in capitals separates parts (the A1111 / ComfyUI convention); the first part is the prompt.
"""

from __future__ import annotations

import re

import torch

SEPARATOR = " AND "
_WEIGHT = re.compile(r"(.*?)\s*:\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*")


def split_prompt(prompt: str) -> tuple[str, list[tuple[str, float]]]:
    """ "A AND B :0.5" -> ("A", [("B", 0.5)]); a prompt without " AND " -> (prompt, [])."""
    first, *rest = prompt.split(SEPARATOR)
    if not rest:  # a plain prompt (the empty one too) is used as written
        return prompt, []
    parts = []
    for text in rest:
        m = _WEIGHT.fullmatch(text)
        text, weight = (m.group(1), float(m.group(2))) if m else (text.strip(), 1.0)
        if not text.strip():
            raise ValueError(
                f"prompt {prompt!r}: an empty part around {SEPARATOR.strip()!r}; write 'A AND B [:weight]'"
            )
        parts.append((text.strip(), weight))
    if not first.strip():
        raise ValueError(f"prompt {prompt!r}: nothing before the first {SEPARATOR.strip()!r}")
    return first.strip(), parts


def encode_parts(encode, parts: list[list[tuple[str, float]]]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per prompt its parts -> (contexts [B, K, S, D], weights [B, K]) with `encode(texts) -> [N, S, D]`; prompts
    with fewer than K parts are padded with the empty prompt at weight 0. None when no prompt has a part."""
    k = max((len(p) for p in parts), default=0)
    if k == 0:
        return None
    texts = [t for p in parts for t, _ in p + [("", 0.0)] * (k - len(p))]
    weights = torch.tensor([[w for _, w in p + [("", 0.0)] * (k - len(p))] for p in parts], dtype=torch.float32)
    ctx = encode(texts)
    return ctx.reshape(len(parts), k, *ctx.shape[1:]), weights.to(ctx.device)
