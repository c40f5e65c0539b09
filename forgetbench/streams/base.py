"""What every stream shares: the checks every task file goes through, and the protocols a stream may
follow. (The records a stream hands the runner, ``StreamTask`` and ``Scoring``: :mod:`forgetbench.stream_records`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from datasets import Dataset, load_dataset

from forgetbench.errors import ForgetbenchError
from forgetbench.stream_records import CHOICE_COLUMNS, PAIR_COLUMNS, SYSTEM_COLUMN, Scoring, StreamTask


class _HasName(Protocol):
    name: str


Named = TypeVar("Named", bound=_HasName)


@runtime_checkable
class BringsGeneralText(Protocol):
    """A stream that also brings general text in its base model's style (the tiny world's held-out
    corpus text): the analogue of general instruction data, which ``replay`` can mix in."""

    def general_examples(self) -> Dataset:
        """``prompt``/``response`` rows of general text."""


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
