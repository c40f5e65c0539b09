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
  continuation, and all continuations go through the decoder in one batch.

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
    """Requests ``(context tokens, continuation tokens)`` grouped by context, longest group first
    (so an out-of-memory error comes at once, not at the end)."""
    groups: dict[tuple[int, ...], ContextGroup] = {}
    for row, (context, continuation) in enumerate(pairs):
        group = groups.setdefault(tuple(context), ContextGroup(tuple(context)))
        group.continuations.append(list(continuation))
        group.rows.append(row)
    return sorted(groups.values(), key=lambda g: (-g.cost(), g.context))


def shared_prefix_fraction(contexts: Sequence[Sequence[int]]) -> float:
    """The share of context tokens that repeat a prefix some other context already has: what a
    prefix tree over the contexts (one pass over MMLU's five shots per subject, then each question)
    would save beyond the sharing done here, which is per whole context.

    Formula: 1 - (nodes of the prefix tree) / (tokens of all contexts), the tree's nodes being the
    total length minus the longest common prefix of each context with its neighbour in sorted order.
    """
    ordered = sorted(tuple(c) for c in set(map(tuple, contexts)))
    total = sum(len(c) for c in ordered)
    shared = 0
    for before, context in zip(ordered, ordered[1:]):
        common = 0
        while common < min(len(before), len(context)) and before[common] == context[common]:
            common += 1
        shared += common
    return shared / total if total else 0.0


@dataclass
class Timer:
    """Seconds spent in the model's forward passes (synchronised on a GPU, so they are real)."""

    model: float = 0.0

    def forward(self, call: Callable, device: torch.device):
        start = time.perf_counter()
        out = call()
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
    """

    def __init__(self, model, pad_token_id: int, token_budget: int, timer: Timer) -> None:
        self.model = model
        self.pad = pad_token_id
        self.token_budget = token_budget
        self.timer = timer
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
        """Groups taken in order while their padded cost fits the budget (at least one)."""
        start = 0
        while start < len(groups):
            end, longest_context, longest_continuation, rows = start, 0, 0, 0
            while end < len(groups):
                group = groups[end]
                longest_context = max(longest_context, len(group.context))
                longest_continuation = max(longest_continuation, *(len(c) for c in group.continuations))
                rows += len(group.continuations)
                padded = (end - start + 1) * longest_context + rows * (longest_context + longest_continuation)
                if end > start and padded > self.token_budget:
                    break
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
        contexts, mask = _pad([list(g.context) for g in batch], self.pad, left=True, device=device)
        continuations = [c for g in batch for c in g.continuations]
        owner = torch.tensor([i for i, g in enumerate(batch) for _ in g.continuations], device=device)
        more = max(len(c) for c in continuations) > 1  # a second pass scores tokens 2..n
        kwargs = {"position_ids": _positions(mask)} if self._takes_positions else {}
        if self._takes_logits_to_keep:
            kwargs["logits_to_keep"] = 1
        out = self.timer.forward(
            lambda: self.model(input_ids=contexts, attention_mask=mask, use_cache=more, **kwargs), device
        )
        first = out.logits[:, -1].float()  # [contexts, vocab]: the distribution of each continuation's token 1
        targets, valid = _pad(continuations, 0, left=False, device=device)
        rest = None
        if more:
            cache = getattr(out, self._cache_name)
            cache.reorder_cache(owner)  # one copy of the context's keys and values per continuation
            # tokens 1..n-1 of each continuation; a one-token continuation gets a masked placeholder
            inputs, input_mask = _pad([c[:-1] or [self.pad] for c in continuations], self.pad, False, device)
            input_mask[:, 0] = torch.tensor([int(len(c) > 1) for c in continuations], device=device)
            kwargs = {self._cache_name: cache}
            if self._takes_positions:
                kwargs["position_ids"] = mask.sum(-1)[owner, None] + torch.arange(inputs.shape[1], device=device)
            rest = self.timer.forward(
                lambda: (
                    self.model(
                        input_ids=inputs,
                        attention_mask=torch.cat([mask[owner], input_mask], dim=1),
                        **kwargs,
                    ).logits
                ),
                device,
            )
        logits = first[owner, None] if rest is None else torch.cat([first[owner, None], rest.float()], dim=1)
        return _split(_gather(logits[:, : targets.shape[1]], targets, valid), batch)

    def _seq2seq(self, batch: list[ContextGroup]) -> list[list[tuple[float, bool]]]:
        device = self.model.device
        contexts, mask = _pad([list(g.context) for g in batch], self.pad, left=False, device=device)
        continuations = [c for g in batch for c in g.continuations]
        owner = torch.tensor([i for i, g in enumerate(batch) for _ in g.continuations], device=device)
        start = self.model.config.decoder_start_token_id
        decoder_inputs, _ = _pad([[start, *c[:-1]] for c in continuations], self.pad, left=False, device=device)
        targets, valid = _pad(continuations, 0, left=False, device=device)
        encoder = self.model.get_encoder()
        states = self.timer.forward(lambda: encoder(input_ids=contexts, attention_mask=mask).last_hidden_state, device)
        logits = self.timer.forward(
            lambda: (
                self.model(
                    encoder_outputs=BaseModelOutput(last_hidden_state=states[owner]),
                    attention_mask=mask[owner],
                    decoder_input_ids=decoder_inputs,
                ).logits
            ),
            device,
        )
        return _split(_gather(logits.float(), targets, valid), batch)


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


def _gather(logits: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> list[tuple[float, bool]]:
    """Sum of log p(target) over the valid positions, and whether every target is the argmax."""
    logprobs = logits.log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)
    total = (logprobs * valid).sum(-1)
    greedy = ((logits.argmax(-1) == targets) | (valid == 0)).all(-1)
    return list(zip(total.tolist(), greedy.tolist(), strict=True))


def _split(results: list[tuple[float, bool]], batch: list[ContextGroup]) -> list[list[tuple[float, bool]]]:
    out, start = [], 0
    for group in batch:
        out.append(results[start : start + len(group.continuations)])
        start += len(group.continuations)
    return out
