"""LoRA (Hu et al. 2021) through peft: one low-rank adapter trained through the whole stream.

The base weights are frozen; only the adapter's A and B matrices train.
Extra memory: the adapter (2·r·d per targeted matrix) and its optimizer state,
far less than full fine-tuning's optimizer state.
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import LoraConfig, TaskType, get_peft_model

from forgetbench.methods.base import Method


def lora_config(model, r: int, alpha: int, dropout: float, target_modules: list[str] | None) -> LoraConfig:
    """A LoraConfig for ``model``; ``target_modules=None`` takes peft's default for the model family."""
    task = TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.CAUSAL_LM
    return LoraConfig(task_type=task, r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules)


@dataclass
class LoRA(Method):
    """Attributes:
    r: adapter rank.
    alpha: LoRA scaling numerator (the update is scaled by alpha / r).
    dropout: dropout on the adapter's input.
    target_modules: module names to adapt (null: peft's default for the family,
        e.g. q_proj/v_proj for Llama, query_key_value for BLOOM, q/v for T5 and mT5).
    """

    name: str = "lora"
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None

    def prepare_model(self, model, task_names):
        return get_peft_model(model, lora_config(model, self.r, self.alpha, self.dropout, self.target_modules))
