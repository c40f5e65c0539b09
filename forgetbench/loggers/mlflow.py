"""``logger=mlflow``: an MLflow run per forgetbench run, in a file store by default (offline).

The store is ``<results_dir>/mlruns`` (browse it with ``mlflow ui --backend-store-uri file://...``),
or any ``tracking_uri`` (a server, a database). MLflow 3 keeps its file store in maintenance mode
and asks for ``MLFLOW_ALLOW_FILE_STORE=true`` to open one; forgetbench sets it for a file store.

The MLflow experiment is ``experiment_name``; each run is tagged with its folder and config hash,
which a resumed run finds it by (it continues that MLflow run). A multirun's jobs are children of
one parent run per sweep folder. Logged: the resolved config as parameters (flattened) and as
``config.yaml``; ``train/<task>/loss`` and ``train/<task>/tokens_per_second`` at the task's step;
``<eval_task>/<metric>`` at the stream step; the report's folder as artifacts and its summary
as ``summary/<column>`` metrics.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from forgetbench.loggers import RunInfo, Tracker, require, row_key, summary_metrics
from forgetbench.results import ResultRow
from forgetbench.training import StepStats

RUN_DIR_TAG, SWEEP_TAG, HASH_TAG = "forgetbench.run_dir", "forgetbench.sweep_dir", "forgetbench.config_hash"
_PARAM_LENGTH = 500  # MLflow's limit on a parameter's value


@dataclass
class MLflowLogger(Tracker):
    """Attributes:
    store_dir: the file store's folder (used when tracking_uri is null).
    tracking_uri: an MLflow server or database URI instead of the file store (null: the file store).
    """

    store_dir: str = "results/mlruns"
    tracking_uri: str | None = None

    def __post_init__(self) -> None:
        require("mlflow", "mlflow", "mlflow")

    def start(self, run: RunInfo) -> None:
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri or Path(self.store_dir).resolve().as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self._client = client = MlflowClient(uri)
        self._metric = Metric
        experiment = client.get_experiment_by_name(run.experiment)
        experiment_id = experiment.experiment_id if experiment else client.create_experiment(run.experiment)
        tags = {RUN_DIR_TAG: str(run.run_dir.resolve()), HASH_TAG: run.config_hash}
        if run.sweep_dir is not None:
            tags["mlflow.parentRunId"] = self._parent(experiment_id, run.sweep_dir)
        found = self._find(experiment_id, RUN_DIR_TAG, tags[RUN_DIR_TAG], run.config_hash)
        if found is None:
            self._run_id = client.create_run(experiment_id, tags=tags, run_name=run.run_name).info.run_id
            params = [Param(k, str(v)[:_PARAM_LENGTH]) for k, v in _flat(run.config).items()]
            for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
                client.log_batch(self._run_id, params=params[start : start + 100])
            client.log_dict(self._run_id, {"config_hash": run.config_hash, **run.config}, "config.yaml")
        else:  # a resumed run continues its MLflow run
            self._run_id = found
            client.update_run(self._run_id, status="RUNNING")

    def _find(self, experiment_id: str, tag: str, value: str, config_hash: str | None = None) -> str | None:
        query = f"tags.`{tag}` = '{value}'" + (f" and tags.`{HASH_TAG}` = '{config_hash}'" if config_hash else "")
        runs = self._client.search_runs([experiment_id], query, max_results=1)
        return runs[0].info.run_id if runs else None

    def _parent(self, experiment_id: str, sweep_dir: Path) -> str:
        """The sweep's parent run, found by its folder or created (jobs run one after another here;
        jobs started at once by a launcher may each create one)."""
        key = str(sweep_dir.resolve())
        found = self._find(experiment_id, SWEEP_TAG, key)
        if found is not None:
            return found
        return self._client.create_run(experiment_id, tags={SWEEP_TAG: key}, run_name=sweep_dir.name).info.run_id

    def log_training(self, stream_step: int, task: str, stats: StepStats) -> None:
        now = int(time.time() * 1000)
        metrics = [
            self._metric(f"train/{task}/loss", stats.loss, now, stats.step),
            self._metric(f"train/{task}/tokens_per_second", stats.tokens_per_second, now, stats.step),
        ]
        self._client.log_batch(self._run_id, metrics=metrics)

    def log_rows(self, rows: list[ResultRow]) -> None:
        now = int(time.time() * 1000)
        metrics = [self._metric(row_key(r), r.value, now, r.step) for r in rows]
        for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics a batch
            self._client.log_batch(self._run_id, metrics=metrics[start : start + 1000])

    def log_report(self, report_dir: Path) -> None:
        now = int(time.time() * 1000)
        summary = [self._metric(k, v, now, 0) for k, v in summary_metrics(report_dir).items()]
        if summary:
            self._client.log_batch(self._run_id, metrics=summary)
        self._client.log_artifacts(self._run_id, str(report_dir), "report")

    def finish(self) -> None:
        self._client.set_terminated(self._run_id)


def _flat(config: dict, prefix: str = "") -> dict[str, object]:
    """``{"train": {"lr": 1e-3}}`` as ``{"train.lr": 1e-3}``."""
    flat: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_flat(value, f"{name}."))
        else:
            flat[name] = value
    return flat
