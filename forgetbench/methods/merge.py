"""Model merging after every task: each task's update merged into the running model, which the next
task starts from (task arithmetic, TIES, DARE, MagMax).

Task t trains from the merged model m_{t−1} (m_0 = θ0, the base) to θ_t; its update is
τ_t = θ_t − m_{t−1}. After it, every update so far is merged:

    m_t = θ0 + λ · merge(τ_1, …, τ_t)

with, per parameter entry j:
  - task_arithmetic (Ilharco et al. 2023): merge = Σ_i τ_i[j]. With λ = 1 that is θ_t itself: plain
    sequential fine-tuning (a check of the bookkeeping).
  - ties (Yadav et al. 2023): trim each τ_i to its ``density`` share of largest magnitudes (per
    tensor), elect γ[j] = sign(Σ_i trimmed τ_i[j]), and take the mean of the trimmed τ_i[j] whose sign
    is γ[j] (zero where none is): the disjoint mean.
  - dare (Yu et al. 2024): drop each entry of each τ_i with probability ``drop`` and rescale the rest
    by 1/(1 − drop) (masks seeded by ``seed`` and the task), then sum as task arithmetic.
  - magmax (Marczak et al. 2024): the τ_i[j] of largest magnitude.

Merging one task (λ = 1, density 1, drop 0) gives that task's model. Written by hand rather than with
peft's ``add_weighted_adapter``: that merges LoRA adapters only, and here every weight of a fully
fine-tuned model is merged; LoRA runs are refused in one line (merge full fine-tuning).
Extra memory: the base's trainable weights and one update per finished task (on the CPU, and in the
checkpoint). Extra time: one merge after each task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from forgetbench.errors import ForgetbenchError
from forgetbench.methods.base import Method, TaskContext, trainable_snapshot
from forgetbench.validation import Fraction, NonNegative, PositiveFloat, Probability

Vectors = list[torch.Tensor]  # one tensor of one parameter, per task


def task_arithmetic(vectors: Vectors) -> torch.Tensor:
    """Σ_i τ_i."""
    return torch.stack(vectors).sum(0)


def trim(vector: torch.Tensor, density: float) -> torch.Tensor:
    """``vector`` with all but its ``density`` share of largest-magnitude entries set to zero (ties kept)."""
    keep = max(1, round(density * vector.numel())) if density > 0 else 0
    if keep >= vector.numel():
        return vector.clone()
    if keep == 0:
        return torch.zeros_like(vector)
    threshold = vector.abs().flatten().kthvalue(vector.numel() - keep + 1).values
    return torch.where(vector.abs() >= threshold, vector, torch.zeros_like(vector))


def ties(vectors: Vectors, density: float) -> torch.Tensor:
    """Trim, elect the sign of the summed mass, average the entries that agree with it."""
    trimmed = torch.stack([trim(v, density) for v in vectors])
    elected = torch.sign(trimmed.sum(0))
    agree = (torch.sign(trimmed) == elected) & (trimmed != 0)
    count = agree.sum(0)
    return torch.where(count > 0, (trimmed * agree).sum(0) / count.clamp(min=1), torch.zeros_like(elected))


def dare(vectors: Vectors, drop: float, generator: torch.Generator) -> torch.Tensor:
    """Σ_i m_i ⊙ τ_i / (1 − drop), m_i[j] ~ Bernoulli(1 − drop) drawn from ``generator``."""
    kept = [(torch.rand(v.shape, generator=generator) >= drop).to(v.dtype) * v / (1 - drop) for v in vectors]
    return torch.stack(kept).sum(0)


def magmax(vectors: Vectors) -> torch.Tensor:
    """Per entry, the τ_i of largest magnitude."""
    stacked = torch.stack(vectors)
    choice = stacked.abs().argmax(0, keepdim=True)
    return stacked.gather(0, choice).squeeze(0)


@dataclass
class Merge(Method):
    """Attributes:
    operator: task_arithmetic | ties | dare | magmax (the module docstring has each formula).
    scale: λ in m_t = θ0 + λ · merge(τ_1..τ_t).
    density: ties: the share of each update's entries kept (largest magnitudes, per tensor).
    drop: dare: the probability an entry is dropped.
    seed: dare: seeds the drop masks (with the task's position).
    """

    name: str = "merge"
    operator: Literal["task_arithmetic", "ties", "dare", "magmax"] = "ties"
    scale: PositiveFloat = 1.0
    density: Fraction = 0.2
    drop: Probability = 0.9
    seed: NonNegative = 0
    _base: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _start: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _updates: list[dict[str, torch.Tensor]] = field(default_factory=list, init=False, repr=False)

    def prepare_model(self, model, task_names):
        if hasattr(model, "peft_config"):
            raise ForgetbenchError("method=merge merges full fine-tuning's weight updates; use it without LoRA")
        self._base = trainable_snapshot(model, device="cpu")  # rebuilt from the base on resume (as WiSE)
        return model

    def before_task(self, ctx: TaskContext) -> None:
        self._start = trainable_snapshot(ctx.model, device="cpu")  # m_{t−1}: where this task starts

    @torch.no_grad()
    def after_task(self, ctx: TaskContext) -> None:
        params = dict(ctx.model.named_parameters())
        self._updates.append({n: params[n].detach().cpu() - self._start[n] for n in self._start})
        generator = torch.Generator().manual_seed(self.seed * 1000 + ctx.step)
        for name, base in self._base.items():
            merged = self.merge([update[name] for update in self._updates], generator)
            params[name].copy_((base + self.scale * merged).to(params[name].device, params[name].dtype))
        self._start = {}

    def merge(self, vectors: Vectors, generator: torch.Generator) -> torch.Tensor:
        """The merged update of one parameter from its per-task updates."""
        if self.operator == "ties":
            return ties(vectors, self.density)
        if self.operator == "dare":
            return dare(vectors, self.drop, generator)
        if self.operator == "magmax":
            return magmax(vectors)
        return task_arithmetic(vectors)

    def state_dict(self) -> dict:
        return {"updates": self._updates}

    def load_state_dict(self, state: dict) -> None:
        self._updates = list(state["updates"])
