"""What ``forgetbench analyze`` does and how much (the ``analysis`` config group)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from forgetbench.validation import Fraction, NonNegativeFloat, Positive, PositiveFloat, check_fields

Part = Literal["recovery", "where", "drift"]


@dataclass
class AnalysisSettings:
    """Attributes:
    parts: which analyses to run: ``recovery`` (needs the final weights: keep_checkpoint=true or
        all), ``where`` and ``drift`` (need every step's weights: keep_checkpoint=all).
    probe_steps: optimizer steps of the recovery probe's training on each task that dropped.
    probe_lr: its learning rate (null: the run's train.lr).
    probe_examples: the task's own examples it trains on: a general task's items held apart from
        those scored (a seeded draw), a stream task's training rows.
    probe_batch_size: examples per probe step.
    min_drop: a task is probed when its headline score fell by at least this much (a fraction).
    spurious_share: a drop whose recovered share reaches this is read as spurious (task alignment
        lost), one below it as real (knowledge lost).
    drift_items: items of each general task whose hidden states are compared (CKA) across steps.
    bootstrap: draws of the paired item bootstrap behind the recovered share's 95% interval.
    seed: seeds the held-apart draw, the probe's batches and the bootstrap.
    """

    parts: list[Part] = field(default_factory=lambda: ["recovery", "where", "drift"])
    probe_steps: Positive = 30
    probe_lr: PositiveFloat | None = None
    probe_examples: Positive = 48
    probe_batch_size: Positive = 8
    min_drop: NonNegativeFloat = 0.02
    spurious_share: Fraction = 0.5
    drift_items: Positive = 32
    bootstrap: Positive = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        check_fields(self)
