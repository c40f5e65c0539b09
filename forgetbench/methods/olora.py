"""O-LoRA (Wang et al. 2023): a new LoRA adapter per task, kept orthogonal to the earlier ones.

Every task gets its own adapter; all adapters are active, only the current one
trains (earlier ones are frozen), and

    λ · Σ_{j < t} Σ_layers ‖A_t A_jᵀ‖²_F

is added to the loss, pushing the new adapter's input subspace (the rows of
A_t) away from those of earlier tasks. All adapters are created in
``prepare_model`` (see :func:`~forgetbench.methods.peft_adapters.add_task_adapters`).
Extra memory: one adapter per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from forgetbench.methods.base import Method, TaskContext
from forgetbench.methods.peft_adapters import LoRASettings, adapter_name, add_task_adapters
from forgetbench.validation import NonNegativeFloat


@dataclass
class OLoRA(Method):
    """Attributes:
    lora: each task adapter's rank, scaling, dropout and target modules.
    strength: λ, the weight of the orthogonality penalty.
    """

    name: str = "olora"
    lora: LoRASettings = field(default_factory=LoRASettings)
    strength: NonNegativeFloat = 0.5
    _current: int = field(default=0, init=False)

    def prepare_model(self, model, task_names):
        model = add_task_adapters(model, self.lora, len(task_names))
        model.base_model.set_adapter([adapter_name(i) for i in range(1, len(task_names) + 1)])
        self._freeze_all_but(model, 0)
        return model

    def before_task(self, ctx: TaskContext) -> None:
        self._current = ctx.step
        self._freeze_all_but(ctx.model, ctx.step)

    @staticmethod
    def _freeze_all_but(model, step: int) -> None:
        current = f".{adapter_name(step)}."
        for name, param in model.named_parameters():
            param.requires_grad = "lora_" in name and current in name

    def extra_loss(self, model) -> torch.Tensor | None:
        penalty = orthogonality(model, self._current)
        return None if penalty is None else self.strength * penalty

    def state_dict(self) -> dict:
        return {"current": self._current}

    def load_state_dict(self, state: dict) -> None:
        self._current = state["current"]


def orthogonality(model, current: int) -> torch.Tensor | None:
    """Σ over layers and earlier adapters j of ‖A_current A_jᵀ‖²_F."""
    total = None
    for module in model.modules():
        lora_a = getattr(module, "lora_A", None)
        if not isinstance(lora_a, torch.nn.ModuleDict) or adapter_name(current) not in lora_a:
            continue
        a_now = lora_a[adapter_name(current)].weight
        for j in range(1, current):
            term = (a_now @ lora_a[adapter_name(j)].weight.T).pow(2).sum()
            total = term if total is None else total + term
    return total
