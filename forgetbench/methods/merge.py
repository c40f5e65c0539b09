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

Merging one task (λ = 1, density 1, drop 0) gives that task's model.

Two kinds of update (``adapters``):
  - false: every weight trains, and τ_t is the weight difference. Merged here by hand: peft's
    ``add_weighted_adapter`` merges LoRA adapters only. Extra memory: the base's trainable weights and
    one update per finished task (on the CPU, and in the checkpoint).
  - true: the base stays frozen and task t trains its own LoRA adapter (``lora``), on top of the merged
    adapter; τ_t is that adapter's update ΔW_t = (α/r)·B_t·A_t. The merge is peft's
    ``add_weighted_adapter`` on the task adapters (task_arithmetic → ``svd``, ties → ``ties_svd``,
    dare → ``dare_linear_svd``: each merges the full ΔW's, then factors the result back to rank
    ``merged_rank`` by SVD); magmax, which peft lacks, is computed by hand on the same ΔW's and factored
    the same way. The merged update of ties, dare and magmax is not low-rank: at a ``merged_rank`` below
    a layer's width the SVD keeps its largest directions (task arithmetic's sum of t rank-r updates is
    exact at the default rank, tasks × r). peft merges a single adapter as it is (no trim, no drop), so
    after the first task the model is that task's. Extra memory: one adapter per task and the merged
    adapter.
Extra time: one merge after each task.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from peft.tuners.lora import LoraLayer

from forgetbench.methods.base import Method, TaskContext, trainable_snapshot
from forgetbench.methods.peft_adapters import LoRASettings, adapter_name, add_task_adapters
from forgetbench.validation import HASHED_WHEN_SET, Fraction, NonNegative, Positive, PositiveFloat, Probability

Vectors = list[torch.Tensor]  # one tensor of one parameter, per task
MERGED, MERGING = "merged", "merging"  # adapters=true: the running merge, and peft's output before it is copied in
PEFT_COMBINATIONS = {"task_arithmetic": "svd", "ties": "ties_svd", "dare": "dare_linear_svd"}


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
    adapters: false: merge full fine-tuning's weight updates; true: merge per-task LoRA adapters.
    lora: adapters=true: each task adapter's rank, scaling, dropout and target modules.
    merged_rank: adapters=true: the merged adapter's rank (null: tasks × lora.r).
    """

    name: str = "merge"
    operator: Literal["task_arithmetic", "ties", "dare", "magmax"] = "ties"
    scale: PositiveFloat = 1.0
    density: Fraction = 0.2
    drop: Probability = 0.9
    seed: NonNegative = 0
    # added after the full-weights merge: hashed only when set, so runs made before them still resume
    adapters: bool = field(default=False, metadata=HASHED_WHEN_SET)
    lora: LoRASettings = field(default_factory=LoRASettings, metadata=HASHED_WHEN_SET)
    merged_rank: Positive | None = field(default=None, metadata=HASHED_WHEN_SET)
    _base: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _start: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)
    _updates: list[dict[str, torch.Tensor]] = field(default_factory=list, init=False, repr=False)

    def prepare_model(self, model, task_names):
        if self.adapters:
            return self._add_adapters(model, len(task_names))
        self._base = trainable_snapshot(model, device="cpu")  # rebuilt from the base on resume (as WiSE)
        return model

    def before_task(self, ctx: TaskContext) -> None:
        if self.adapters:  # this task's adapter trains on top of the merge so far, which stays frozen
            ctx.model.base_model.set_adapter([MERGED, adapter_name(ctx.step)])
            for name, param in ctx.model.named_parameters():
                if f".{MERGED}." in name:
                    param.requires_grad_(False)
            return
        self._start = trainable_snapshot(ctx.model, device="cpu")  # m_{t−1}: where this task starts

    @torch.no_grad()
    def after_task(self, ctx: TaskContext) -> None:
        if self.adapters:
            self._merge_adapters(ctx.model, ctx.step)
            return
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

    # --- adapters=true: per-task LoRA adapters merged into one ------------------------------

    def _add_adapters(self, model, n_tasks: int):
        """One adapter per task and the merged one, of a fixed rank (a resumed run rebuilds the same
        shapes before loading the weights) and scaling 1; it starts at zero: step 0 scores the base."""
        wrapped = add_task_adapters(model, self.lora, n_tasks)
        rank = self.merged_rank or n_tasks * self.lora.r
        config = replace(wrapped.peft_config[adapter_name(1)], r=rank, lora_alpha=rank, lora_dropout=0.0)
        wrapped.add_adapter(MERGED, config)
        wrapped.base_model.set_adapter(MERGED)
        return wrapped

    def _merge_adapters(self, model, step: int) -> None:
        """The merged adapter ← λ·merge(ΔW_1..ΔW_step); then it alone is active (the model evaluated)."""
        names = [adapter_name(i) for i in range(1, step + 1)]
        rank = model.peft_config[MERGED].r
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):  # peft draws dare's masks from the global RNG
            torch.manual_seed(self.seed * 1000 + step)
            if self.operator != "magmax":
                density = {"ties": self.density, "dare": 1 - self.drop}.get(self.operator)
                combination = PEFT_COMBINATIONS[self.operator]
                model.base_model.add_weighted_adapter(
                    names, [self.scale] * step, MERGING, combination, svd_rank=rank, density=density
                )
        for layer in model.modules():
            if isinstance(layer, LoraLayer) and MERGED in layer.lora_A:
                if self.operator == "magmax":  # not among peft's combinations: by hand, factored as peft does
                    delta = self.scale * magmax([layer.get_delta_weight(name) for name in names])
                    _write_merged(layer, *_factored(delta, rank, getattr(layer, "fan_in_fan_out", False)))
                else:
                    a, b = layer.lora_A[MERGING].weight, layer.lora_B[MERGING].weight
                    _write_merged(layer, a * layer.scaling[MERGING], b)
        if self.operator != "magmax":
            model.base_model.delete_adapter(MERGING)
        model.base_model.set_adapter(MERGED)

    def state_dict(self) -> dict:
        return {"updates": self._updates}

    def load_state_dict(self, state: dict) -> None:
        self._updates = list(state["updates"])


def _factored(delta: torch.Tensor, rank: int, fan_in_fan_out: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B) with B·A the best rank-``rank`` approximation of ``delta`` (exact when its rank is no more)."""
    if fan_in_fan_out:  # the layer's weight is stored transposed (GPT-2's Conv1D): the adapter is not
        delta = delta.T
    u, s, vh = torch.linalg.svd(delta.float(), full_matrices=False)
    return vh[:rank], u[:, :rank] * s[:rank]


def _write_merged(layer: LoraLayer, a: torch.Tensor, b: torch.Tensor) -> None:
    """Copy a merged update's factors into the fixed-rank merged adapter (scaling 1), the rest zero:
    its rank may be below the adapter's (a layer narrower than ``merged_rank``)."""
    target_a, target_b = layer.lora_A[MERGED].weight, layer.lora_B[MERGED].weight
    target_a.zero_()
    target_b.zero_()
    k = a.shape[0]
    target_a[:k] = a.to(target_a.dtype)
    target_b[:, :k] = b.to(target_b.dtype)
