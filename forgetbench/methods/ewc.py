"""Elastic weight consolidation (Kirkpatrick et al. 2017), with the online variant (Schwarz et al. 2018).

After each task t, the diagonal (empirical) Fisher information on a sample of
that task's examples, F_t,i = mean over examples of (∂ loss / ∂θ_i)², and the
weights θ*_t are kept. Later tasks add

    λ/2 · Σ_t Σ_i F_t,i (θ_i − θ*_t,i)²        (standard: one term per earlier task)
    λ/2 · Σ_i F_i (θ_i − θ*_i)²,  F ← γ·F + F_t, θ* ← θ_t   (online: one running term)

to the task loss. Extra memory: two copies of the trainable weights per earlier
task (standard) or two in all (online), in the model's dtype, on ``device``
(use "cpu" for large models, at the cost of moving them for every penalty).
Extra time: one forward and backward pass per Fisher example after each task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from forgetbench.methods.base import Method, TaskContext, trainable_snapshot, weighted_distance
from forgetbench.training import make_loader
from forgetbench.validation import Fraction, NonNegativeFloat, Positive


@dataclass
class EWC(Method):
    """Attributes:
    strength: λ, the weight of the penalty.
    fisher_examples: examples of each task the Fisher is estimated on.
    online: keep one running Fisher (decayed by ``decay``) instead of one per task.
    decay: γ of the online variant.
    device: where Fisher and anchors are kept ("model": with the weights, or "cpu").
    """

    name: str = "ewc"
    strength: NonNegativeFloat = 100.0
    fisher_examples: Positive = 200
    online: bool = False
    decay: Fraction = 1.0
    device: Literal["model", "cpu"] = "model"
    _terms: list[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]] = field(
        default_factory=list, init=False, repr=False
    )  # (fisher, anchor) per consolidated task

    def extra_loss(self, model) -> torch.Tensor | None:
        penalties = [weighted_distance(model, anchor, fisher) for fisher, anchor in self._terms]
        penalties = [p for p in penalties if p is not None]
        return self.strength / 2 * sum(penalties) if penalties else None

    def after_task(self, ctx: TaskContext) -> None:
        fisher = self.fisher(ctx)
        anchor = trainable_snapshot(ctx.model, self._store_device(ctx.model))
        if self.online and self._terms:
            previous, _ = self._terms[0]
            fisher = {n: self.decay * previous[n] + f for n, f in fisher.items()}
            self._terms = []
        self._terms.append((fisher, anchor))

    def fisher(self, ctx: TaskContext) -> dict[str, torch.Tensor]:
        """Diagonal empirical Fisher: mean squared per-example gradient of the task loss."""
        model = ctx.model
        params = {n: p for n, p in model.named_parameters() if p.requires_grad}
        total = {n: torch.zeros_like(p) for n, p in params.items()}
        examples = ctx.examples.select(range(min(self.fisher_examples, len(ctx.examples))))
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()  # no dropout: the Fisher of the model itself
        for batch in make_loader(examples, ctx.tokenizer, model, ctx.train_config, 1, ctx.seed):
            model.zero_grad(set_to_none=True)
            model(**{k: v.to(device) for k, v in batch.items()}).loss.backward()
            for name, param in params.items():
                if param.grad is not None:
                    total[name] += param.grad.detach() ** 2
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        store = self._store_device(model)
        return {n: (t / len(examples)).to(store) for n, t in total.items()}

    def _store_device(self, model) -> torch.device:
        return torch.device("cpu") if self.device == "cpu" else next(model.parameters()).device

    def state_dict(self) -> dict:
        return {
            "terms": [({n: t.cpu() for n, t in f.items()}, {n: t.cpu() for n, t in a.items()}) for f, a in self._terms]
        }

    def load_state_dict(self, state: dict) -> None:
        self._terms = list(state["terms"])
