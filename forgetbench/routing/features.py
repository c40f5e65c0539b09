"""What the classifier and the gate route on: the frozen base model's mean hidden state of a prompt.

The base's features never change (adapters off), so a centroid or gate fitted after one task still
applies to the inputs of the next; a router on the adapted model's features would drift with them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from peft import PeftModel
from transformers import PreTrainedTokenizerBase

MAX_TOKENS = 512  # a context longer than this (many few-shot examples) is routed on its first tokens


def pooled_hidden(
    model: PeftModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    pool: torch.Tensor,
    adapters_off: Callable[[], contextlib.AbstractContextManager] | None = None,
):
    """Mean over the ``pool`` positions of the base's last hidden state (encoder's, for an
    encoder-decoder), L2-normalised, with every adapter off (``adapters_off()``, default peft's
    ``disable_adapter``, which on leaving makes every active adapter trainable again). Shape: (batch, hidden)."""
    base = model.get_base_model()
    with torch.no_grad(), (adapters_off or model.disable_adapter)():
        if base.config.is_encoder_decoder:
            hidden = base.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        else:
            out = base(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
            hidden = out.hidden_states[-1]
    weights = pool.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    return F.normalize(mean.float(), dim=-1)


def prompt_features(
    model: PeftModel, tokenizer: PreTrainedTokenizerBase, texts: list[str], batch_size: int = 64
) -> torch.Tensor:
    """:func:`pooled_hidden` of each text's tokens, in batches; the model's train/eval mode is kept."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    size = batch_size if tokenizer.pad_token is not None else 1  # a tokenizer without padding goes one by one
    features = []
    try:
        for start in range(0, len(texts), size):
            batch = tokenizer(
                texts[start : start + size],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                add_special_tokens=True,
            ).to(device)
            features.append(pooled_hidden(model, batch.input_ids, batch.attention_mask, batch.attention_mask))
    finally:
        model.train(was_training)
    return torch.cat(features) if features else torch.zeros(0)
