"""What a stream hands the rest of forgetbench: each task's training rows and held-out rows with how
to score them. Records only (no reading, no lm-eval): streams fill them, the evaluation and the
data check read them, so they sit below both."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from forgetbench.errors import ForgetbenchError

PAIR_COLUMNS = ("prompt", "response")
SYSTEM_COLUMN = "system"  # a training row's system prompt (a stream's or task's ``system_prompt``), when set
CHOICE_COLUMNS = ("question", "choices", "answer")
SCORING_KINDS = ("multiple_choice", "loglikelihood", "generation")


@dataclass(frozen=True)
class Scoring:
    """How a task's held-out rows are scored (``forgetbench.evaluation`` turns it into an lm-eval task).

    Attributes:
        kind: "multiple_choice" (rows: question, choices, answer index), "loglikelihood" (rows:
            prompt, response; acc = the response is the greedy continuation, and its perplexity) or
            "generation" (rows: prompt, response; a greedy generation is scored against the response).
        metrics: generation only: scores of
            :func:`forgetbench.evaluation.generation_metrics.score_generation` reported beside
            rouge_l and exact_match (e.g. a row's ``metric_functions``).
        max_new_tokens: generation only: the budget per item.
        report_chance: multiple choice only: also report ``chance`` (1 / the item's number of
            choices, averaged), for rows whose number of choices varies.
    """

    kind: str
    metrics: tuple[str, ...] = ()
    max_new_tokens: int = 64
    report_chance: bool = False

    def __post_init__(self) -> None:
        if self.kind not in SCORING_KINDS:
            raise ForgetbenchError(f"scoring kind {self.kind!r} is not valid; choose one of {SCORING_KINDS}")


@dataclass
class StreamTask:
    """One task of a stream: what to train on, and held-out rows with how to score them.

    Attributes:
        name: the task's name (the trained_task and stream_task columns of the results).
        train: training rows with ``prompt`` and ``response`` columns.
        test_file: a JSON/JSONL file of held-out rows, in the layout ``scoring.kind`` reads.
        scoring: how the held-out rows are scored.
        test_rows: the held-out rows themselves, instead of ``test_file`` (rendered from a user's
            files; the evaluation writes them where lm-eval reads them).
        dropped: rows each of the task's filters removed (for ``forgetbench data-check``).
    """

    name: str
    train: Dataset
    test_file: Path | None
    scoring: Scoring
    test_rows: Dataset | None = None
    dropped: dict[str, int] = field(default_factory=dict)
