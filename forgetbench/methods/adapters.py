"""One LoRA adapter per stream task, the base model untouched ("change clothes, keep the body").

Task t trains only its own adapter, with only that adapter active. Evaluation
picks the adapter per eval task: a stream task that has been trained is scored
with its own adapter, one not yet trained with the base model; the general
suite is scored with ``general`` = "base" (no adapter: the base cannot forget),
"latest" (the adapter of the last trained task) or "merge" (all trained
adapters active at once, their updates summed). The base weights stay
bit-identical. Extra memory: one adapter per task.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from forgetbench.methods.base import Method, TaskContext
from forgetbench.methods.peft_adapters import LoRASettings, adapter_name, add_task_adapters


@dataclass
class Adapters(Method):
    """Attributes:
    lora: each task adapter's rank, scaling, dropout and target modules.
    general: which adapters the general suite is scored with: base, latest or merge.
    """

    name: str = "adapters"
    lora: LoRASettings = field(default_factory=LoRASettings)
    general: Literal["base", "latest", "merge"] = "base"
    _tasks: list[str] = field(default_factory=list, init=False)
    _trained: int = field(default=0, init=False)

    def prepare_model(self, model, task_names):
        self._tasks = list(task_names)
        return add_task_adapters(model, self.lora, len(task_names))

    def before_task(self, ctx: TaskContext) -> None:
        ctx.model.base_model.set_adapter(adapter_name(ctx.step))  # active and trainable: this task's alone

    def after_task(self, ctx: TaskContext) -> None:
        self._trained = ctx.step

    @contextlib.contextmanager
    def evaluating(self, model, eval_task: str, stream_task: str = "") -> Iterator[None]:
        adapters = self._adapters_for(stream_task)
        if not adapters:
            with model.disable_adapter():
                yield
            return
        model.base_model.set_adapter(adapters)
        yield

    def _adapters_for(self, stream_task: str) -> list[str]:
        """A stream task's own adapter once trained (else none: the base); the general suite's per ``general``."""
        if stream_task in self._tasks:
            index = self._tasks.index(stream_task) + 1
            return [adapter_name(index)] if index <= self._trained else []
        trained = [adapter_name(i) for i in range(1, self._trained + 1)]
        if self.general == "latest":
            return trained[-1:]
        return trained if self.general == "merge" else []

    def state_dict(self) -> dict:
        return {"trained": self._trained}

    def load_state_dict(self, state: dict) -> None:
        self._trained = state["trained"]
