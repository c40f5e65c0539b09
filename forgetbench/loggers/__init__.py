"""Experiment trackers (the ``logger`` config group): where a lab browses its runs.

Each option of ``conf/logger/`` is one module here: ``csv``, ``tensorboard``, ``mlflow``, ``wandb``;
``logger=none`` (the default) tracks nothing, and ``logger=[csv,tensorboard]`` several at once. A
tracker gets, from the recipe, in this order:

- ``start``: once the run is accepted: its resolved config and config hash; a resumed run
  continues the tracked run it started (the same W&B id, MLflow run, TensorBoard folder);
- ``log_training``: after every optimizer step: the task's loss and tokens/s, keyed by the stream
  task (each task's steps count from 1: a curve per task);
- ``log_rows``: every result row as it is written, keyed ``<eval_task>/<metric>`` at the stream
  step (0: before the first task);
- ``log_report``: the report's figures and summary, when the run's report is written;
- ``finish``: always, last.

The runs of a multirun are grouped: a W&B group, an MLflow parent run, one TensorBoard folder per
sweep. Every tracker works offline (W&B's offline mode, an MLflow file store, event files); the
packages are optional extras (``pip install 'forgetbench[wandb]'``), and a missing one is a
one-line error before the run starts.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgetbench.errors import ForgetbenchError
from forgetbench.hashing import stable_hash
from forgetbench.results import ResultRow
from forgetbench.training import StepStats


@dataclass
class RunInfo:
    """What a tracker names and groups a run by.

    Attributes:
        run_dir: the run's folder.
        run_name: the run's name (``run_name``).
        experiment: ``experiment_name``.
        sweep_dir: a multirun's folder (its jobs are grouped); None for a single run.
        config: the resolved config.
        config_hash: the hash results carry (resumes match on it).
    """

    run_dir: Path
    run_name: str
    experiment: str
    sweep_dir: Path | None
    config: dict[str, Any]
    config_hash: str

    @property
    def run_id(self) -> str:
        """A stable id of this run: the same after a resume (its folder and config do not change)."""
        return f"{self.run_name[:40]}-{stable_hash([str(self.run_dir.resolve()), self.config_hash], length=10)}"


class Tracker:
    """A tracker's hooks; each is a no-op here."""

    def start(self, run: RunInfo) -> None:
        """Open (or, on resume, reopen) the tracked run."""

    def log_training(self, stream_step: int, task: str, stats: StepStats) -> None:
        """One optimizer step of stream task ``task`` (at ``stream_step``): its loss and throughput."""

    def log_rows(self, rows: list[ResultRow]) -> None:
        """The rows just appended to the results table (one stream step's)."""

    def log_report(self, report_dir: Path) -> None:
        """The report's figures (PNG) and summary table (``summary.csv``)."""

    def finish(self) -> None:
        """Close the tracked run (also after a failure)."""


class Trackers(Tracker):
    """Several trackers as one: every hook goes to each, in the configured order."""

    def __init__(self, trackers: list[Tracker]) -> None:
        self.trackers = trackers
        self.started = False

    def start(self, run: RunInfo) -> None:
        self.started = True
        for tracker in self.trackers:
            tracker.start(run)

    def log_training(self, stream_step: int, task: str, stats: StepStats) -> None:
        for tracker in self.trackers:
            tracker.log_training(stream_step, task, stats)

    def log_rows(self, rows: list[ResultRow]) -> None:
        for tracker in self.trackers:
            tracker.log_rows(rows)

    def log_report(self, report_dir: Path) -> None:
        for tracker in self.trackers:
            tracker.log_report(report_dir)

    def finish(self) -> None:
        if self.started:
            for tracker in self.trackers:
                tracker.finish()


def require(module: str, extra: str, option: str) -> Any:
    """``module`` imported, or the one-line error naming the extra that installs it."""
    if importlib.util.find_spec(module) is None:
        raise ForgetbenchError(
            f"logger={option} needs the {module} package, which is not installed: "
            f"pip install 'forgetbench[{extra}]' (or choose another logger)"
        )
    return importlib.import_module(module)


def row_key(row: ResultRow) -> str:
    """A result row's metric name in a tracker: ``<eval_task>/<metric>``."""
    return f"{row.eval_task}/{row.metric}"


def summary_metrics(report_dir: Path) -> dict[str, float]:
    """The report's summary (``summary.csv``, one row per run) as ``summary/<column>`` numbers."""
    import pandas as pd

    path = report_dir / "summary.csv"
    if not path.exists():
        return {}
    summary = pd.read_csv(path)
    numbers = summary.select_dtypes("number")
    if len(numbers) != 1:  # one run's report has one row
        return {}
    return {f"summary/{column}": float(value) for column, value in numbers.iloc[0].items() if pd.notna(value)}
