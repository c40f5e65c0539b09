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

from peft import get_peft_model

from forgetbench.errors import ForgetbenchError
from forgetbench.methods.base import Method, TaskContext
from forgetbench.methods.lora import lora_config
from forgetbench.methods.olora import adapter_name
from forgetbench.streams.base import stream_eval_name

GENERAL_CHOICES = ("base", "latest", "merge")


@dataclass
class Adapters(Method):
    """Attributes:
    r, alpha, dropout, target_modules: as for ``lora``, per task adapter.
    general: which adapters the general suite is scored with: base, latest or merge.
    """

    name: str = "adapters"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None
    general: str = "base"
    _tasks: list[str] = field(default_factory=list, init=False)
    _trained: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.general not in GENERAL_CHOICES:
            raise ForgetbenchError(f"method.general={self.general!r} is not valid; choose one of {GENERAL_CHOICES}")

    def prepare_model(self, model, task_names):
        self._tasks = list(task_names)
        config = lora_config(model, self.r, self.alpha, self.dropout, self.target_modules)
        model = get_peft_model(model, config, adapter_name=adapter_name(1))
        for index in range(2, len(task_names) + 1):
            model.add_adapter(adapter_name(index), config)
        return model

    def before_task(self, ctx: TaskContext) -> None:
        ctx.model.base_model.set_adapter(adapter_name(ctx.step))  # active and trainable: this task's alone

    def after_task(self, ctx: TaskContext) -> None:
        self._trained = ctx.step

    @contextlib.contextmanager
    def evaluating(self, model, eval_task: str) -> Iterator[None]:
        adapters = self._adapters_for(eval_task)
        if not adapters:
            with model.disable_adapter():
                yield
            return
        model.base_model.set_adapter(adapters)
        yield

    def _adapters_for(self, eval_task: str) -> list[str]:
        trained = [adapter_name(i) for i in range(1, self._trained + 1)]
        for index, task in enumerate(self._tasks, start=1):
            if eval_task == stream_eval_name(task):
                return [adapter_name(index)] if index <= self._trained else []
        if self.general == "latest":
            return trained[-1:]
        return trained if self.general == "merge" else []

    def state_dict(self) -> dict:
        return {"trained": self._trained}

    def load_state_dict(self, state: dict) -> None:
        self._trained = state["trained"]
