"""The hooks a method can implement; every one is a no-op here.

The runner calls them in this order for each task of the stream:
``prepare_model`` (once, before step 0), then per task ``before_task``,
``training_examples``, ``extra_loss`` (every forward pass), ``after_task``.
``state_dict``/``load_state_dict`` carry the method's own state through the
run checkpoint so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from datasets import Dataset
from transformers import PreTrainedModel


@dataclass
class Method:
    """Plain behaviour: train every parameter, add nothing.

    Attributes:
        name: the method's name in run names and the results table.
    """

    name: str = "base"

    def prepare_model(self, model: PreTrainedModel) -> PreTrainedModel:
        """Wrap or freeze the model before step 0 (e.g. add adapters)."""
        return model

    def before_task(self, model: PreTrainedModel, task_name: str, step: int) -> None:
        """Called before training on the task at stream position ``step``."""

    def training_examples(self, examples: Dataset, task_name: str, step: int) -> Dataset:
        """The examples actually trained on (replay mixes old data in here)."""
        return examples

    def extra_loss(self, model: PreTrainedModel) -> torch.Tensor | None:
        """A term added to the task loss at every forward pass (penalties)."""
        return None

    def after_task(self, model: PreTrainedModel, examples: Dataset, task_name: str, step: int) -> None:
        """Called after training on a task, before it is evaluated."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
