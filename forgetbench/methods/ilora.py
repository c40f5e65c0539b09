"""I-LoRA (Ren et al. 2024, "Analyzing and Reducing Catastrophic Forgetting in Parameter Efficient
Tuning"): a fast LoRA adapter trains; a slow one follows it as an exponential moving average and is
the model that is evaluated.

After every optimizer step, for every LoRA weight,

    slow ← β · slow + (1 − β) · fast

and the task loss gains I-LoRA's consistency term, which keeps the fast learner's representations near
the slow one's on the batch:

    γ · mean over the batch's real tokens of ||h_fast − h_slow||²

with h the last hidden state (a decoder's; an encoder-decoder's decoder). Both adapters sit in one peft
model (``fast`` and ``slow``); the slow one never trains. Extra memory: a second adapter. Extra time:
two forward passes per micro-batch for the consistency term (the slow learner's, without gradients,
and the fast one's hidden states) and the average after every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from peft import get_peft_model

from forgetbench.methods.base import Method
from forgetbench.methods.peft_adapters import LoRASettings
from forgetbench.validation import Fraction, NonNegativeFloat

FAST, SLOW = "fast", "slow"


@contextlib.contextmanager
def active(model, adapter: str) -> Iterator[None]:
    """``adapter`` active (peft's set_adapter also makes it the trainable one), then ``fast`` again."""
    model.base_model.set_adapter(adapter)
    try:
        yield
    finally:
        model.base_model.set_adapter(FAST)


def last_hidden(outputs, encoder_decoder: bool) -> torch.Tensor:
    return (outputs.decoder_hidden_states if encoder_decoder else outputs.hidden_states)[-1]


@dataclass
class ILoRA(Method):
    """Attributes:
    lora: both adapters' rank, scaling, dropout and target modules.
    ema: β, the slow adapter's share of itself at each step (0.99: it follows over ~100 steps).
    consistency: γ, the weight of the hidden-state consistency term (0: none).
    """

    name: str = "ilora"
    lora: LoRASettings = field(default_factory=LoRASettings)
    ema: Fraction = 0.99
    consistency: NonNegativeFloat = 1.0

    def prepare_model(self, model, task_names):
        wrapped = get_peft_model(model, self.lora.config(model), adapter_name=FAST)
        wrapped.add_adapter(SLOW, self.lora.config(model))
        with torch.no_grad():  # the slow learner starts where the fast one does
            for name, param in wrapped.named_parameters():
                if f".{SLOW}." in name:
                    param.copy_(dict(wrapped.named_parameters())[name.replace(f".{SLOW}.", f".{FAST}.")])
        wrapped.base_model.set_adapter(FAST)
        return wrapped

    def _pairs(self, model) -> list[tuple[torch.nn.Parameter, torch.nn.Parameter]]:
        params = dict(model.named_parameters())
        return [(params[n.replace(f".{FAST}.", f".{SLOW}.")], p) for n, p in params.items() if f".{FAST}." in n]

    @torch.no_grad()
    def after_update(self, model) -> None:
        for slow, fast in self._pairs(model):
            slow.mul_(self.ema).add_(fast, alpha=1 - self.ema)

    def batch_loss(self, model, inputs: dict) -> torch.Tensor | None:
        if self.consistency == 0:
            return None
        encoder_decoder = model.config.is_encoder_decoder
        with torch.no_grad(), active(model, SLOW):
            slow = last_hidden(model(**inputs, output_hidden_states=True), encoder_decoder)
        fast = last_hidden(model(**inputs, output_hidden_states=True), encoder_decoder)
        if encoder_decoder:
            mask = (inputs["labels"] != -100).unsqueeze(-1).to(fast.dtype)
        else:
            mask = inputs.get("attention_mask", torch.ones(fast.shape[:2], device=fast.device)).unsqueeze(-1)
        squared = ((fast - slow) ** 2).sum(-1, keepdim=True)
        return self.consistency * (squared * mask).sum() / mask.sum().clamp(min=1)

    @contextlib.contextmanager
    def evaluating(self, model, eval_task: str, stream_task: str = "") -> Iterator[None]:
        """The slow learner is the model scored."""
        with active(model, SLOW):
            yield
