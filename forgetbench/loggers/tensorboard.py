"""``logger=tensorboard``: event files, read by ``tensorboard --logdir``.

A single run writes to ``<run_dir>/tensorboard``; the jobs of a multirun to
``<sweep_dir>/tensorboard/<job>``, so that one ``tensorboard --logdir <sweep_dir>/tensorboard`` shows
them side by side. Scalars: ``train/<task>/loss`` and ``train/<task>/tokens_per_second`` at the
task's optimizer step, ``<eval_task>/<metric>`` at the stream step, ``summary/<column>``; the
config as text; the report's figures as images. A resumed run writes a new event file into the
same folder (TensorBoard reads them as one run).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from forgetbench.loggers import RunInfo, Tracker, require, row_key, summary_metrics
from forgetbench.results import ResultRow
from forgetbench.training import StepStats


@dataclass
class TensorBoardLogger(Tracker):
    """Attributes:
    folder: the event files' folder name (under the run, or under the sweep for a multirun).
    """

    folder: str = "tensorboard"

    def __post_init__(self) -> None:
        require("tensorboard", "tensorboard", "tensorboard")

    def start(self, run: RunInfo) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = run.sweep_dir / self.folder / run.run_dir.name if run.sweep_dir else run.run_dir / self.folder
        self._writer = SummaryWriter(log_dir=str(self.log_dir))
        config = yaml.safe_dump({"config_hash": run.config_hash, **run.config}, sort_keys=False)
        self._writer.add_text("config", f"```yaml\n{config}\n```")

    def log_training(self, stream_step: int, task: str, stats: StepStats) -> None:
        self._writer.add_scalar(f"train/{task}/loss", stats.loss, stats.step)
        self._writer.add_scalar(f"train/{task}/tokens_per_second", stats.tokens_per_second, stats.step)

    def log_rows(self, rows: list[ResultRow]) -> None:
        for row in rows:
            self._writer.add_scalar(row_key(row), row.value, row.step)
        self._writer.flush()

    def log_report(self, report_dir: Path) -> None:
        import matplotlib.image

        for key, value in summary_metrics(report_dir).items():
            self._writer.add_scalar(key, value, 0)
        for figure in sorted(report_dir.glob("*.png")):
            image = matplotlib.image.imread(figure)[..., :3]  # RGB, values in [0, 1]
            self._writer.add_image(f"report/{figure.stem}", image, 0, dataformats="HWC")

    def finish(self) -> None:
        self._writer.close()
