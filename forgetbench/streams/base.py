"""What a stream hands the runner, and the checks every task file goes through."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from datasets import Dataset, load_dataset

from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.task_configs import local_task_config

PAIR_COLUMNS = ("prompt", "response")
CHOICE_COLUMNS = ("question", "choices", "answer")


class _HasName(Protocol):
    name: str


Named = TypeVar("Named", bound=_HasName)


@dataclass
class StreamTask:
    """One task of a stream.

    Attributes:
        name: the task's name (also the trained_task column of the results).
        train: training rows with ``prompt`` and ``response`` columns.
        eval_config: inline lm-eval task config scoring the held-out rows.
    """

    name: str
    train: Dataset
    eval_config: dict

    @property
    def eval_name(self) -> str:
        return self.eval_config["task"]


def stream_eval_name(task: str) -> str:
    return f"stream_{task}"


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
    missing = [c for c in columns if c not in rows.column_names]
    if missing:
        raise ForgetbenchError(
            f"stream task {task!r}: {what} lacks columns {missing}; it has {rows.column_names}, needs {list(columns)}"
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
    if kind == "loglikelihood":
        require_columns(test, PAIR_COLUMNS, name, f"test file {str(test_file)!r}")
    return StreamTask(
        name, train.select_columns(list(PAIR_COLUMNS)), local_task_config(stream_eval_name(name), Path(test_file), kind)
    )


def apply_order(tasks: list[Named], order: list[str] | None) -> list[Named]:
    """The tasks (anything with a ``name``) in ``order``, or as given when ``order`` is empty."""
    if not order:
        return tasks
    by_name = {t.name: t for t in tasks}
    unknown = [n for n in order if n not in by_name]
    if unknown:
        raise ForgetbenchError(f"stream.order names unknown tasks {unknown}; valid: {sorted(by_name)}")
    return [by_name[n] for n in order]
