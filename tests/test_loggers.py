"""Experiment trackers (logger=...): what each wrote, read back through its own reader; a sweep is
grouped, a resumed run continues its tracked run, and a missing package is one line."""

from __future__ import annotations

import csv
import struct
from pathlib import Path

import pytest

from forgetbench.errors import ForgetbenchError
from forgetbench.results import read_results
from tests.conftest import SMALL, compose, run_cli, run_cli_patched

ALL = "logger=[csv,tensorboard,mlflow,wandb]"
EVAL_KEY = "tiny_world_knowledge/acc"


def _expected(run_dir: Path) -> dict[int, float]:
    """The knowledge task's accuracy by step, as the results table has it."""
    rows = read_results(run_dir)
    rows = rows[(rows["eval_task"] == "tiny_world_knowledge") & (rows["metric"] == "acc")]
    return dict(zip(rows["step"].astype(int), rows["value"]))


def _wandb_records(path: Path):
    """The protobuf records of a W&B run file (``run-<id>.wandb``). W&B 0.2x-0.3x writes it in
    LevelDB's log format (a 7-byte header ``:W&B``, magic, version; then 32 KiB blocks of records,
    each a CRC, a length and a type: full, first, middle or last) and ships no Python reader since
    its Go core replaced the Python one, so the test reads the format itself."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    position, block, parts = 7, 32 * 1024, []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        parts.append(data[position + 7 : position + 7 + length])
        position += 7 + length
        if kind in (1, 4):  # full, or the last part of a record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(parts))
            parts = []
            yield record


def _wandb_run(run_dir: Path) -> tuple[list, dict, list[dict]]:
    """Every offline W&B run under ``run_dir`` (run records), its config and its history rows."""
    import json

    runs, config, history = [], {}, []
    for file in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for record in _wandb_records(file):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                runs.append(record.run)
                config.update({_key(item): json.loads(item.value_json) for item in record.run.config.update})
            elif kind == "history":
                history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
    return runs, config, history


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)  # W&B writes a key holding "/" as its parts


def _scalars(log_dir: Path, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def _mlflow_client(root: Path):
    import os

    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    return MlflowClient((root / "results" / "mlruns").resolve().as_uri())


def test_a_sweep_shows_up_in_every_tracker_grouped(tmp_path, cache_dir) -> None:
    done = run_cli(["-m", *SMALL, "seed=0,1", ALL], tmp_path, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "results" / "tiny_world" / "multirun"
    jobs = sorted(p.parent for p in sweep.glob("*/results.parquet"))
    assert len(jobs) == 2
    client = _mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("tiny_world")
    parents = client.search_runs([experiment.experiment_id], "tags.`forgetbench.sweep_dir` != ''")
    assert len(parents) == 1  # one parent run for the sweep
    for job in jobs:
        expected = _expected(job)
        assert sorted(expected) == [0, 1, 2, 3]
        # csv: every eval row at its step, the training loss of each task's optimizer steps
        with (job / "csv" / "metrics.csv").open() as file:
            lines = list(csv.DictReader(file))
        logged = {int(r["stream_step"]): float(r["value"]) for r in lines if r["key"] == EVAL_KEY}
        assert logged == pytest.approx(expected)
        losses = [r for r in lines if r["kind"] == "train" and r["key"] == "loss"]
        assert len({r["task"] for r in losses}) == 3  # each of the stream's tasks
        assert any(r["kind"] == "summary" and r["key"] == "summary/stream_acc" for r in lines)
        # TensorBoard: one folder per job under the sweep's
        log_dir = sweep / "tensorboard" / job.name
        assert _scalars(log_dir, EVAL_KEY) == pytest.approx(expected)
        task = next(iter({r["task"] for r in losses}))
        steps = _scalars(log_dir, f"train/{task}/loss")
        assert sorted(steps) == list(range(1, len(steps) + 1))
        # MLflow: a child of the sweep's parent, with the config and the report
        [run] = client.search_runs([experiment.experiment_id], f"tags.`forgetbench.run_dir` = '{job.resolve()}'")
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        history = {m.step: m.value for m in client.get_metric_history(run.info.run_id, EVAL_KEY)}
        assert history == pytest.approx(expected)
        assert run.data.params["train.lr"] and "summary/stream_acc" in run.data.metrics
        assert "report/report.md" in {a.path for a in client.list_artifacts(run.info.run_id, "report")}
        # W&B offline: the config with its hash, every eval row, the sweep as the group
        runs, config, history = _wandb_run(job)
        assert [r.run_group for r in runs] == [str(sweep)]
        assert config["config_hash"] == read_results(job)["config_hash"].iloc[0]
        logged = {int(h["stream_step"]): h[EVAL_KEY] for h in history if EVAL_KEY in h}
        assert logged == pytest.approx(expected)


def test_a_resumed_run_continues_its_tracked_run(tmp_path, cache_dir) -> None:
    crash = (
        "import sys; from forgetbench.checkpoint import save_checkpoint; save_checkpoint(*args, **kwargs); "
        "args[1] == 1 and sys.exit('crashed after the checkpoint of step 1')"
    )
    target = "forgetbench.runner.save_checkpoint"
    args = [*SMALL, "logger=[tensorboard,mlflow,wandb]"]
    crashed = run_cli_patched(args, tmp_path, cache_dir, target, crash)
    assert crashed.returncode != 0 and "crashed after" in crashed.stderr
    resumed = run_cli(args, tmp_path, cache_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout + resumed.stderr
    run_dir = tmp_path / "results" / "tiny_world" / "tiny_decoder-full-seed0"
    expected = _expected(run_dir)
    client = _mlflow_client(tmp_path)
    experiment = client.get_experiment_by_name("tiny_world")
    [run] = client.search_runs([experiment.experiment_id])  # one MLflow run, not two
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, EVAL_KEY)
    assert sorted(m.step for m in history) == [0, 1, 2, 3]  # steps 0-1 before the crash, 2-3 after
    runs, _, _ = _wandb_run(run_dir)
    assert len(runs) == 2 and len({r.run_id for r in runs}) == 1  # two offline pieces of one W&B run
    assert len(list((run_dir / "tensorboard").glob("events.out.tfevents.*"))) == 2  # one folder, read as one run
    assert _scalars(run_dir / "tensorboard", EVAL_KEY)[3] == pytest.approx(expected[3])


def test_a_missing_tracker_package_is_one_line_naming_the_extra(monkeypatch) -> None:
    import importlib.util

    from forgetbench.runner import build_trackers

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else find_spec(name, *a))
    missing = r"logger=wandb needs the wandb package.*pip install 'forgetbench\[wandb\]'"
    with pytest.raises(ForgetbenchError, match=missing):
        build_trackers(compose(["logger=[csv,wandb]"]))
    assert [type(t).__name__ for t in build_trackers(compose(["logger=[csv,tensorboard]"])).trackers] == [
        "CSVLogger",
        "TensorBoardLogger",
    ]
    assert build_trackers(compose([])).trackers == []
