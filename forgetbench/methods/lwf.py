"""Learning without Forgetting (Li & Hoiem 2017), for language models: while a task trains, its
token distributions on the task's own inputs are kept close to those of the model before the task.

    loss = task loss + λ · T² · mean_positions KL( softmax(z_teacher / T) ‖ softmax(z_student / T) )

over the positions the task loss scores (a decoder's logits that predict a labelled token; an
encoder-decoder's labelled decoder positions). The teacher is a frozen copy of the model as it was
before the task (the previous step's weights, the base at the first task), also for LoRA runs (a copy,
not LoRA switched off: the copy holds earlier tasks' adapters too). Extra memory: one copy of the
weights. Extra time: two forward passes per micro-batch, the teacher's and the student's own for its
logits (the loop's pass keeps only the loss). λ = 0 is plain training (no teacher is made). The
teacher travels in a mid-task checkpoint, so a resumed task distils from the same weights.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from forgetbench.methods.base import Method, TaskContext
from forgetbench.validation import NonNegativeFloat, PositiveFloat


def scored_logits(logits: torch.Tensor, labels: torch.Tensor, encoder_decoder: bool) -> torch.Tensor:
    """The logits of the positions the task loss scores: (positions × vocabulary)."""
    if encoder_decoder:
        return logits[labels != -100]
    return logits[:, :-1][labels[:, 1:] != -100]  # a decoder's logit at i predicts token i + 1


def distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · mean over positions of KL(softmax(teacher/T) ‖ softmax(student/T)) (Hinton et al. 2015's scale)."""
    if not len(student):
        return student.sum() * 0
    log_student = F.log_softmax(student.float() / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher.float() / temperature, dim=-1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(-1)
    return temperature**2 * kl.mean()


@dataclass
class LwF(Method):
    """Attributes:
    strength: λ, the weight of the distillation term (0: plain training).
    temperature: T, the softmax temperature of both distributions.
    """

    name: str = "lwf"
    strength: NonNegativeFloat = 1.0
    temperature: PositiveFloat = 2.0
    _teacher: torch.nn.Module | None = field(default=None, init=False, repr=False)
    _resumed_teacher: dict | None = field(default=None, init=False, repr=False)

    def before_task(self, ctx: TaskContext) -> None:
        if self.strength == 0:
            return
        self._teacher = copy.deepcopy(ctx.model).eval().requires_grad_(False)
        if self._resumed_teacher is not None:  # a task resumed from a mid-task checkpoint: its own teacher
            self._teacher.load_state_dict(self._resumed_teacher)
            self._resumed_teacher = None

    def batch_loss(self, model, inputs: dict) -> torch.Tensor | None:
        if self._teacher is None:
            return None
        labels = inputs["labels"]
        with torch.no_grad():
            teacher = self._teacher(**inputs).logits
        student = model(**inputs).logits
        encoder_decoder = model.config.is_encoder_decoder
        pair = scored_logits(student, labels, encoder_decoder), scored_logits(teacher, labels, encoder_decoder)
        return self.strength * distillation(*pair, self.temperature)

    def after_task(self, ctx: TaskContext) -> None:
        self._teacher = None

    def state_dict(self) -> dict:
        teacher = None if self._teacher is None else {n: t.cpu() for n, t in self._teacher.state_dict().items()}
        return {"teacher": teacher}

    def load_state_dict(self, state: dict) -> None:
        self._resumed_teacher = state["teacher"]
