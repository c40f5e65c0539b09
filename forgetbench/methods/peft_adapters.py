"""The peft code the adapter methods share: LoRA's settings and one adapter per stream task.

Used by ``lora`` (one adapter through the whole stream), ``adapters`` (one per
task, scored per task) and ``olora`` (one per task, kept orthogonal); no method
imports another.
"""

from __future__ import annotations

from dataclasses import dataclass

from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import PreTrainedModel

from forgetbench.validation import Positive, PositiveFloat, Probability, check_fields


@dataclass
class LoRASettings:
    """One LoRA adapter's shape (the ``lora`` node of an adapter method's config).

    Attributes:
        r: adapter rank.
        alpha: LoRA scaling numerator (the update is scaled by alpha / r).
        dropout: dropout on the adapter's input.
        target_modules: module names to adapt (null: peft's default for the family,
            e.g. q_proj/v_proj for Llama, query_key_value for BLOOM, q/v for T5 and mT5).
    """

    r: Positive = 8
    alpha: PositiveFloat = 16
    dropout: Probability = 0.0
    target_modules: list[str] | None = None

    def __post_init__(self) -> None:
        check_fields(self)

    def config(self, model: PreTrainedModel) -> LoraConfig:
        """A LoraConfig for ``model``'s family (causal or seq2seq)."""
        task = TaskType.SEQ_2_SEQ_LM if model.config.is_encoder_decoder else TaskType.CAUSAL_LM
        return LoraConfig(
            task_type=task,
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
        )


def adapter_name(index: int) -> str:
    """The adapter of the ``index``-th stream task (1-based)."""
    return f"task{index}"


def add_task_adapters(model: PreTrainedModel, settings: LoRASettings, n_tasks: int) -> PeftModel:
    """Wrap ``model`` with one untrained adapter per stream task, named :func:`adapter_name`.

    An untrained adapter adds nothing (LoRA's B starts at zero), so the wrapped model computes
    what the base does; a resumed run rebuilds the same structure before loading the weights.
    """
    config = settings.config(model)
    wrapped = get_peft_model(model, config, adapter_name=adapter_name(1))
    for index in range(2, n_tasks + 1):
        wrapped.add_adapter(adapter_name(index), config)
    return wrapped
