"""The hooks a method can implement; every one is a no-op here.

The runner calls them in this order: ``prepare_model`` (once, before step 0),
then for each task of the stream ``before_task``, ``training_examples``,
``extra_loss`` and ``batch_loss`` (every forward pass: the training loop takes them
as its loss hooks), ``before_update`` and ``after_update`` (every optimizer step:
its gradients, then its new weights),
``after_task``, and ``evaluating`` around each eval task (with ``router`` picking
adapters per input inside it, for a method that has one). Each per-task hook gets
a :class:`TaskContext`.
``state_dict``/``load_state_dict`` carry the method's own state through the
run checkpoint so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from forgetbench.validation import check_fields

if TYPE_CHECKING:
    from forgetbench.evaluation.routed_lm import Router
    from forgetbench.training import TrainConfig


@dataclass
class TaskContext:
    """What a method may look at around one task of the stream.

    Attributes:
        model: the model being trained (as returned by ``prepare_model``).
        tokenizer: its tokenizer.
        task_name: the stream task.
        step: its position in the stream (1-based; step 0 is the base evaluation).
        examples: the task's own training examples (``prompt``/``response``).
        train_config: how the task is trained.
        seed: the seed of this step's data order.
        general_examples: the stream's general text (``prompt``/``response``) in the style of the
            base model's pretraining, if the stream has any (the tiny world's; replay mixes it in).
    """

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    task_name: str
    step: int
    examples: Dataset
    train_config: TrainConfig
    seed: int
    general_examples: Dataset | None = None


@dataclass
class Method:
    """Plain behaviour: train every parameter, add nothing.

    Attributes:
        name: the method's name in run names and the results table.
    """

    name: str = "base"
    # trains under FSDP (distributed=fsdp), whose weights are shards: true for methods that keep no
    # copy of the weights (an anchor, a Fisher, adapters per task) and do not swap them for evaluation
    fsdp_ready: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_fields(self)  # every plug-in's hyper-parameters, by their annotations

    def prepare_model(self, model: PreTrainedModel, task_names: list[str]) -> PreTrainedModel:
        """Wrap or freeze the model before step 0 (e.g. add adapters); ``task_names`` is the stream."""
        return model

    def before_task(self, ctx: TaskContext) -> None:
        """Called before training on a task."""

    def training_examples(self, ctx: TaskContext) -> Dataset:
        """The examples actually trained on (replay mixes old data in here)."""
        return ctx.examples

    def extra_loss(self, model: PreTrainedModel) -> torch.Tensor | None:
        """A term added to the task loss at every forward pass (penalties)."""
        return None

    def batch_loss(self, model: PreTrainedModel, inputs: dict) -> torch.Tensor | None:
        """A term added to the task loss that depends on the micro-batch's model inputs (distillation)."""
        return None

    def before_update(self, model: PreTrainedModel) -> None:
        """After each optimizer step's backward passes, before clipping: may change the gradients."""

    def after_update(self, model: PreTrainedModel) -> None:
        """After each optimizer step: may look at or change the new weights (a moving average)."""

    def after_task(self, ctx: TaskContext) -> None:
        """Called after training on a task, before it is evaluated."""

    @contextlib.contextmanager
    def evaluating(self, model: PreTrainedModel, eval_task: str, stream_task: str = "") -> Iterator[None]:
        """The model state ``eval_task`` is scored in (e.g. a stream task's own adapter);
        ``stream_task`` names the stream task whose held-out items it scores ("" for the suite's)."""
        yield

    def router(self) -> Router | None:
        """What picks the adapters of each evaluated input (:class:`~forgetbench.evaluation.routed_lm.Router`);
        None: every input of an eval task is scored alike (inside :meth:`evaluating`)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


def trainable_snapshot(model: torch.nn.Module, device: str | torch.device | None = None) -> dict[str, torch.Tensor]:
    """A detached copy of every trainable parameter, by name (on ``device``, default: where it is)."""
    return {n: p.detach().to(device or p.device, copy=True) for n, p in model.named_parameters() if p.requires_grad}


def weighted_distance(model: torch.nn.Module, anchor: dict[str, torch.Tensor], weight: dict | None = None):
    """Σ_i w_i (θ_i − θ*_i)² over the anchored parameters (w = 1 without ``weight``)."""
    total = None
    for name, param in model.named_parameters():
        if name not in anchor:
            continue
        diff = (param - anchor[name].to(param.device)) ** 2
        term = (diff * weight[name].to(param.device)).sum() if weight is not None else diff.sum()
        total = term if total is None else total + term
    return total


@contextlib.contextmanager
def training_state_kept(model: torch.nn.Module) -> Iterator[None]:
    """Leave the model as training had it after an evaluation inside a task: which weights train
    (``requires_grad``) and, for a peft model, which adapters are active. A method's evaluation
    state (``method=adapters`` routes an input to an earlier task's adapter, and peft's ``set_adapter``
    makes the adapters it activates trainable) would otherwise carry on into the task's training."""
    trainable = {name: param.requires_grad for name, param in model.named_parameters()}
    tuner = getattr(model, "base_model", None)
    active = getattr(tuner, "active_adapter", None) if hasattr(model, "peft_config") else None
    try:
        yield
    finally:
        if active is not None:
            tuner.set_adapter(active)
        for name, param in model.named_parameters():
            param.requires_grad_(trainable[name])
