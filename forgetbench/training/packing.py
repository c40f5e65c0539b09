"""Packed micro-batches (``train.packing``): whole examples fill rows of ``max_length`` tokens, and
each example attends only to itself.

Instruction examples are short (~150 tokens), so a micro-batch padded to its longest example is
mostly padding. Packing puts several examples side by side in one row. What keeps them apart
depends on the model family (an unknown family is refused, never trained with wrong attention):

- **positions** (Llama, Qwen2, Mistral): the position ids restart at each example and no 2D mask is
  given. transformers then reads the examples' boundaries from the position ids, and builds a
  block-causal mask (eager, sdpa, flex) or passes sequence offsets to flash-attention's varlen
  kernel: its own padding-free format, the one ``DataCollatorWithFlattening`` makes.
- **alibi** (BLOOM): BLOOM takes no position ids; it builds its ALiBi bias from the 2D mask's
  running count. It gets a 4D additive block-causal mask instead (transformers passes a 4D mask
  through as it is), and during the forward pass ``BloomModel.build_alibi_tensor`` is swapped for
  one that reads each example's own positions. The scores are then those of the example alone,
  not only equal up to softmax's shift invariance: with positions counted across the row, a bias
  of 300 in bf16 would keep no bits for the differences between neighbouring keys.
- **encoder_decoder** (T5, mT5): example i's prompt goes in an encoder row, its response in the
  matching decoder row, with 4D masks: block-diagonal in the encoder, block-causal in the decoder,
  and each response sees only its own prompt. T5's relative position bias depends on k - q only,
  so it is the same inside a row as alone. The encoder is called on its own, because
  ``T5ForConditionalGeneration`` uses one mask for both encoder self-attention and cross-attention.
  One process only: under DDP or FSDP the separate encoder call would bypass the wrapper.

The first token of each example is never predicted (alone, nothing comes before it), so its label
is ignored in the row. The step's loss is the mean over all the step's labelled tokens, each
micro-batch weighted by its share of them, so the grouping into rows does not change it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from forgetbench.errors import ForgetbenchError

IGNORE = -100  # the label of a token without loss
ISOLATION = {
    "llama": "positions",
    "qwen2": "positions",
    "mistral": "positions",
    "bloom": "alibi",
    "t5": "encoder_decoder",
    "mt5": "encoder_decoder",
}


@dataclass
class MicroBatch:
    """One forward pass of a step.

    Attributes:
        batch: tensors (see :func:`forward_inputs` for what the model is given).
        weight: this micro-batch's share of the step's loss (the shares of a step sum to 1).
        tokens: real input tokens (no padding), for the tokens/s count.
    """

    batch: dict[str, torch.Tensor]
    weight: float
    tokens: int


def isolation(model: PreTrainedModel, processes: int = 1) -> str:
    """How ``model``'s family keeps packed examples apart, or a one-line refusal."""
    model_type = model.config.model_type
    if model_type not in ISOLATION:
        raise ForgetbenchError(
            f"train.packing=true: no tested way to keep packed examples apart in a {model_type!r} model "
            f"(known: {sorted(ISOLATION)}); set train.packing=false"
        )
    if ISOLATION[model_type] == "encoder_decoder" and processes > 1:
        raise ForgetbenchError(
            "train.packing=true for an encoder-decoder model runs on one process only (its encoder is called "
            "outside the DDP/FSDP wrapper); set train.packing=false for a multi-process run"
        )
    return ISOLATION[model_type]


def pack_rows(lengths: list[tuple[int, int]], capacity: int) -> list[list[int]]:
    """Example indices grouped into rows whose lengths (both sides, for encoder-decoder) fit ``capacity``.

    First-fit decreasing: near-optimal for bin packing and deterministic. Examples are already
    truncated to ``capacity``, so each fits a row of its own.
    """
    rows: list[list[int]] = []
    used: list[tuple[int, int]] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-max(lengths[i]), i)):
        first, second = lengths[index]
        for row, (a, b) in enumerate(used):
            if a + first <= capacity and b + second <= capacity:
                rows[row].append(index)
                used[row] = (a + first, b + second)
                break
        else:
            rows.append([index])
            used.append((first, second))
    return [sorted(row) for row in rows]


def split_step(
    examples: list[dict], family: str, capacity: int, rows_per_batch: int, pad_id: int, start_id: int, processes: int
) -> list[MicroBatch]:
    """One optimizer step's examples (``input_ids``/``labels`` lists) as packed micro-batches.

    Rows of at most ``capacity`` tokens, at most ``rows_per_batch`` rows a micro-batch; the number of
    micro-batches is a multiple of ``processes`` (rows dealt round-robin, longest first), so every
    process runs as many as the others.
    """
    encoder_decoder = family == "encoder_decoder"
    lengths = [(len(e["input_ids"]), len(e["labels"]) if encoder_decoder else 0) for e in examples]
    rows = pack_rows(lengths, capacity)
    rows.sort(key=lambda row: -sum(lengths[i][0] for i in row))
    count = math.ceil(math.ceil(len(rows) / rows_per_batch) / processes) * processes
    if len(rows) < count:
        raise ForgetbenchError(
            f"a step's {len(examples)} examples fill {len(rows)} packed rows, fewer than the {processes} processes; "
            "raise train.effective_batch_size or set train.packing=false"
        )
    groups = [rows[k::count] for k in range(count)]
    labelled = sum(_labelled(examples[i], encoder_decoder) for row in rows for i in row)
    batches = []
    for group in groups:
        rows_of = [[examples[i] for i in row] for row in group]
        batch = _encoder_decoder_rows(rows_of, pad_id, start_id) if encoder_decoder else _decoder_rows(rows_of, pad_id)
        share = sum(_labelled(e, encoder_decoder) for row in rows_of for e in row) / max(labelled, 1)
        batches.append(MicroBatch(batch, share, sum(len(e["input_ids"]) for row in rows_of for e in row)))
    return batches


def _labelled(example: dict, encoder_decoder: bool) -> int:
    """Tokens with loss: alone, a decoder never predicts its first token."""
    labels = example["labels"] if encoder_decoder else example["labels"][1:]
    return sum(label != IGNORE for label in labels)


def _decoder_rows(rows: list[list[dict]], pad_id: int) -> dict[str, torch.Tensor]:
    """input_ids, labels and per-example position_ids; the padding after the last example is an example
    of its own (positions from 0), so it is kept apart as the others are."""
    ids, labels, positions = [], [], []
    for row in rows:
        ids.append([t for e in row for t in e["input_ids"]])
        labels.append([t for e in row for t in [IGNORE, *e["labels"][1:]]])
        positions.append([p for e in row for p in range(len(e["input_ids"]))])
    width = max(map(len, ids))
    for row_ids, row_labels, row_positions in zip(ids, labels, positions):
        pad = width - len(row_ids)
        row_ids += [pad_id] * pad
        row_labels += [IGNORE] * pad
        row_positions += range(pad)
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "position_ids": torch.tensor(positions)}


def _encoder_decoder_rows(rows: list[list[dict]], pad_id: int, start_id: int) -> dict[str, torch.Tensor]:
    """Encoder rows of prompts, decoder rows of responses (each shifted right behind the start token,
    as the model does alone) and the example each token belongs to on each side (padding: -1)."""
    sides = {"input_ids": [], "document_ids": [], "decoder_input_ids": [], "labels": [], "decoder_document_ids": []}
    for row in rows:
        sides["input_ids"].append([t for e in row for t in e["input_ids"]])
        sides["document_ids"].append([d for d, e in enumerate(row) for _ in e["input_ids"]])
        sides["labels"].append([t for e in row for t in e["labels"]])
        shifted = [[start_id, *(pad_id if t == IGNORE else t for t in e["labels"][:-1])] for e in row]
        sides["decoder_input_ids"].append([t for s in shifted for t in s])
        sides["decoder_document_ids"].append([d for d, e in enumerate(row) for _ in e["labels"]])
    fill = {"input_ids": pad_id, "document_ids": -1, "decoder_input_ids": pad_id, "labels": IGNORE}
    fill["decoder_document_ids"] = -1
    for key, rows_of_side in sides.items():
        width = max(map(len, rows_of_side))
        for row in rows_of_side:
            row += [fill[key]] * (width - len(row))
    return {key: torch.tensor(value) for key, value in sides.items()}


@contextlib.contextmanager
def forward_inputs(model: PreTrainedModel, batch: dict[str, torch.Tensor], family: str) -> Iterator[dict]:
    """What the model's forward pass takes for a packed ``batch``, with the family's isolation in force."""
    dtype = model.dtype
    if family == "positions":
        yield {**batch, "use_cache": False}  # a cache would switch transformers' packed-sequence detection off
    elif family == "alibi":
        positions = batch["position_ids"]
        documents = (positions == 0).cumsum(-1)
        inputs = {"input_ids": batch["input_ids"], "labels": batch["labels"], "use_cache": False}
        inputs["attention_mask"] = additive_mask(documents, documents, causal=True, dtype=dtype)
        with _alibi_from_positions(model, positions):
            yield inputs
    else:
        documents, decoder_documents = batch["document_ids"], batch["decoder_document_ids"]
        encoder_mask = additive_mask(documents, documents, causal=False, dtype=dtype)
        encoded = model.get_encoder()(input_ids=batch["input_ids"], attention_mask=encoder_mask)
        padding = decoder_documents[:, :, None] == -1  # padding queries see every key: no row of the mask is empty
        cross = additive_mask(decoder_documents, documents, causal=False, dtype=dtype, also=padding)
        yield {
            "encoder_outputs": encoded,
            "attention_mask": cross,
            "decoder_input_ids": batch["decoder_input_ids"],
            "decoder_attention_mask": additive_mask(decoder_documents, decoder_documents, causal=True, dtype=dtype),
            "labels": batch["labels"],
        }


def additive_mask(
    query_documents: torch.Tensor,
    key_documents: torch.Tensor,
    causal: bool,
    dtype: torch.dtype,
    also: torch.Tensor | None = None,
) -> torch.Tensor:
    """(rows, 1, queries, keys): 0 where a query may see a key (same example; earlier or itself when
    ``causal``; or ``also``), the dtype's lowest value elsewhere (a float mask keeps a fully masked row
    finite)."""
    allowed = query_documents[:, :, None] == key_documents[:, None, :]
    if causal:
        allowed &= torch.ones(allowed.shape[1:], dtype=torch.bool, device=allowed.device).tril()
    if also is not None:
        allowed |= also
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    return mask.masked_fill(~allowed, torch.finfo(dtype).min)[:, None]


@contextlib.contextmanager
def _alibi_from_positions(model: PreTrainedModel, positions: torch.Tensor) -> Iterator[None]:
    """Within the block, the BLOOM model's ALiBi bias uses each token's position in its own example."""
    bloom = next(m for m in model.modules() if type(m).__name__ == "BloomModel")
    original = bloom.build_alibi_tensor

    def build(attention_mask: torch.Tensor, num_heads: int, dtype: torch.dtype) -> torch.Tensor:
        # the slopes are the bias one position in: build_alibi_tensor of a two-token row, at position 1
        ones = torch.ones(1, 2, dtype=torch.long, device=positions.device)
        slopes = original(ones, num_heads, torch.float32)[:, 0, 1]
        alibi = slopes[None, :, None] * positions[:, None, :].float()  # (rows, heads, keys)
        return alibi.reshape(-1, 1, positions.shape[-1]).to(dtype)

    bloom.build_alibi_tensor = build
    try:
        yield
    finally:
        del bloom.build_alibi_tensor  # the class's method again
