"""``logger=csv``: every logged number as a row of ``<run_dir>/csv/metrics.csv``, and the config.

Plain files a script or a spreadsheet reads with no tracker installed (as Lightning's CSVLogger).
Columns: ``time, kind, stream_step, task, step, key, value`` (kind: train, eval or summary). A
resumed run appends to the same file.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from forgetbench.loggers import RunInfo, Tracker, row_key, summary_metrics
from forgetbench.results import ResultRow
from forgetbench.training import StepStats

COLUMNS = ["time", "kind", "stream_step", "task", "step", "key", "value"]


@dataclass
class CSVLogger(Tracker):
    """Attributes:
    folder: the folder under the run's directory that holds metrics.csv and config.yaml.
    """

    folder: str = "csv"

    def start(self, run: RunInfo) -> None:
        out = run.run_dir / self.folder
        out.mkdir(parents=True, exist_ok=True)
        record = {"config_hash": run.config_hash, "config": run.config}
        (out / "config.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
        self._path: Path = out / "metrics.csv"
        if not self._path.exists():
            self._write([COLUMNS])

    def log_training(self, stream_step: int, task: str, stats: StepStats) -> None:
        now = time.time()
        self._write(
            [
                [now, "train", stream_step, task, stats.step, "loss", stats.loss],
                [now, "train", stream_step, task, stats.step, "tokens_per_second", stats.tokens_per_second],
            ]
        )

    def log_rows(self, rows: list[ResultRow]) -> None:
        now = time.time()
        self._write([[now, "eval", r.step, r.stream_task, "", row_key(r), r.value] for r in rows])

    def log_report(self, report_dir: Path) -> None:
        now = time.time()
        self._write([[now, "summary", "", "", "", key, value] for key, value in summary_metrics(report_dir).items()])

    def _write(self, lines: list[list]) -> None:
        with self._path.open("a", newline="") as file:
            csv.writer(file).writerows(lines)
