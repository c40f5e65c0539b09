"""The long-format results table: one schema, atomic appends, one reader for many runs.

A row is one metric of one eval task after one step. Each run keeps
``results.parquet`` (scores) and ``items/step-NNN.parquet`` (per-item outcomes,
for confidence intervals). Every write goes to a temporary file that is then
renamed over the old one, so a crash leaves either the old or the new table,
never half of one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from forgetbench.errors import ForgetbenchError

RESULTS_FILE = "results.parquet"
INSIDE_TASK_FILE = "inside_task.parquet"  # evaluations inside a task (eval.every_steps): the same rows, at finer steps
ITEMS_DIR = "items"

# eval_kind values: a task of the general-ability suite, or a stream task's held-out items
GENERAL = "general"
STREAM = "stream"

SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string()),  # the run directory's name
        pa.field("experiment", pa.string()),
        pa.field("model", pa.string()),  # model config name, e.g. bloomz-1b1
        pa.field("n_params", pa.int64()),
        pa.field("architecture", pa.string()),  # decoder | encoder-decoder
        pa.field("method", pa.string()),
        pa.field("seed", pa.int64()),
        pa.field("step", pa.int64()),  # 0 = before any fine-tuning, k = after the k-th task
        pa.field("trained_task", pa.string()),  # the task trained at this step ("" at step 0)
        pa.field("eval_kind", pa.string()),  # general (the eval suite) | stream (held-out stream task)
        pa.field("eval_task", pa.string()),
        pa.field("stream_task", pa.string()),  # the stream task whose held-out items these are ("" for general)
        pa.field("eval_category", pa.string()),  # the suite's category of the task ("stream" for stream tasks)
        pa.field("metric", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("stderr", pa.float64()),
        pa.field("n", pa.int64()),  # examples scored
        pa.field("wall_time", pa.float64()),  # seconds spent on this step (training and evaluation)
        pa.field("eval_seconds", pa.float64()),  # seconds scoring this eval task at this step (NaN: older tables)
        pa.field("config_hash", pa.string()),  # hash of the resolved config (paths excluded)
    ]
)

# A row of an evaluation inside step ``step``'s task: where in the task it was made
INSIDE_TASK_SCHEMA = pa.schema(
    [
        *SCHEMA,
        pa.field("inner_step", pa.int64()),  # optimizer steps of the task done when it was evaluated
        pa.field("task_steps", pa.int64()),  # the task's optimizer steps in all
    ]
)

ITEM_SCHEMA = pa.schema(
    [
        pa.field("step", pa.int64()),
        pa.field("eval_task", pa.string()),
        pa.field("doc_id", pa.int64()),
        pa.field("target", pa.string()),
        pa.field("pred", pa.int64()),  # index of the highest-scoring choice (-1: not multiple choice)
        pa.field("correct", pa.float64()),
        pa.field("logliks", pa.list_(pa.float32())),
        pa.field("response", pa.string()),  # the generated text ("" when scored by log-likelihood): what it said
        pa.field("route", pa.string()),  # the adapters a router chose for it (a stream task, base, merge; "" unrouted)
    ]
)


@dataclass(frozen=True)
class RunFacts:
    """What every row of one run shares."""

    run_id: str
    experiment: str
    model: str
    n_params: int
    architecture: str
    method: str
    seed: int
    config_hash: str


@dataclass(frozen=True)
class ResultRow(RunFacts):
    """One row of the long table: one metric of one eval task after one step (fields = SCHEMA's columns)."""

    step: int
    trained_task: str
    eval_kind: str
    eval_task: str
    stream_task: str
    eval_category: str
    metric: str
    value: float
    stderr: float | None
    n: int
    wall_time: float
    eval_seconds: float = float("nan")

    @classmethod
    def of(cls, facts: RunFacts, **fields) -> ResultRow:
        """A row of the run ``facts`` describe; ``fields`` are the rest (a missing or unknown one raises)."""
        return cls(**asdict(facts), **fields)


def _snapshot(path: Path) -> pa.Table:
    """The parquet file as one read of its bytes. Writers swap files in whole (``os.replace``), but
    pyarrow given a path opens it more than once (footer, then pages), so a read of a live run
    could mix the old file and the new one."""
    return pq.read_table(pa.BufferReader(path.read_bytes()))


# what reading a damaged parquet file raises (ArrowInvalid is a ValueError; a truncated file can raise OSError)
READ_ERRORS = (pa.ArrowException, OSError, ValueError, KeyError)


def unreadable(path: Path, err: BaseException, remedy: str) -> ForgetbenchError:
    """The one-line error for a damaged run file: which file, pyarrow's first line, what to do."""
    reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ForgetbenchError(f"{path} is unreadable ({reason}); {remedy}")


def _read(path: Path) -> pd.DataFrame:
    """A results file in the current schema; columns added since it was written are derived."""
    frame = _snapshot(path).to_pandas()
    stream = frame["eval_kind"] == STREAM if "eval_kind" in frame else None
    if "eval_category" not in frame and stream is not None:  # tables written before categories existed
        frame["eval_category"] = frame["eval_kind"].where(stream, "other")
    if "stream_task" not in frame and stream is not None:  # tables that named stream tasks stream_<task>
        frame["stream_task"] = frame["eval_task"].str.removeprefix("stream_").where(stream, "")
    if "eval_seconds" not in frame:  # tables written before evaluation was timed per task
        frame["eval_seconds"] = float("nan")
    missing = [name for name in SCHEMA.names if name not in frame]
    if missing:
        raise pa.ArrowInvalid(f"columns {missing} are missing")
    return _table(frame, SCHEMA).to_pandas()


def _write_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _table(rows: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pandas(rows[schema.names], schema=schema, preserve_index=False)


class RunTable:
    """The results of one run directory."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS_FILE

    def read(self) -> pd.DataFrame:
        if not self.path.exists():
            return SCHEMA.empty_table().to_pandas()
        try:
            return _read(self.path)
        except READ_ERRORS as err:
            raise unreadable(
                self.path,
                err,
                f"its rows cannot be rebuilt: remove {self.run_dir} to rerun from step 0 (the rows come out the same), "
                "or set run_name=... for a new run",
            ) from err

    def steps(self) -> set[int]:
        return set(self.read()["step"].unique().tolist())

    def append_step(self, rows: Iterable[ResultRow], items: pd.DataFrame, step: int) -> None:
        """Add one step's rows, replacing any earlier rows of that step (never duplicated)."""
        items = items.assign(step=step)
        if "response" not in items:  # outcomes scored by log-likelihood alone
            items = items.assign(response="")
        if "route" not in items:  # a method that routes nothing
            items = items.assign(route="")
        _write_atomic(_table(items, ITEM_SCHEMA), self.run_dir / ITEMS_DIR / f"step-{step:03d}.parquet")
        old = self.read()
        new = pd.DataFrame([asdict(row) for row in rows], columns=SCHEMA.names)
        merged = pd.concat([old[old["step"] != step], new], ignore_index=True) if len(old) else new
        _write_atomic(_table(merged, SCHEMA), self.path)

    def truncate_after(self, step: int) -> None:
        """Drop rows of steps after ``step`` (left by a crash before their checkpoint)."""
        old = self.read()
        if len(old) and (old["step"] > step).any():
            _write_atomic(_table(old[old["step"] <= step], SCHEMA), self.path)
        for path in (self.run_dir / ITEMS_DIR).glob("step-*.parquet"):
            if int(path.stem.split("-")[1]) > step:
                path.unlink()


class InsideTaskTable:
    """The evaluations of one run made inside its tasks (``eval.every_steps``), one file beside
    ``results.parquet``: the study's table keeps one point per task boundary, as every reader expects."""

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / INSIDE_TASK_FILE

    def read(self) -> pd.DataFrame:
        if not self.path.exists():
            return INSIDE_TASK_SCHEMA.empty_table().to_pandas()
        try:
            return _snapshot(self.path).to_pandas()
        except READ_ERRORS as err:
            raise unreadable(self.path, err, "remove it to rerun with eval.every_steps, or report without it") from err

    def append(self, rows: Iterable[ResultRow], inner_step: int, task_steps: int) -> None:
        """Add one inner evaluation's rows (rows of the same step and inner step are replaced)."""
        new = pd.DataFrame([asdict(row) for row in rows], columns=SCHEMA.names)
        new = new.assign(inner_step=inner_step, task_steps=task_steps)
        old = self.read()
        same = (old["step"] == new["step"].iloc[0]) & (old["inner_step"] == inner_step) if len(new) else False
        merged = pd.concat([old[~same], new], ignore_index=True) if len(old) else new
        _write_atomic(_table(merged, INSIDE_TASK_SCHEMA), self.path)

    def truncate_after(self, step: int, inner_step: int) -> None:
        """Keep the rows a checkpoint after step ``step`` and ``inner_step`` optimizer steps into step
        ``step`` + 1 had written; later ones (left by a crash before the next checkpoint) go."""
        old = self.read()
        keep = (old["step"] <= step) | ((old["step"] == step + 1) & (old["inner_step"] <= inner_step))
        if not keep.all():
            _write_atomic(_table(old[keep], INSIDE_TASK_SCHEMA), self.path)


def read_inside_task(run_dir: str | Path) -> pd.DataFrame:
    """A run's inside-task rows (an empty table when it made none)."""
    return InsideTaskTable(run_dir).read()


def read_results(*paths: str | Path) -> pd.DataFrame:
    """Every run's rows under ``paths`` (run or multirun directories, or results files) as one DataFrame."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_file():
            files.append(path)
        else:
            files.extend(sorted(path.rglob(RESULTS_FILE)))
    if not files:
        raise ForgetbenchError(f"no {RESULTS_FILE} found under {[str(p) for p in paths]}")
    frames = []
    for file in files:
        try:
            frames.append(_read(file))
        except READ_ERRORS as err:
            raise unreadable(file, err, "it is not a readable forgetbench results table, or it was damaged") from err
    return pd.concat(frames, ignore_index=True)


def read_items(run_dir: str | Path) -> pd.DataFrame:
    """The per-item outcomes of every evaluated step of a run."""
    files = sorted((Path(run_dir) / ITEMS_DIR).glob("step-*.parquet"))
    if not files:
        return ITEM_SCHEMA.empty_table().to_pandas()
    frames = []
    for file in files:
        try:
            frames.append(_snapshot(file).to_pandas())
        except READ_ERRORS as err:
            remedy = "remove it and the report leaves that step's items out (its confidence intervals)"
            raise unreadable(file, err, remedy) from err
    items = pd.concat(frames, ignore_index=True)
    for column in ("response", "route"):  # items written before the column existed
        items[column] = items[column].fillna("") if column in items else ""
    return items
