"""A router fitted after each task: a linear probe on the frozen base's prompt features.

After task t, the features (:mod:`.features`) of up to ``examples`` of its training prompts are kept,
and a softmax regression over every task seen so far is fitted afresh on the kept features
(standardised, full batch, from zero: the same features give the same probe). The features do not
change (adapters off), so keeping them is keeping the router's own small training set, not the
tasks' data. With ``base_class`` the stream's general text (if it brings any) is a class of its own,
routed to the base, so general questions can keep the base's answers. (A nearest-centroid rule
routed 92% of the explicit style stream's held-out prompts right, the probe 100%: the style's cue is
one word among ten, and a mean of features blurs it.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from forgetbench.routing import BASE
from forgetbench.routing.features import prompt_features
from forgetbench.validation import Positive, PositiveFloat, check_fields

log = logging.getLogger(__name__)


@dataclass
class ProbeRouter:
    """Attributes:
    examples: training prompts per task whose features the probe is fitted on.
    base_class: also a class of the stream's general text, routed to the base (no adapter).
    fit_steps: full-batch Adam steps of each fit.
    fit_lr: their learning rate.
    batch_size: prompts per forward pass when computing features.
    """

    examples: Positive = 200
    base_class: bool = False
    fit_steps: Positive = 300
    fit_lr: PositiveFloat = 0.05
    batch_size: Positive = 64
    _features: dict[str, torch.Tensor] = field(default_factory=dict, init=False)
    _probe: dict[str, torch.Tensor] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        check_fields(self)

    def describe(self, hidden: int, tasks: int) -> None:
        """Log the probe's size: weights and bias per class, a feature mean and scale; and the features kept."""
        classes = tasks + self.base_class
        size = hidden * classes + classes + 2 * hidden
        kept = self.examples * classes * hidden
        log.info(
            f"classifier router: a probe of {size:,} parameters over {classes} classes; keeps ≤ {kept:,} feature values"
        )

    def fit(self, model, tokenizer, task: str, prompts: list[str], general: list[str] | None) -> None:
        """Keep ``task``'s features (and the base's, once, from ``general`` with ``base_class``), refit
        the probe on all kept features, and log how many it routes to their own class."""
        classes = {task: prompts[: self.examples]}
        if self.base_class and general and BASE not in self._features:
            classes[BASE] = general[: self.examples]
        for name, texts in classes.items():
            self._features[name] = prompt_features(model, tokenizer, texts, self.batch_size).cpu()
        features, labels = self._training_set()
        self._probe = _fit_softmax_regression(features, labels, len(self._features), self.fit_steps, self.fit_lr)
        accuracy = (self._predict(features) == labels).float().mean().item()
        log.info(f"classifier router after {task!r}: classes {list(self._features)}; fit accuracy {accuracy:.3f}")

    def _training_set(self) -> tuple[torch.Tensor, torch.Tensor]:
        blocks = list(self._features.values())
        labels = [torch.full((len(b),), i) for i, b in enumerate(blocks)]
        return torch.cat(blocks), torch.cat(labels)

    def choose(self, model, tokenizer, contexts: list[str]) -> list[str]:
        """Each context's class by the probe (a task, or the base)."""
        if not self._features:
            return [BASE] * len(contexts)
        names = list(self._features)
        predicted = self._predict(prompt_features(model, tokenizer, contexts, self.batch_size).cpu())
        return [names[i] for i in predicted.tolist()]

    def _predict(self, features: torch.Tensor) -> torch.Tensor:
        p = self._probe
        return (((features - p["mean"]) / p["std"]) @ p["weight"] + p["bias"]).argmax(dim=1)

    def state_dict(self) -> dict:
        return {"features": dict(self._features), "probe": dict(self._probe)}

    def load_state_dict(self, state: dict) -> None:
        self._features, self._probe = dict(state["features"]), dict(state["probe"])


def _fit_softmax_regression(
    features: torch.Tensor, labels: torch.Tensor, classes: int, steps: int, lr: float
) -> dict[str, torch.Tensor]:
    """Multinomial logistic regression on standardised features, full batch, weights from zero."""
    mean, std = features.mean(0), features.std(0, unbiased=False) + 1e-6
    x = (features - mean) / std
    weight = torch.zeros(x.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    with torch.enable_grad():
        for _ in range(steps if classes > 1 else 0):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(x @ weight + bias, labels).backward()
            optimizer.step()
    return {"mean": mean, "std": std, "weight": weight.detach(), "bias": bias.detach()}
