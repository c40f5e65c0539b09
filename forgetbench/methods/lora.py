"""LoRA (Hu et al. 2021) through peft: one low-rank adapter trained through the whole stream.

The base weights are frozen; only the adapter's A and B matrices train.
Extra memory: the adapter (2·r·d per targeted matrix) and its optimizer state,
far less than full fine-tuning's optimizer state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from peft import get_peft_model

from forgetbench.methods.base import Method
from forgetbench.methods.peft_adapters import LoRASettings


@dataclass
class LoRA(Method):
    """Attributes:
    lora: the adapter's rank, scaling, dropout and target modules.
    """

    name: str = "lora"
    lora: LoRASettings = field(default_factory=LoRASettings)

    def prepare_model(self, model, task_names):
        return get_peft_model(model, self.lora.config(model))
