"""The fast engine: lm-eval's requests answered for an in-memory model, near the compute floor.

lm-eval stays the source of truth for what a task is (documents, prompts, few-shot contexts,
``process_results``, aggregation); this engine answers its ``Instance``s through lm-eval's
``LM`` interface, as lm-eval's HF backend (``HFLM``) would, but:

- the weight-independent work is done once per run: strings are tokenized in batches (a fast
  tokenizer) and remembered, and the requests' grouping is kept, so after the first
  evaluation only forward passes and scoring run (the tasks' built requests are kept too:
  :meth:`FastLM.prepare_task`);
- all continuations of one context share one pass over it (:mod:`.shared_context`);
- batches are filled up to a token budget, longest first, and halve it on out-of-memory.

It is imported where an evaluation picks it (the bridge), not at start-up: it imports lm-eval.
It subclasses ``HFLM`` so tokenization rules (special tokens, moving a context's trailing
spaces onto the continuation, left truncation, ``max_length``, the prefix token of an empty
context) are lm-eval's own, not a copy that could drift. ``loglikelihood_rolling`` is HFLM's
(its windows reach :meth:`_loglikelihood_tokens` here).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import torch
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import (
    _add_special_kwargs,
    handle_stop_sequences,
    has_bos_prefix,
    normalize_gen_kwargs,
    postprocess_generated_text,
)
from lm_eval.models.utils_hf import stop_sequences_criteria

from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.hf_engine import EngineTimes, keep_requests
from forgetbench.evaluation.shared_context import ContextScorer, Timer, _pad, group_by_context

log = logging.getLogger(__name__)


class FastLM(HFLM):
    """HFLM with shared contexts, token-budget batches and per-run caches.

    Args (beyond HFLM's): token_budget: tokens through the model per batch.
    """

    def __init__(self, *args, token_budget: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.times = EngineTimes()
        self._timer = Timer()
        self.scorer = ContextScorer(self.model, self._pad_id(), token_budget, self._timer)
        self._tokens: dict[tuple[str, bool | None], list[int]] = {}  # (string, special-tokens flag)
        self._groups: dict[tuple, list] = {}

    def _pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return pad if pad is not None else self.tokenizer.eos_token_id

    def contexts(self) -> list[tuple[int, ...]]:
        """Every distinct context of the log-likelihood requests seen so far (for measurements)."""
        return [group.context for groups in self._groups.values() for group in groups]

    def reset_times(self) -> EngineTimes:
        """The times since the last reset (the model's, read from the scorer's timer)."""
        self.times.model, self._timer.model = self._timer.model, 0.0
        done, self.times = self.times, EngineTimes()
        return done

    def prepare_task(self, task) -> None:
        """Keep the task's requests from its first evaluation on (:func:`.hf_engine.keep_requests`),
        their building counted as preparation."""
        keep_requests(task, self.times)

    # -- tokenization, once per string per run --------------------------------------------

    def _tokenize(self, strings: list[str], flags: list[bool | None]) -> list[list[int]]:
        """Each string tokenized with its ``add_special_tokens`` flag (None: the tokenizer's
        default), in batches, and remembered for the rest of the run."""
        todo: dict[bool | None, list[str]] = {}
        for s, flag in zip(strings, flags, strict=True):
            if (s, flag) not in self._tokens:
                todo.setdefault(flag, []).append(s)
        for flag, batch in todo.items():
            kwargs = {} if flag is None else {"add_special_tokens": flag}
            unique = list(dict.fromkeys(batch))
            for s, ids in zip(unique, self.tokenizer(unique, **kwargs)["input_ids"], strict=True):
                self._tokens[(s, flag)] = ids
        return [self._tokens[key] for key in zip(strings, flags, strict=True)]

    def _encode(self, strings: list[str], add_special_tokens: bool | None = None) -> list[list[int]]:
        """HFLM's ``tok_encode`` of each string: the flag given, else ``add_bos_token``, and
        never a second BOS before a string that starts with one."""
        bos = self.tokenizer.decode(self.prefix_token_id)
        default = _add_special_kwargs(add_special_tokens, self.add_bos_token).get("add_special_tokens")
        flags = [False if add_special_tokens is None and has_bos_prefix(s, bos) else default for s in strings]
        return self._tokenize(strings, flags)

    def _encode_pairs(self, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
        """lm-eval's ``_encode_pair`` (and its empty-context rule), tokenized in batches."""
        moved = [_move_trailing_spaces(c, k) for c, k in pairs]
        contexts = self._encode([c for c, _ in moved])
        if self.backend == "causal":  # the continuation's tokens as they fall in the whole text
            wholes = self._encode([c + k for c, k in moved])
            encoded = [(ctx, whole[len(ctx) :]) for ctx, whole in zip(contexts, wholes, strict=True)]
        else:
            continuations = self._encode([k for _, k in moved], add_special_tokens=False)
            encoded = list(zip(contexts, continuations, strict=True))
        for i, (context, continuation) in enumerate(pairs):
            if context == "":  # TemplateLM.loglikelihood: the prefix token stands for the context
                ids = self._encode([continuation], add_special_tokens=False)[0]
                encoded[i] = ([self.prefix_token_id], ids) if self.prefix_token_id != ids[0] else (ids[:1], ids[1:])
        return encoded

    # -- lm-eval's LM interface ------------------------------------------------------------

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        key = tuple(r.args for r in requests)
        if key not in self._groups:
            start = time.perf_counter()
            encoded = self._encode_pairs([r.args for r in requests])
            self._groups[key] = group_by_context([self._truncate(c, k) for c, k in encoded])
            self.times.prepare += time.perf_counter() - start
        return self.scorer.score(self._groups[key], len(requests))

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """HFLM's rolling windows (perplexity tasks), scored by :meth:`_loglikelihood_tokens`;
        its per-request progress bar stays off, as every other one here."""
        return super().loglikelihood_rolling(requests, disable_tqdm=True)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, override_bs=None):
        """Token-level requests (HFLM's rolling windows arrive here)."""
        pairs = [self._truncate(context, continuation) for _, context, continuation in requests]
        return self.scorer.score(group_by_context(pairs), len(pairs))

    def _truncate(self, context: list[int], continuation: list[int]) -> tuple[list[int], list[int]]:
        """HFLM's truncation: a causal row keeps its last ``max_length + 1`` tokens (context
        cut from the left); a seq2seq context keeps its last ``max_length``."""
        if not continuation or len(continuation) > self.max_length:
            raise ForgetbenchError(
                f"a continuation of {len(continuation)} tokens cannot be scored "
                f"(1 to max_length={self.max_length} tokens)"
            )
        if self.backend == "causal":
            keep = self.max_length + 1 - len(continuation)
            return context[-keep:], continuation
        return context[-self.max_length :], continuation

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy generation in token-budget batches (left padding, KV cache), cut at the
        stop strings as HFLM does."""
        results: list[str | None] = [None] * len(requests)
        by_kwargs: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            by_kwargs.setdefault(repr(sorted(request.args[1].items())), []).append(i)
        for rows in by_kwargs.values():
            kwargs = normalize_gen_kwargs(requests[rows[0]].args[1], self.max_gen_toks)
            if kwargs.get("do_sample"):
                raise ForgetbenchError(
                    f"eval.engine=fast generates greedily; a task asks for sampling ({kwargs}): use eval.engine=lm_eval"
                )
            eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
            texts = self.generate([requests[i].args[0] for i in rows], until, kwargs.pop("max_gen_toks"))
            for i, text in zip(rows, texts, strict=True):
                results[i] = text
        return results  # type: ignore[return-value]

    def generate(self, prompts: list[str], until: list[str], max_new: int) -> list[str]:
        """Greedy continuations of ``prompts``, longest first in token-budget batches, each cut at the
        first of ``until`` (the engine's own generation: lm-eval's tasks, and a method's rewrites)."""
        limit = self.max_length - max_new if self.backend == "causal" else self.max_length
        start = time.perf_counter()
        contexts = [ids[-limit:] for ids in self._encode_generation(prompts)]
        self.times.prepare += time.perf_counter() - start
        texts: list[str] = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda j: (-len(contexts[j]), j))
        for batch in self._generation_batches(order, contexts, max_new):
            for j, text in zip(batch, self._generate([contexts[j] for j in batch], until, max_new), strict=True):
                texts[j] = text
        return texts

    def _encode_generation(self, strings: list[str]) -> list[list[int]]:
        """HFLM's ``tok_batch_encode`` rule: a causal model's special tokens follow
        ``add_bos_token`` unless the string starts with BOS; seq2seq: the tokenizer's default."""
        if self.backend != "causal":
            return self._tokenize(strings, [None] * len(strings))
        bos = getattr(self.tokenizer, "bos_token", None)
        return self._tokenize(strings, [False if has_bos_prefix(s, bos) else self.add_bos_token for s in strings])

    def _generation_batches(self, order: list[int], contexts: list[list[int]], max_new: int) -> Iterator[list[int]]:
        start = 0
        while start < len(order):
            width = len(contexts[order[start]]) + max_new  # longest first: the first row sets the width
            size = max(1, self.scorer.token_budget // width)
            yield order[start : start + size]
            start += size

    @torch.no_grad()
    def _generate(self, contexts: list[list[int]], until: list[str], max_new: int) -> list[str]:
        ids, mask = _pad(contexts, self._pad_id(), left=True, device=self.model.device)
        stopping = stop_sequences_criteria(self.tokenizer, until, ids.shape[1], ids.shape[0])
        out = self._timer.forward(
            self.model.device,
            self.model.generate,
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new,
            do_sample=False,
            stopping_criteria=stopping,
            pad_token_id=self._pad_id(),
            use_cache=True,
        )
        if self.backend == "causal":
            out = out[:, ids.shape[1] :]
        return [postprocess_generated_text(self.tok_decode(row.tolist()), until, None) for row in out]


def _move_trailing_spaces(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's ``_encode_pair``: a context's trailing whitespace belongs to the continuation."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces and context:
        return context[:-n_spaces], context[-n_spaces:] + continuation
    return context, continuation
