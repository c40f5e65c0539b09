"""What a stream hands the runner (data, never lm-eval configs), and the checks every task file goes through."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from datasets import Dataset, load_dataset

from forgetbench.errors import ForgetbenchError

PAIR_COLUMNS = ("prompt", "response")
SYSTEM_COLUMN = "system"  # a training row's system prompt (a stream's or task's ``system_prompt``), when set
CHOICE_COLUMNS = ("question", "choices", "answer")
SCORING_KINDS = ("multiple_choice", "loglikelihood", "generation")


class _HasName(Protocol):
    name: str


Named = TypeVar("Named", bound=_HasName)


@runtime_checkable
class BringsGeneralText(Protocol):
    """A stream that also brings general text in its base model's style (the tiny world's held-out
    corpus text): the analogue of general instruction data, which ``replay`` can mix in."""

    def general_examples(self) -> Dataset:
        """``prompt``/``response`` rows of general text."""


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


def read_rows(path: str | Path, task: str, split: str) -> Dataset:
    """Rows of a JSON/JSONL file through ``datasets``, or a one-line error saying what is wrong."""
    path = Path(path)
    if not path.is_file():
        raise ForgetbenchError(f"stream task {task!r}: {split} file {str(path)!r} does not exist")
    with path.open() as f:
        blank = not f.read(4096).strip()
    if blank:
        raise ForgetbenchError(f"stream task {task!r}: {split} file {str(path)!r} is empty")
    try:
        rows = load_dataset("json", data_files=str(path), split="train")
    except Exception as err:  # datasets wraps JSON errors in several exception types
        raise ForgetbenchError(f"stream task {task!r}: {split} file {str(path)!r} is not valid JSON lines") from err
    if len(rows) == 0:
        raise ForgetbenchError(f"stream task {task!r}: {split} file {str(path)!r} is empty")
    return rows


def require_columns(rows: Dataset, columns: tuple[str, ...], task: str, what: str) -> None:
    """Every row has a value in each of ``columns``: a JSON-lines file that leaves a field out of one
    row (or sets it to null) still has the column, with None in that row, which would fail mid-run."""
    missing = [c for c in columns if c not in rows.column_names]
    if missing:
        raise ForgetbenchError(
            f"stream task {task!r}: {what} lacks columns {missing}; it has {rows.column_names}, needs {list(columns)}"
        )
    for column in columns:
        if not rows.with_format("arrow")[column].null_count:  # Arrow counts them: no row is read when none lacks it
            continue
        empty = next((i for i, value in enumerate(rows[column]) if value is None), None)
        if empty is not None:
            raise ForgetbenchError(
                f"stream task {task!r}: {what} row {empty + 1} has no {column!r} (missing or null); "
                f"every row needs {list(columns)}"
            )


def local_stream_task(name: str, train_file: str | Path, test_file: str | Path, max_train: int | None) -> StreamTask:
    """A task from local files: ``prompt``/``response`` rows to train on, held-out rows to score.

    Held-out rows with ``question``/``choices``/``answer`` are scored as multiple
    choice; rows with ``prompt``/``response`` by the log-likelihood of the response.
    """
    train = read_rows(train_file, name, "train")
    require_columns(train, PAIR_COLUMNS, name, f"train file {str(train_file)!r}")
    if max_train is not None:
        train = train.select(range(min(max_train, len(train))))
    test = read_rows(test_file, name, "test")
    kind = "multiple_choice" if all(c in test.column_names for c in CHOICE_COLUMNS) else "loglikelihood"
    require_columns(
        test, CHOICE_COLUMNS if kind == "multiple_choice" else PAIR_COLUMNS, name, f"test file {str(test_file)!r}"
    )
    return StreamTask(name, train.select_columns(list(PAIR_COLUMNS)), Path(test_file).resolve(), Scoring(kind))


def with_system_prompt(tasks: list[StreamTask], system_prompt: str | None) -> list[StreamTask]:
    """The tasks with ``system_prompt`` in a ``system`` column of their training rows (what a chat
    template renders as the system turn; plain text ignores it); unchanged for None."""
    for task in tasks:
        if system_prompt is not None:
            train = task.train.remove_columns([c for c in (SYSTEM_COLUMN,) if c in task.train.column_names])
            task.train = train.add_column(SYSTEM_COLUMN, [system_prompt] * len(train))
    return tasks


def training_rows(rows: Dataset) -> list[dict]:
    """Each row's prompt, response and system prompt (None when it has none): what a method that
    mixes rows of several tasks (replay) keeps of them."""
    system = rows[SYSTEM_COLUMN] if SYSTEM_COLUMN in rows.column_names else [None] * len(rows)
    return [
        {"prompt": p, "response": r, SYSTEM_COLUMN: s}
        for p, r, s in zip(rows["prompt"], rows["response"], system, strict=True)
    ]


def apply_order(tasks: list[Named], order: list[str] | None) -> list[Named]:
    """The tasks (anything with a ``name``) in ``order``, or as given when ``order`` is empty."""
    if not order:
        return tasks
    by_name = {t.name: t for t in tasks}
    unknown = [n for n in order if n not in by_name]
    if unknown:
        raise ForgetbenchError(f"stream.order names unknown tasks {unknown}; valid: {sorted(by_name)}")
    return [by_name[n] for n in order]
