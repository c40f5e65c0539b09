"""Averaged GEM (Chaudhry et al. 2019): no step may raise the loss on an episodic memory of earlier tasks.

After each task, ``memory_per_task`` of its examples (a seeded sample) join the memory. At every
optimizer step of a later task, the gradient g_ref of the loss on ``memory_batch`` memory examples
(a seeded draw) is computed, and the step's gradient g is projected when it conflicts with it:

    g ← g − (g·g_ref / g_ref·g_ref) · g_ref     if g·g_ref < 0,   else g unchanged

over all trainable weights at once, so that g·g_ref ≥ 0 after it. Extra memory: the memory's rows (in
the checkpoint) and one copy of the gradients. Extra time: one forward and backward pass on the
memory batch per optimizer step.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch
from datasets import Dataset

from forgetbench.methods.base import Method, TaskContext
from forgetbench.stream_records import SYSTEM_COLUMN
from forgetbench.streams.base import training_rows
from forgetbench.training import TrainConfig, make_loader
from forgetbench.validation import NonNegative, Positive


def project(gradient: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """A-GEM's projection of the flat ``gradient`` against the flat memory gradient ``reference``."""
    dot = torch.dot(gradient, reference)
    if dot >= 0:
        return gradient
    return gradient - dot / torch.dot(reference, reference).clamp(min=1e-12) * reference


@dataclass
class AGEM(Method):
    """Attributes:
    memory_per_task: examples kept from each finished task.
    memory_batch: memory examples the reference gradient is computed on, per optimizer step.
    """

    name: str = "agem"
    memory_per_task: NonNegative = 100
    memory_batch: Positive = 32
    _memory: list[dict] = field(default_factory=list, init=False, repr=False)
    _task: TaskContext | None = field(default=None, init=False, repr=False)
    _updates: int = field(default=0, init=False, repr=False)  # optimizer steps of this task so far
    _resumed_updates: int | None = field(default=None, init=False, repr=False)

    def before_task(self, ctx: TaskContext) -> None:
        self._task = ctx
        self._updates = self._resumed_updates or 0  # a task resumed inside: its draws go on where they were
        self._resumed_updates = None

    @torch.no_grad()
    def before_update(self, model) -> None:
        self._updates += 1
        if not self._memory or self._task is None:
            return
        params = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
        gradient = torch.cat([p.grad.flatten() for p in params])
        reference = self.memory_gradient(model, params, self._updates)
        projected = project(gradient, reference)
        if projected is not gradient:
            offset = 0
            for p in params:
                p.grad.copy_(projected[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def memory_gradient(self, model, params: list[torch.nn.Parameter], update: int) -> torch.Tensor:
        """The flat gradient of the loss on the memory draw of the task's ``update``-th optimizer step
        (seeded by the task and ``update``); the step's own gradients are put back."""
        ctx = self._task
        saved = [p.grad.clone() for p in params]
        rng = random.Random(ctx.seed * 1_000_003 + update)
        rows = [self._memory[rng.randrange(len(self._memory))] for _ in range(self.memory_batch)]
        config = TrainConfig(steps=1, batch_size=self.memory_batch, max_length=ctx.train_config.max_length)
        batch = next(iter(make_loader(Dataset.from_list(rows), ctx.tokenizer, model, config, len(rows), ctx.seed)))
        device = next(model.parameters()).device
        for p in params:
            p.grad = None
        with torch.enable_grad():
            model(**{k: v.to(device) for k, v in batch.items()}).loss.backward()
        reference = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
        for p, grad in zip(params, saved, strict=True):
            p.grad = grad
        return reference

    def after_task(self, ctx: TaskContext) -> None:
        rng = random.Random(ctx.seed)
        keep = rng.sample(range(len(ctx.examples)), min(self.memory_per_task, len(ctx.examples)))
        self._memory += training_rows(ctx.examples.select(keep))
        self._task = None

    def state_dict(self) -> dict:
        return {"memory": list(self._memory), "updates": self._updates if self._task is not None else None}

    def load_state_dict(self, state: dict) -> None:
        self._memory = [{SYSTEM_COLUMN: None, **row} for row in state["memory"]]
        self._resumed_updates = state["updates"]
