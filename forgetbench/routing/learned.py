"""A learned router: a mixture-of-LoRA-experts gate over the task adapters, trained with each task.

Per sequence, the gate reads the frozen base's features of the prompt (:mod:`.features`) and weighs
the adapters trained so far plus the current one: g = softmax(s · W f) over adapters 1..t, s the
``logit_scale`` (features are unit vectors, so without it the gate's logits move too little at the
task's learning rate). While task t trains, adapters 1..t are all active, each one's output scaled
per sequence by its weight (a soft mixture), adapters 1..t−1 frozen; the gate and adapter t learn,
with the standard load-balancing term of Switch Transformers,

    L_bal = λ · t · Σ_i f_i · P_i

(f_i: the share of the batch's sequences whose largest weight is adapter i; P_i: the mean weight of
adapter i), added to the task loss. At evaluation each input is scored with the same soft mixture
(its requests on their own: the weights are the input's), and its route recorded is its heaviest
adapter.

The gate is a module of the wrapped model (``router_gate``), so the run checkpoint keeps it and a
resumed run routes as the uninterrupted one. Packed rows (several examples in one sequence) and the
chunked loss (which calls the model's parts) are refused: the gate needs one prompt per row.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass, field

import torch
from peft import PeftModel

from forgetbench.errors import ForgetbenchError
from forgetbench.routing.features import pooled_hidden, prompt_features
from forgetbench.validation import NonNegativeFloat, PositiveFloat, check_fields

log = logging.getLogger(__name__)
GATE = "router_gate"  # the gate's name among the model's modules (and in its state dict)


@dataclass
class LearnedGate:
    """Attributes:
    balance_weight: λ, the load-balancing term's weight.
    logit_scale: s, the gate's logits are s · W f for unit features f.
    """

    balance_weight: NonNegativeFloat = 0.01
    logit_scale: PositiveFloat = 16.0
    _adapters: list[str] = field(default_factory=list, init=False)
    _weights: torch.Tensor | None = field(default=None, init=False)  # (batch, adapters) while training
    _handles: list = field(default_factory=list, init=False)
    _context_weights: dict[str, torch.Tensor] = field(default_factory=dict, init=False)  # evaluation's, per context

    def __post_init__(self) -> None:
        check_fields(self)

    def attach(self, model: PeftModel, adapters: list[str]) -> None:
        """Add the gate (zero: every adapter weighed alike) and the hooks that scale each adapter's output."""
        self._adapters = list(adapters)
        hidden = model.get_base_model().config.hidden_size
        gate = torch.nn.Linear(hidden, len(adapters), device=next(model.parameters()).device)
        torch.nn.init.zeros_(gate.weight)
        torch.nn.init.zeros_(gate.bias)
        model.add_module(GATE, gate)
        for module in model.modules():
            lora_b = getattr(module, "lora_B", None)
            if isinstance(lora_b, torch.nn.ModuleDict):
                for index, name in enumerate(adapters):
                    if name in lora_b:
                        lora_b[name].register_forward_hook(self._scale_hook(index))
        size = sum(p.numel() for p in gate.parameters())
        log.info(f"learned router: gate of {size:,} parameters over {len(adapters)} adapters")

    def _scale_hook(self, index: int):
        def scale(module, inputs, output):
            if self._weights is None:  # evaluation: one adapter, unscaled
                return None
            return output * self._weights[:, index].to(output.dtype).view(-1, *[1] * (output.dim() - 1))

        return scale

    def start_task(self, model: PeftModel, step: int, packing: bool, fused_loss: bool) -> None:
        """Before task ``step``: adapters 1..step active, the earlier ones frozen, the gate trainable,
        and a pre-hook that weighs the adapters for every training batch."""
        if packing or fused_loss:
            raise ForgetbenchError(
                f"method.route=learned needs one prompt per row: set train.packing=false and train.fused_loss=false "
                f"(now packing={packing}, fused_loss={fused_loss})"
            )
        model.base_model.set_adapter(self._adapters[:step])
        for name, param in model.named_parameters():
            earlier = any(f".{a}." in name for a in self._adapters[: step - 1])
            if earlier:
                param.requires_grad_(False)
        getattr(model, GATE).requires_grad_(True)
        self._handles.append(model.register_forward_pre_hook(self._weigh(model, step), with_kwargs=True))

    def _weigh(self, model: PeftModel, step: int):
        def weigh(module, args, kwargs):
            input_ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
            if input_ids is None or not module.training:
                return None
            if mask is None:
                mask = torch.ones_like(input_ids)
            labels = kwargs.get("labels")
            prompt = mask if model.config.is_encoder_decoder or labels is None else mask * (labels == -100)
            features = pooled_hidden(model, input_ids, mask, prompt, functools.partial(self._off, len(input_ids)))
            self._weights = self._gate_weights(model, features, step)
            return None

        return weigh

    @contextlib.contextmanager
    def _off(self, batch: int):
        """Every adapter's output scaled by zero: the base's output exactly, without peft's
        ``disable_adapter``, which would make the frozen adapters trainable again on leaving."""
        self._weights = torch.zeros(batch, len(self._adapters))
        try:
            yield
        finally:
            self._weights = None

    def _gate_weights(self, model: PeftModel, features: torch.Tensor, step: int) -> torch.Tensor:
        logits = self.logit_scale * getattr(model, GATE)(features.to(next(model.parameters()).dtype))
        return torch.softmax(logits[:, :step].float(), dim=-1)

    def balance_loss(self) -> torch.Tensor | None:
        """λ · t · Σ_i f_i P_i of the last training batch's weights (None outside training)."""
        if self._weights is None or self.balance_weight == 0:
            return None
        weights = self._weights
        chosen = torch.nn.functional.one_hot(weights.argmax(dim=1), weights.shape[1]).float().mean(0)
        return self.balance_weight * weights.shape[1] * (chosen * weights.mean(0)).sum()

    def end_task(self) -> None:
        """After a task: no more training weights; the pre-hook removed."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._weights = None

    def choose(self, model: PeftModel, tokenizer, contexts: list[str], trained: int) -> list[int]:
        """Each context's heaviest adapter among the ``trained`` first (its index, 0-based); the weights
        are kept for :meth:`mixing` to score the context with."""
        features = prompt_features(model, tokenizer, contexts)
        with torch.no_grad():
            weights = self._gate_weights(model, features, trained)
        self._context_weights = {c: w.unsqueeze(0) for c, w in zip(contexts, weights)}
        return weights.argmax(dim=1).tolist()

    @contextlib.contextmanager
    def mixing(self, model: PeftModel, context: str, trained: int):
        """Adapters 1..``trained`` active, each scaled by the gate's weight for ``context`` (as in training)."""
        model.base_model.set_adapter(self._adapters[:trained])
        self._weights = self._context_weights[context]
        try:
            yield
        finally:
            self._weights = None
