"""Per-input routing at evaluation: each request is scored with the adapters a router picks for it.

A method that keeps one adapter per task and picks among them per input (``method=adapters`` with a
``route``) hands the bridge a :class:`Router`. The engine (fast or lm-eval's own) is wrapped in an
lm-eval ``LM`` that asks the router for every request's route from its context (what a deployed model
sees), scores the requests of each route together with that route's adapters active, and puts the
answers back in lm-eval's order. All requests of one context share a route, so the fast engine's
shared contexts stay whole; a task whose requests all take one route is one call of the engine with
its requests in lm-eval's order: the numbers of scoring it without the wrapper.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, Protocol

from forgetbench.models import LoadedModel


class Router(Protocol):
    """What the bridge needs of a per-input router.

    Attributes:
        per_context: the model state depends on the context beyond its route (a soft mixture of
            adapters, weighed per input): each context's requests are then scored on their own.
    """

    per_context: bool

    def choose(self, loaded: LoadedModel, contexts: list[str], stream_task: str) -> list[str]:
        """Each context's route (what the items table records); ``stream_task``: the stream task whose
        held-out items these are ("" for the suite's), which only an oracle may read."""

    def activate(self, model: Any, route: str, context: str) -> contextlib.AbstractContextManager:
        """The model state the requests of one route (and, ``per_context``, one context) are scored in."""


@functools.cache
def routed_lm_class():
    """The wrapper class (built on first use: lm-eval is imported only when evaluating)."""
    from lm_eval.api.model import LM

    class RoutedLM(LM):
        """``inner`` with each request scored under its route; ``decisions`` maps
        (task name, doc id) to the route its requests took."""

        def __init__(self, inner, router: Router, loaded: LoadedModel, stream_task: str) -> None:
            super().__init__()
            self.inner, self.router, self.loaded, self.stream_task = inner, router, loaded, stream_task
            self.decisions: dict[tuple[str, int], str] = {}

        def __getattr__(self, name: str):  # anything else lm-eval asks (get_model_info, batch_sizes): the engine's
            return getattr(self.__dict__["inner"], name)

        # LM defines these itself, so __getattr__ never sees them: the engine answers them
        rank = property(lambda self: self.inner.rank)
        world_size = property(lambda self: self.inner.world_size)
        device = property(lambda self: self.inner.device)
        tokenizer_name = property(lambda self: self.inner.tokenizer_name)

        def all_gather(self, tensor):
            return self.inner.all_gather(tensor)

        def gather_object(self, obj, dst=0):
            return self.inner.gather_object(obj, dst)

        def barrier(self) -> None:
            self.inner.barrier()

        def apply_chat_template(self, chat_history, add_generation_prompt: bool = True):
            return self.inner.apply_chat_template(chat_history, add_generation_prompt)

        def chat_template(self, chat_template: bool | str = False):
            return self.inner.chat_template(chat_template)

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            return self._routed(requests, self.inner.loglikelihood)

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            return self._routed(requests, self.inner.loglikelihood_rolling)

        def generate_until(self, requests, disable_tqdm: bool = False):
            return self._routed(requests, self.inner.generate_until)

        def _routed(self, requests: list, score: Callable[[list], list]) -> list:
            contexts = [r.args[0] for r in requests]
            routes = self.router.choose(self.loaded, contexts, self.stream_task)
            answers: list = [None] * len(requests)
            keys = list(zip(routes, contexts)) if self.router.per_context else [(r, "") for r in routes]
            for route, context in dict.fromkeys(keys):  # groups in order of first use
                chosen = [i for i, key in enumerate(keys) if key == (route, context)]
                with self.router.activate(self.loaded.model, route, contexts[chosen[0]]):
                    for i, answer in zip(chosen, score([requests[i] for i in chosen]), strict=True):
                        answers[i] = answer
            for request, route in zip(requests, routes, strict=True):
                self.decisions[(request.task_name, int(request.doc_id))] = route
            return answers

    return RoutedLM
