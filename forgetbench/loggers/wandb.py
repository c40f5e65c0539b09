"""``logger=wandb``: a Weights & Biases run per forgetbench run, offline by default.

Offline (``mode: offline``, the default) the run is written under ``<run_dir>/wandb/`` and uploaded
later with ``wandb sync <run_dir>/wandb/offline-run-*``; ``mode: online`` logs live (network and
``wandb login`` needed). The run's id is fixed by its folder and config hash, so a resumed run
continues the same W&B run (offline, a resumed run writes a second offline folder with that id;
``wandb sync`` joins them). A multirun's jobs share a W&B group, the sweep folder's path.

Logged: the resolved config and its hash; ``train/<task>/loss`` and ``train/<task>/tokens_per_second``
against ``train/<task>/step``; ``<eval_task>/<metric>`` against ``stream_step``; at the end the
report's figures as images, its summary table, and the summary's numbers in the run summary.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from forgetbench.loggers import RunInfo, Tracker, require, row_key, summary_metrics
from forgetbench.results import ResultRow
from forgetbench.training import StepStats


@dataclass
class WandbLogger(Tracker):
    """Attributes:
    project: the W&B project.
    entity: the W&B team or user (null: the default of the login).
    mode: offline (files only), online, or disabled.
    tags: tags of every run.
    """

    project: str = "forgetbench"
    entity: str | None = None
    mode: Literal["offline", "online", "disabled"] = "offline"
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        require("wandb", "wandb", "wandb")

    def start(self, run: RunInfo) -> None:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")  # the run's own log says what happens; no banner per call
        self._run = wandb.init(
            project=self.project,
            entity=self.entity,
            mode=self.mode,
            dir=str(run.run_dir),
            id=run.run_id,
            name=run.run_name,
            group=str(run.sweep_dir) if run.sweep_dir else None,
            job_type=run.experiment,
            tags=list(self.tags),
            config={"config_hash": run.config_hash, **run.config},
            resume="allow",
            reinit="finish_previous",  # a multirun's jobs share one process
        )
        self._run.define_metric("stream_step")
        self._tasks: set[str] = set()

    def log_training(self, stream_step: int, task: str, stats: StepStats) -> None:
        if task not in self._tasks:  # each task's curve against its own optimizer step
            self._run.define_metric(f"train/{task}/*", step_metric=f"train/{task}/step")
            self._tasks.add(task)
        prefix = f"train/{task}"
        values = {"loss": stats.loss, "tokens_per_second": stats.tokens_per_second, "step": stats.step}
        self._run.log({f"{prefix}/{name}": value for name, value in values.items()})

    def log_rows(self, rows: list[ResultRow]) -> None:
        values = {row_key(r): r.value for r in rows}
        for key in values:
            self._run.define_metric(key, step_metric="stream_step")
        self._run.log({**values, "stream_step": rows[0].step} if rows else {})

    def log_report(self, report_dir: Path) -> None:
        import pandas as pd
        import wandb

        images = {f"report/{p.stem}": wandb.Image(str(p)) for p in sorted(report_dir.glob("*.png"))}
        summary = report_dir / "summary.csv"
        if summary.exists():
            images["report/summary"] = wandb.Table(dataframe=pd.read_csv(summary))
        self._run.log(images)
        self._run.summary.update(summary_metrics(report_dir))

    def finish(self) -> None:
        self._run.finish()
