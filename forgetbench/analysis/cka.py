"""Representation drift: linear CKA between the base model's and each step's hidden states, per layer.

Linear CKA (Kornblith et al. 2019) of two representations X (n × p) and Y (n × q) of the same n items,
each column centred: CKA = ||Yᵀ X||_F² / (||Xᵀ X||_F · ||Yᵀ Y||_F). It is 1 for identical states (and
for any rotation or scaling of them) and falls as the layer's view of the items changes.
"""

from __future__ import annotations

import pandas as pd
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of ``x`` (n × p) and ``y`` (n × q), rows the same items."""
    x = (x - x.mean(0)).double()
    y = (y - y.mean(0)).double()
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2
    return float(cross / (torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y)))


@torch.no_grad()
def layer_states(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], batch_size: int = 16
) -> dict[str, torch.Tensor]:
    """Each layer's representation of each prompt (items × hidden): the mean of its hidden states over
    the prompt's tokens. An encoder-decoder's encoder layers see the prompt; its decoder layers, the
    first decoder position (what it reads of the prompt before answering)."""
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start : start + batch_size], return_tensors="pt", padding=True).to(device)
        mask = batch["attention_mask"].unsqueeze(-1).float()
        if model.config.is_encoder_decoder:
            first = torch.full((mask.shape[0], 1), model.config.decoder_start_token_id, device=device)
            result = model(**batch, decoder_input_ids=first, output_hidden_states=True)
            named = [(_name("encoder ", i), h, mask) for i, h in enumerate(result.encoder_hidden_states)]
            named += [(_name("decoder ", i), h, None) for i, h in enumerate(result.decoder_hidden_states)]
        else:
            result = model(**batch, output_hidden_states=True)
            named = [(_name("", i), h, mask) for i, h in enumerate(result.hidden_states)]
        for name, hidden, weights in named:
            pooled = hidden[:, 0] if weights is None else (hidden * weights).sum(1) / weights.sum(1)
            out.setdefault(name, []).append(pooled.float().cpu())
    return {name: torch.cat(parts) for name, parts in out.items()}


def _name(stack: str, index: int) -> str:
    """transformers' hidden_states[0] is the embeddings' output, [i] layer i − 1's (the names of :mod:`.where`)."""
    return f"{stack}embeddings" if index == 0 else f"{stack}layer {index - 1} output"


def drift_table(base: dict[str, torch.Tensor], steps: dict[int, dict[str, torch.Tensor]]) -> pd.DataFrame:
    """Linear CKA of each layer's states at each step with the base model's."""
    rows = [
        {"layer": layer, "step": step, "cka": linear_cka(base[layer], states[layer])}
        for step, states in sorted(steps.items())
        for layer in base
    ]
    return pd.DataFrame(rows)
