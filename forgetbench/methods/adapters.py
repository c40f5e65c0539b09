"""One LoRA adapter per stream task, the base model untouched ("change clothes, keep the body").

Task t trains only its own adapter (with ``route=learned``, also a gate over the adapters, the earlier
ones frozen). Evaluation picks the adapters per input, by ``route`` (:mod:`forgetbench.routing`):

- ``oracle``: told the task: a stream task that has been trained is scored with its own adapter, one
  not yet trained with the base model; the general suite with ``general`` = "base" (no adapter: the
  base cannot forget), "latest" (the adapter of the last trained task) or "merge" (all trained
  adapters active at once, their updates summed). No deployed model knows the task: an upper bound.
- ``keyword``, ``classifier``, ``learned``: a router picks from each input alone, for the general
  suite's items too (a router that sends a general question to a task's adapter costs general
  ability, and the scores show it). Each item's route is in the items table.

The base weights stay bit-identical. Extra memory: one adapter per task (and the learned gate).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch

from forgetbench.methods.base import Method, TaskContext
from forgetbench.methods.peft_adapters import LoRASettings, adapter_name, add_task_adapters
from forgetbench.models import LoadedModel
from forgetbench.routing import BASE, MERGE
from forgetbench.routing.classifier import ProbeRouter
from forgetbench.routing.keyword import KeywordRouter
from forgetbench.routing.learned import LearnedGate

log = logging.getLogger(__name__)


@dataclass
class Adapters(Method):
    """Attributes:
    lora: each task adapter's rank, scaling, dropout and target modules.
    general: oracle only: which adapters the general suite is scored with: base, latest or merge.
    route: how an input's adapter is chosen: oracle, keyword, classifier or learned.
    keyword: the keyword route's rules.
    classifier: the classifier route's settings.
    learned: the learned route's gate.
    """

    name: str = "adapters"
    lora: LoRASettings = field(default_factory=LoRASettings)
    general: Literal["base", "latest", "merge"] = "base"
    route: Literal["oracle", "keyword", "classifier", "learned"] = "oracle"
    keyword: KeywordRouter = field(default_factory=KeywordRouter)
    classifier: ProbeRouter = field(default_factory=ProbeRouter)
    learned: LearnedGate = field(default_factory=LearnedGate)
    _tasks: list[str] = field(default_factory=list, init=False)
    _trained: int = field(default=0, init=False)

    def prepare_model(self, model, task_names):
        self._tasks = list(task_names)
        if self.route == "keyword":
            self.keyword.check(self._tasks)
        wrapped = add_task_adapters(model, self.lora, len(task_names))
        per_adapter = sum(p.numel() for n, p in wrapped.named_parameters() if f".{adapter_name(1)}." in n)
        log.info(f"adapters: {len(task_names)} × {per_adapter:,} parameters, route={self.route}")
        if self.route == "learned":
            self.learned.attach(wrapped, [adapter_name(i) for i in range(1, len(task_names) + 1)])
        if self.route == "classifier":
            self.classifier.describe(wrapped.get_base_model().config.hidden_size, len(task_names))
        return wrapped

    def before_task(self, ctx: TaskContext) -> None:
        if self.route == "learned":
            self.learned.start_task(ctx.model, ctx.step, ctx.train_config.packing, ctx.train_config.fused_loss)
        else:
            ctx.model.base_model.set_adapter(adapter_name(ctx.step))  # active and trainable: this task's alone

    def extra_loss(self, model) -> torch.Tensor | None:
        return self.learned.balance_loss() if self.route == "learned" else None

    def after_task(self, ctx: TaskContext) -> None:
        self._trained = ctx.step
        if self.route == "learned":
            self.learned.end_task()
        if self.route == "classifier":
            general = ctx.general_examples["prompt"] if ctx.general_examples is not None else None
            self.classifier.fit(ctx.model, ctx.tokenizer, ctx.task_name, ctx.examples["prompt"], general)

    # --- evaluation: the Router the bridge asks (forgetbench.evaluation.routed_lm) -------------

    def router(self) -> Adapters:
        return self

    @property
    def per_context(self) -> bool:
        """The learned gate weighs the adapters per input: each context is scored on its own."""
        return self.route == "learned"

    def choose(self, loaded: LoadedModel, contexts: list[str], stream_task: str) -> list[str]:
        """Each context's route: a trained task's name, base or merge."""
        trained = self._tasks[: self._trained]
        if self.route == "oracle":
            return [self._oracle_route(stream_task)] * len(contexts)
        if not trained:
            return [BASE] * len(contexts)
        if self.route == "keyword":
            return self.keyword.choose(contexts, trained)
        if self.route == "classifier":
            return self.classifier.choose(loaded.model, loaded.tokenizer, contexts)
        return [trained[i] for i in self.learned.choose(loaded.model, loaded.tokenizer, contexts, self._trained)]

    def _oracle_route(self, stream_task: str) -> str:
        """A stream task's own adapter once trained (else the base); the general suite's per ``general``."""
        if stream_task in self._tasks:
            return stream_task if self._tasks.index(stream_task) < self._trained else BASE
        if not self._trained or self.general == "base":
            return BASE
        return self._tasks[self._trained - 1] if self.general == "latest" else MERGE

    @contextlib.contextmanager
    def activate(self, model, route: str, context: str = "") -> Iterator[None]:
        """The route's adapters active: none for base, every trained one for merge; for the learned
        gate, every trained one weighed as the gate weighs them for ``context``."""
        if self.route == "learned" and route != BASE:
            with self.learned.mixing(model, context, self._trained):
                yield
            return
        if route == BASE:
            with model.disable_adapter():
                yield
            return
        if route == MERGE:
            model.base_model.set_adapter([adapter_name(i) for i in range(1, self._trained + 1)])
        else:
            model.base_model.set_adapter(adapter_name(self._tasks.index(route) + 1))
        yield

    def state_dict(self) -> dict:
        return {"trained": self._trained, "classifier": self.classifier.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self._trained = state["trained"]
        if "classifier" in state:
            self.classifier.load_state_dict(state["classifier"])
