"""Where in the network a run forgot: each module group's weight change, and the general score with
only that group fine-tuned (``alone``) or only that group put back to the base weights (``restored``).

A group is the embeddings (with a tied output layer), one layer's attention, MLP or norms, or the
rest (final norm); names follow transformers' Llama, BLOOM, GPT-2 and T5 modules, an encoder-decoder's
layers prefixed by their stack. Moved here from experiments/forgetting_by_layer.py, which now calls it.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch

Weights = dict[str, torch.Tensor]

EMBEDDINGS = ("embed_tokens", "lm_head", "shared", "word_embeddings", "wte", "wpe", "embed_positions")


def _kind(parts: list[str]) -> str:
    """attention, mlp or norms, from a layer's module names (lower case); norms first: Llama's
    ``post_attention_layernorm`` is a norm."""
    if any("norm" in p or p.startswith("ln_") for p in parts):
        return "norms"
    if any("attn" in p or "attention" in p for p in parts):
        return "attention"
    if any("mlp" in p or p in ("densereludense", "ffn", "feed_forward") for p in parts):
        return "mlp"
    return "other"


def module_group(name: str) -> str:
    """The group a weight belongs to, e.g. ``layer 0 attention``, ``decoder layer 3 mlp``, ``embeddings``."""
    parts = name.split(".")
    lowered = [p.lower() for p in parts]
    if any(p in EMBEDDINGS or p.startswith("word_embeddings") for p in lowered):
        return "embeddings"
    index = next((i for i, p in enumerate(parts) if p.isdigit()), None)
    if index is None:
        return "final norm" if _kind(lowered) == "norms" else "other"
    stack = next((p for p in ("encoder", "decoder") if p in lowered[:index]), "")
    return f"{stack + ' ' if stack else ''}layer {parts[index]} {_kind(lowered[index + 1 :])}"


def groups_of(weights: Weights) -> dict[str, list[str]]:
    """Each group's weight names, in the model's order."""
    groups: dict[str, list[str]] = {}
    for name in weights:
        groups.setdefault(module_group(name), []).append(name)
    return groups


def relative_change(base: Weights, tuned: Weights, names: list[str]) -> float:
    """||W_tuned − W_base|| / ||W_base||, Frobenius over the group's weights."""
    change = sum(float((tuned[n].float() - base[n].float()).pow(2).sum()) for n in names) ** 0.5
    size = sum(float(base[n].float().pow(2).sum()) for n in names) ** 0.5
    return change / size if size else float("nan")


def restore_table(base: Weights, tuned: Weights, score: Callable[[Weights], float]) -> pd.DataFrame:
    """Per module group: its relative change, the score of the base with only it fine-tuned (``alone``)
    and of the fine-tuned model with only it restored (``restored``); ``score(weights)`` is the general
    score of a model holding ``weights``. The first row is the whole model: ``alone`` = the fine-tuned
    model's score, ``restored`` = the base's. ``share of loss restored``: (restored − fine-tuned) /
    (base − fine-tuned)."""
    whole = score(tuned)
    rows = [
        {
            "group": "(whole model)",
            "rel. change": relative_change(base, tuned, list(base)),
            "alone": whole,
            "restored": score(base),
        }
    ]
    for group, names in groups_of(base).items():
        changed = {n: tuned[n] for n in names}
        rows.append(
            {
                "group": group,
                "rel. change": relative_change(base, tuned, names),
                "alone": score({**base, **changed}),
                "restored": score({**tuned, **{n: base[n] for n in names}}),
            }
        )
    table = pd.DataFrame(rows)
    loss = rows[0]["restored"] - whole
    table["share of loss restored"] = (table["restored"] - whole) / loss if loss else float("nan")
    return table
