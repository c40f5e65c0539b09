"""Log-likelihoods of continuations, each context computed once for all its continuations.

The fast engine's forward passes (lm-eval's ``Instance``s never reach this module: it takes
token ids and returns numbers). lm-eval's HF backend runs one row per request (context and
continuation together), so the four answers of a question pay for its context four times, and
its seq2seq backend runs the encoder once per answer. Here:

- decoder-only: one pass over the context, left-padded, keeps its KV cache and only the last
  position's logits (the first continuation token's distribution); the cache is then repeated
  for each continuation and one more pass scores the rest of every continuation. Positions
  continue from each context's real length, so left padding changes nothing: ``position_ids``
  where the model takes them, and BLOOM's ALiBi, which counts positions from the mask.
- encoder-decoder: the encoder runs once per context; its states are repeated for each
  continuation, and the continuations go through the decoder.

The continuation pass is batched by the continuations' own lengths (:func:`by_length`), not by
their contexts': padded to the longest of a context batch, real MMLU answer texts ran about two
positions for every real token (tests/test_smollm2.py counts both), and that pass is most of a
cloze task's time. One-token
continuations (answer letters) need no second pass at all. Contexts run in bands of similar
length too; their keys and values are then padded to one length (which costs attention a
little, not the linear layers) so that all continuations of a batch, whatever their contexts'
lengths, are chunked together: on a CPU, a forward pass over a few rows costs about as much as
one over 30, streaming the weights. :class:`Positions` counts the positions run against the
real tokens in each pass.

Log-softmax is taken in fp32 at the scored positions only; ``is_greedy`` is lm-eval's
definition (every continuation token is the argmax at its position). Batches are filled with
contexts up to a token budget, longest first; an out-of-memory error halves the budget and
retries the batch. No result depends on the budget beyond floating-point rounding.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache
from transformers.modeling_outputs import BaseModelOutput

log = logging.getLogger(__name__)


@dataclass
class ContextGroup:
    """One context and every continuation scored after it (``rows``: the requests' indices)."""

    context: tuple[int, ...]
    continuations: list[list[int]] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)

    def cost(self) -> int:
        """Tokens through the model for this group: its context, then each continuation
        attending to the context."""
        longest = max(len(c) for c in self.continuations)
        return len(self.context) + len(self.continuations) * (len(self.context) + longest)


def group_by_context(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[ContextGroup]:
    """Requests ``(context tokens, continuation tokens)`` grouped by context, longest context first
    (so contexts of similar length share a batch, and an out-of-memory error comes at once, not at
    the end), then costliest first."""
    groups: dict[tuple[int, ...], ContextGroup] = {}
    for row, (context, continuation) in enumerate(pairs):
        group = groups.setdefault(tuple(context), ContextGroup(tuple(context)))
        group.continuations.append(list(continuation))
        group.rows.append(row)
    return sorted(groups.values(), key=lambda g: (-len(g.context), -g.cost(), g.context))


# a batch of contexts, or a chunk of continuations, runs at most this many positions per real token
# (see by_length and ContextScorer._batches)
PADDING_SLACK = 1.15


def by_length(
    lengths: Sequence[int], slack: float = PADDING_SLACK, budget: int | None = None, attended: int = 0
) -> list[list[int]]:
    """Indices of ``lengths`` in chunks of similar length, longest first: each chunk, padded to its
    longest, runs at most ``slack`` positions per real one; with ``budget``, it also keeps
    ``rows × (attended + longest)`` within it (each row attends to ``attended`` positions before
    its own). At least one index per chunk.

    Greedy over the lengths in descending order: a length joins the current chunk while both still
    hold, else it starts a new one. (The chunks are few: one per band of lengths within a factor of
    about ``slack``, more only where the budget cuts.)
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    chunks: list[list[int]] = []
    real = 0
    for i in order:
        if chunks:
            rows, longest = len(chunks[-1]) + 1, lengths[chunks[-1][0]]
            padded = rows * longest <= slack * (real + lengths[i])
            if padded and (budget is None or rows * (attended + longest) <= budget):
                chunks[-1].append(i)
                real += lengths[i]
                continue
        chunks.append([i])
        real = lengths[i]
    return chunks


@dataclass
class Positions:
    """Positions through the model, real (tokens) and run (tokens and padding), per pass: the
    context pass (decoder-only: the contexts; encoder-decoder: the encoder) and the continuation
    pass (decoder-only: continuation tokens 1..n-1 after the cached context; encoder-decoder: the
    decoder). ``run / real`` is what padding costs."""

    context_real: int = 0
    context_run: int = 0
    continuation_real: int = 0
    continuation_run: int = 0

    def add(self, which: str, rows: list[list[int]]) -> None:
        """Count one padded batch of ``rows`` in pass ``which`` (``context`` or ``continuation``)."""
        setattr(self, f"{which}_real", getattr(self, f"{which}_real") + sum(len(r) for r in rows))
        setattr(self, f"{which}_run", getattr(self, f"{which}_run") + len(rows) * max(len(r) for r in rows))


@dataclass
class Timer:
    """Seconds spent in the model's forward passes (synchronised on a GPU, so they are real)."""

    model: float = 0.0

    def forward(self, device: torch.device, call: Callable, /, **kwargs):
        """``call(**kwargs)``, timed."""
        start = time.perf_counter()
        out = call(**kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        self.model += time.perf_counter() - start
        return out


class ContextScorer:
    """Scores continuations for one model.

    Args:
        model: a causal or encoder-decoder transformers model, in eval mode.
        pad_token_id: the id used for padding (masked out, never scored).
        token_budget: tokens through the model per batch (see :meth:`ContextGroup.cost`); halved
            on an out-of-memory error.
        timer: where forward-pass seconds are added.

    Attributes:
        positions: the positions run and real since this scorer was made (see :class:`Positions`).
    """

    def __init__(self, model, pad_token_id: int, token_budget: int, timer: Timer) -> None:
        self.model = model
        self.pad = pad_token_id
        self.token_budget = token_budget
        self.timer = timer
        self.positions = Positions()
        self.seq2seq = bool(model.config.is_encoder_decoder)
        parameters = inspect.signature(model.forward).parameters
        self._takes_positions = "position_ids" in parameters
        self._takes_logits_to_keep = "logits_to_keep" in parameters
        # transformers 5 renamed the KV cache's argument and output field "cache" (past_key_values is
        # deprecated, with a warning on every run, and goes in 5.40); 4.x knows only past_key_values
        self._cache_name = "cache" if "cache" in parameters else "past_key_values"

    @torch.no_grad()
    def score(self, groups: list[ContextGroup], n_rows: int) -> list[tuple[float, bool]]:
        """``(log-likelihood, is_greedy)`` for every request of ``groups``, in request order."""
        results: list[tuple[float, bool] | None] = [None] * n_rows
        for batch in self._batches([part for group in groups for part in self._fitting(group)]):
            for group, scores in zip(batch, self._score_batch(batch), strict=True):
                for row, result in zip(group.rows, scores, strict=True):
                    results[row] = result
        return results  # type: ignore[return-value]

    def _fitting(self, group: ContextGroup) -> list[ContextGroup]:
        """``group``, or its continuations split (longest first) into groups of the same context that
        each fit the budget: lm-eval's rolling windows (perplexity tasks) all share one context, the
        prefix token, and 300 texts of up to a few hundred tokens in one batch would hold their
        logits for every position at once (tens of GB for a 49k-word vocabulary)."""
        if group.cost() <= self.token_budget or len(group.continuations) == 1:
            return [group]
        order = sorted(range(len(group.continuations)), key=lambda i: (-len(group.continuations[i]), i))
        parts: list[ContextGroup] = []
        for i in order:
            # longest first: a part's first continuation is its longest, which its padding follows
            fits = (
                parts
                and len(group.context)
                + (len(parts[-1].rows) + 1) * (len(group.context) + len(parts[-1].continuations[0]))
                <= self.token_budget
            )
            if not fits:
                parts.append(ContextGroup(group.context))
            parts[-1].continuations.append(group.continuations[i])
            parts[-1].rows.append(group.rows[i])
        return parts

    def _batches(self, groups: list[ContextGroup]) -> Iterator[list[ContextGroup]]:
        """Groups taken in order (longest context first) while their contexts, padded to the longest,
        fit the budget (at least one group). Inside a batch, contexts run in bands of similar length
        and continuations in chunks of similar length, each chunk within the budget
        (:func:`by_length`): the peak holds the batch's keys and values and one chunk's."""
        start = 0
        while start < len(groups):
            longest = len(groups[start].context)
            end = start + 1
            while end < len(groups) and (end - start + 1) * longest <= self.token_budget:
                end += 1
            yield groups[start:end]
            start = end

    def _score_batch(self, batch: list[ContextGroup]) -> list[list[tuple[float, bool]]]:
        """One batch's scores; out of memory, the budget is halved (for the batches still to
        come) and this batch is scored in two halves, each retried the same way."""
        try:
            return self._seq2seq(batch) if self.seq2seq else self._causal(batch)
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            self.token_budget = max(self.token_budget // 2, 1)
            torch.cuda.empty_cache()
            log.warning(f"out of memory: eval token budget halved to {self.token_budget}; retrying the batch")
            half = len(batch) // 2
            return self._score_batch(batch[:half]) + self._score_batch(batch[half:])

    def _causal(self, batch: list[ContextGroup]) -> list[list[tuple[float, bool]]]:
        device = self.model.device
        continuations = [c for g in batch for c in g.continuations]
        owner = torch.tensor([i for i, g in enumerate(batch) for _ in g.continuations], device=device)
        longer = [j for j, c in enumerate(continuations) if len(c) > 1]  # a second pass scores tokens 2..n
        last, layers, mask = self._causal_contexts(batch, keep_cache=bool(longer))
        # token 1 of every continuation, from its context's last position
        targets = torch.tensor([c[0] for c in continuations], device=device)[:, None]
        total, greedy = _token_scores(last[owner][:, None], targets, torch.ones_like(targets))
        for chunk in by_length(
            [len(continuations[j]) - 1 for j in longer], budget=self.token_budget, attended=mask.shape[1]
        ):
            rows = [longer[i] for i in chunk]
            rest, rest_greedy = self._continue(layers, mask, owner[rows], [continuations[j] for j in rows])
            total[rows] += rest
            greedy[rows] &= rest_greedy
        return _split(list(zip(total.tolist(), greedy.tolist(), strict=True)), batch)

    def _causal_contexts(
        self, batch: list[ContextGroup], keep_cache: bool
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
        """One pass over the contexts, in bands of similar length (left padding within
        ``PADDING_SLACK``): each context's last-position logits (fp32), and, with ``keep_cache``, every
        layer's keys and values with the mask over them, left-padded to the longest context of the batch
        so that any continuations of the batch can run together."""
        device = self.model.device
        width = max(len(g.context) for g in batch)
        last, masks, bands = [], [], []
        for band in self._bands(batch):
            ids = [list(batch[i].context) for i in band]
            self.positions.add("context", ids)
            contexts, mask = _pad(ids, self.pad, left=True, device=device)
            kwargs = {"position_ids": _positions(mask)} if self._takes_positions else {}
            if self._takes_logits_to_keep:
                kwargs["logits_to_keep"] = 1
            kwargs |= {"input_ids": contexts, "attention_mask": mask, "use_cache": keep_cache}
            out = self.timer.forward(device, self.model, **kwargs)
            last.append(out.logits[:, -1].float())
            grow = width - mask.shape[1]  # more left padding, up to the batch's longest context
            masks.append(torch.nn.functional.pad(mask, (grow, 0)))
            if keep_cache:
                bands.append([_left_pad(t, grow) for t in _cache_tensors(getattr(out, self._cache_name))])
        layers = [tuple(torch.cat(parts, dim=0) for parts in zip(*layer)) for layer in zip(*bands)] if bands else []
        return torch.cat(last), layers, torch.cat(masks)

    @staticmethod
    def _bands(batch: list[ContextGroup]) -> list[list[int]]:
        """The batch's groups in bands of similar context length, in the batch's order (longest
        context first), so that the bands' rows, concatenated, are the batch's."""
        bands = by_length([len(g.context) for g in batch])
        if [i for band in bands for i in band] != list(range(len(batch))):
            raise ValueError("a batch's groups must come longest context first")  # group_by_context's order
        return bands

    def _continue(
        self,
        layers: list[tuple[torch.Tensor, ...]],
        mask: torch.Tensor,
        owner: torch.Tensor,
        continuations: list[list[int]],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of tokens 2..n of ``continuations`` (each after its context, ``owner``), in one pass
        over tokens 1..n-1 with the contexts' keys and values."""
        device = mask.device
        # one copy of the context's keys and values per continuation
        cache = DynamicCache([tuple(t[owner] for t in layer) for layer in layers], config=self.model.config)
        self.positions.add("continuation", [c[:-1] for c in continuations])
        inputs, input_mask = _pad([c[:-1] for c in continuations], self.pad, left=False, device=device)
        targets, valid = _pad([c[1:] for c in continuations], 0, left=False, device=device)
        kwargs = {self._cache_name: cache}
        if self._takes_positions:
            kwargs["position_ids"] = mask.sum(-1)[owner, None] + torch.arange(inputs.shape[1], device=device)
        kwargs |= {"input_ids": inputs, "attention_mask": torch.cat([mask[owner], input_mask], dim=1)}
        logits = self.timer.forward(device, self.model, **kwargs).logits
        return _token_scores(logits.float(), targets, valid)

    def _seq2seq(self, batch: list[ContextGroup]) -> list[list[tuple[float, bool]]]:
        device = self.model.device
        continuations = [c for g in batch for c in g.continuations]
        owner = torch.tensor([i for i, g in enumerate(batch) for _ in g.continuations], device=device)
        states, mask = self._encode(batch)
        start = self.model.config.decoder_start_token_id
        total = torch.zeros(len(continuations), device=device)
        greedy = torch.ones(len(continuations), dtype=torch.bool, device=device)
        # the decoder batched by continuation length, each chunk within the budget
        for rows in by_length([len(c) for c in continuations], budget=self.token_budget, attended=mask.shape[1]):
            chunk = [continuations[j] for j in rows]
            self.positions.add("continuation", chunk)
            decoder_inputs, _ = _pad([[start, *c[:-1]] for c in chunk], self.pad, left=False, device=device)
            targets, valid = _pad(chunk, 0, left=False, device=device)
            logits = self.timer.forward(
                device,
                self.model,
                encoder_outputs=BaseModelOutput(last_hidden_state=states[owner[rows]]),
                attention_mask=mask[owner[rows]],
                decoder_input_ids=decoder_inputs,
            ).logits
            total[rows], greedy[rows] = _token_scores(logits.float(), targets, valid)
        return _split(list(zip(total.tolist(), greedy.tolist(), strict=True)), batch)

    def _encode(self, batch: list[ContextGroup]) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder's states of every context, run in bands of similar length, right-padded to
        the batch's longest context, and the mask over them."""
        device = self.model.device
        width = max(len(g.context) for g in batch)
        encoder = self.model.get_encoder()
        states, masks = [], []
        for band in self._bands(batch):
            ids = [list(batch[i].context) for i in band]
            self.positions.add("context", ids)
            contexts, mask = _pad(ids, self.pad, left=False, device=device)
            band_states = self.timer.forward(device, encoder, input_ids=contexts, attention_mask=mask).last_hidden_state
            grow = width - mask.shape[1]
            states.append(torch.nn.functional.pad(band_states, (0, 0, 0, grow)))
            masks.append(torch.nn.functional.pad(mask, (0, grow)))
        return torch.cat(states), torch.cat(masks)


def _cache_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's (keys, values), ``[batch, heads, positions, head size]``, of a transformers cache."""
    return [(layer.keys, layer.values) for layer in cache.layers]


def _left_pad(layer: tuple[torch.Tensor, torch.Tensor], grow: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's keys and values with ``grow`` more (masked) positions on the left."""
    return tuple(torch.nn.functional.pad(t, (0, 0, grow, 0)) if grow else t for t in layer)


def _pad(rows: list[list[int]], value: int, left: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows padded to one length with ``value``, and the mask of real tokens."""
    width = max(len(r) for r in rows)
    if left:
        ids = [[value] * (width - len(r)) + r for r in rows]
        mask = [[0] * (width - len(r)) + [1] * len(r) for r in rows]
    else:
        ids = [r + [value] * (width - len(r)) for r in rows]
        mask = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
    return torch.tensor(ids, device=device), torch.tensor(mask, device=device)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Each real token's position counted from the row's first real token (as generate does)."""
    return (mask.cumsum(-1) - 1).clamp(min=0)


def _token_scores(
    logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row: the sum of log p(target) over the valid positions, and whether every valid target
    is the argmax (lm-eval's ``is_greedy``)."""
    logprobs = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    total = (logprobs * valid).sum(-1)
    greedy = ((logits.argmax(-1) == targets) | (valid == 0)).all(-1)
    return total, greedy


def _split(results: list[tuple[float, bool]], batch: list[ContextGroup]) -> list[list[tuple[float, bool]]]:
    out, start = [], 0
    for group in batch:
        out.append(results[start : start + len(group.continuations)])
        start += len(group.continuations)
    return out
