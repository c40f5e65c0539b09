"""Refusal judged by a classifier model (a refusal or guard classifier with a sequence-classification
head, e.g. ProtectAI/distilroberta-base-rejection-v1), loaded from a path or a Hub ID through
transformers' text-classification pipeline."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from forgetbench.errors import ForgetbenchError


@dataclass(frozen=True)
class ClassifierJudge:
    """Refusal when the classifier's top label is one of ``refusal_labels``.

    Attributes:
        path: the classifier (a local folder or a Hub ID; the Hub needs network).
        refusal_labels: the labels that mean a refusal (the model's ``id2label`` names).
        with_prompt: classify the (request, completion) pair rather than the completion alone.
        device: where it runs (-1: CPU; 0: the first GPU).
    """

    path: str
    refusal_labels: tuple[str, ...] = ("REJECTION",)
    with_prompt: bool = False
    device: int = -1
    max_length: int = 512

    def __post_init__(self) -> None:
        object.__setattr__(self, "refusal_labels", tuple(self.refusal_labels))
        labels = set(self._pipeline().model.config.id2label.values())
        unknown = sorted(set(self.refusal_labels) - labels)
        if unknown:
            raise ForgetbenchError(
                f"judge.refusal_labels={list(self.refusal_labels)!r}: {unknown} not among the classifier's "
                f"labels {sorted(labels)}"
            )

    def refused(self, prompt: str, completion: str) -> bool:
        text = {"text": prompt, "text_pair": completion} if self.with_prompt else completion
        return self._pipeline()(text, truncation=True, max_length=self.max_length)[0]["label"] in self.refusal_labels

    def _pipeline(self):
        return _load(self.path, self.device)


@functools.cache
def _load(path: str, device: int):
    from transformers import pipeline  # only a classifier judge pays for the import

    try:
        return pipeline("text-classification", model=path, device=device)
    except OSError as error:
        raise ForgetbenchError(f"judge.path={path!r}: no classifier there ({error})") from error
