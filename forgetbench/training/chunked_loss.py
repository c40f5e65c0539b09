"""The language-model loss without the full logits: the output layer and cross-entropy in chunks.

BLOOM's and mT5's vocabularies have about 250,000 entries: a micro-batch of 16 × 512 tokens has
logits of 16 × 512 × 250,880 floats, 8.2 GB in fp32 (and again for their gradient). Here the model
runs up to its output layer, and the output layer and the cross-entropy are applied to chunks of
``chunk_tokens`` labelled tokens at a time; each chunk is recomputed in the backward pass
(activation checkpointing), so at most one chunk's logits exist at any moment.

Written here rather than taken from Liger: Liger's fused linear cross-entropy is a Triton kernel
(GPU only, not among our dependencies, and the GPU machines are offline), while this is plain
PyTorch on any device; it computes the same mean cross-entropy over the labelled tokens as the
models' own loss (``tests/test_chunked_loss.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.nn import functional as F
from torch.utils.checkpoint import checkpoint

from forgetbench.errors import ForgetbenchError

IGNORE = -100  # labels of tokens without loss (prompt, padding), as DataCollatorForSeq2Seq pads them


def chunked_lm_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    chunk_tokens: int = 4096,
    forward: torch.nn.Module | None = None,
) -> torch.Tensor:
    """The mean cross-entropy over ``batch["labels"]`` (−100: no loss), as ``model(**batch).loss``.

    Decoder-only models predict token t + 1 from position t (labels shifted by one, as in
    transformers); encoder-decoder models predict each label at its own decoder position.
    ``forward`` is what is called (``model``'s DDP wrapper in a multi-process run; default ``model``).
    """
    head = output_layer(model)
    labels = batch["labels"]
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    if model.config.is_encoder_decoder:
        if "decoder_input_ids" not in inputs:  # (a packed batch brings its own, shifted per example)
            inputs["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=labels)
        targets = labels
    else:
        targets = F.pad(labels[:, 1:], (0, 1), value=IGNORE)  # position t predicts token t + 1
    with _output_layer_skipped(head):
        hidden = (model if forward is None else forward)(
            **inputs
        ).logits  # the output layer's input: what it would have turned into logits
    keep = targets.reshape(-1) != IGNORE
    hidden, targets = hidden.reshape(-1, hidden.shape[-1])[keep], targets.reshape(-1)[keep]
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, len(targets), chunk_tokens):
        chunk = slice(start, start + chunk_tokens)
        total = total + checkpoint(
            _chunk_loss_sum, hidden[chunk], head.weight, head.bias, targets[chunk], use_reentrant=False
        )
    return total / max(len(targets), 1)


def _chunk_loss_sum(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor):
    logits = F.linear(hidden, weight, bias).float()  # log-softmax in fp32, as the models' own loss
    return F.cross_entropy(logits, targets, reduction="sum")


def output_layer(model: torch.nn.Module) -> torch.nn.Linear:
    """The model's output layer, checked to be a plain linear map applied last (no logit soft-capping)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    capped = getattr(model.config, "final_logit_softcapping", None)
    if not isinstance(head, torch.nn.Linear) or capped:
        raise ForgetbenchError(
            f"train.fused_loss=true needs a plain linear output layer applied last; {type(model).__name__} "
            "has none; set train.fused_loss=false"
        )
    return head


@contextlib.contextmanager
def _output_layer_skipped(head: torch.nn.Linear) -> Iterator[None]:
    """Within the block the output layer returns its input, so the model's ``logits`` are hidden states."""
    head.forward = lambda hidden: hidden
    try:
        yield
    finally:
        del head.forward  # the class's forward again
