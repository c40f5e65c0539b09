"""L2-SP (Li et al. 2018): an L2 penalty pulling the weights toward their starting point.

loss = task loss + λ/2 · Σ_i (θ_i − θ0_i)²

The anchor θ0 is the base model, taken in ``prepare_model``; a resumed run
rebuilds it from the same base model, so it needs no room in the checkpoint.
Extra memory: one copy of the trainable weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from forgetbench.methods.base import Method, trainable_snapshot, weighted_distance
from forgetbench.validation import NonNegativeFloat


@dataclass
class L2SP(Method):
    """Attributes:
    strength: λ, the weight of the penalty.
    """

    name: str = "l2sp"
    strength: NonNegativeFloat = 0.01
    _anchor: dict[str, torch.Tensor] = field(default_factory=dict, init=False, repr=False)

    def prepare_model(self, model, task_names):
        self._anchor = trainable_snapshot(model)
        return model

    def extra_loss(self, model) -> torch.Tensor | None:
        distance = weighted_distance(model, self._anchor)
        return None if distance is None else self.strength / 2 * distance
