"""WiSE-FT-style weight averaging (Wortsman et al. 2022) after every task.

θ ← (1 − α) · θ0 + α · θ, with θ0 the base model's weights.

α = 1 is plain full fine-tuning; α = 0 never moves. The interpolated weights
are what the next task starts from and what is evaluated. θ0 is rebuilt from the
base model on resume (no checkpoint state). Extra memory: one copy of the
weights (kept on the CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from forgetbench.methods.base import Method, TaskContext, trainable_snapshot
from forgetbench.validation import Fraction


@dataclass
class WiSE(Method):
    """Attributes:
    alpha: weight of the fine-tuned model in the average (0..1).
    """

    name: str = "wise"
    alpha: Fraction = 0.5
    _start: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def prepare_model(self, model, task_names):
        self._start = trainable_snapshot(model, device="cpu")
        return model

    @torch.no_grad()
    def after_task(self, ctx: TaskContext) -> None:
        for name, param in ctx.model.named_parameters():
            if name in self._start:
                start = self._start[name].to(param.device, param.dtype)
                param.copy_((1 - self.alpha) * start + self.alpha * param)
