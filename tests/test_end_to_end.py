"""The real CLI, end to end, on small tiny-world runs of both architectures."""

from __future__ import annotations

import os
import re
import signal
import time

import pandas as pd
import pytest

from forgetbench.hardware import share_of_cores
from forgetbench.results import read_items, read_results
from tests.conftest import SMALL, run_cli, running_processes, start_cli, wait_inside_task_2

GENERAL = {"tiny_world_knowledge", "tiny_world_continuation", "tiny_world_reading"}
STREAM = {"stream_translate", "stream_count", "stream_reverse"}
TRAINED = {0: "", 1: "translate", 2: "count", 3: "reverse"}


def _check_complete_run(rows: pd.DataFrame) -> None:
    """Exactly one acc row per (step, eval task): 4 steps × 6 tasks."""
    assert len(rows) == 24
    assert set(zip(rows["step"], rows["eval_task"])) == {(s, t) for s in range(4) for t in GENERAL | STREAM}
    assert set(rows["metric"]) == {"acc"}
    assert dict(zip(rows["step"], rows["trained_task"])) == TRAINED
    assert set(rows.loc[rows["eval_task"].isin(STREAM), "eval_kind"]) == {"stream"}
    assert set(rows.loc[rows["eval_task"].isin(GENERAL), "eval_kind"]) == {"general"}
    stream = rows[rows["eval_kind"] == "stream"]
    assert (stream["eval_task"] == "stream_" + stream["stream_task"]).all()  # the stream task each row scores
    assert set(rows.loc[rows["eval_kind"] == "general", "stream_task"]) == {""}
    assert rows["value"].between(0, 1).all() and (rows["n"] > 0).all() and rows["stderr"].notna().all()
    assert rows["config_hash"].nunique() == 1 and (rows["n_params"] > 0).all()


def test_multirun_over_both_architectures_in_parallel_jobs(tmp_path, cache_dir) -> None:
    """Through hydra/launcher=local: the two jobs run at once, each in a process of its own with its
    share of the cores. (The default, sequential launcher is exercised by test_methods' multirun.)"""
    sweep_args = ["-m", "hydra/launcher=local", "model=tiny_decoder,tiny_encdec", *SMALL]
    done = run_cli(sweep_args, tmp_path, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "results" / "tiny_world" / "multirun"
    runs = sorted(p.parent for p in sweep.glob("*/results.parquet"))
    assert len(runs) == 2
    shares = sorted(len(share_of_cores(sorted(os.sched_getaffinity(0)), job, 2)) for job in range(2))
    logged = sorted(int(re.search(r"\((\d+) cores available", (run / "__main__.log").read_text())[1]) for run in runs)
    assert logged == shares
    rows = read_results(*runs)
    assert set(rows["architecture"]) == {"decoder", "encoder-decoder"}
    for _model, run_rows in rows.groupby("model"):
        _check_complete_run(run_rows)
    for run in runs:
        assert (run / "report" / "report.md").read_text().count("| tiny_world_") >= 3
        assert (run / "report" / "forgetting_curves.png").stat().st_size > 10_000
        items = read_items(run)
        assert set(items["step"]) == {0, 1, 2, 3}
        assert len(items) == 4 * (3 * 16 + 3 * 12)  # every item of every task at every step
        assert not (run / "checkpoint").exists()  # keep_checkpoint=false

    assert (sweep / "report" / "report.html").exists()  # the multirun's own report, by the Hydra callback

    before = {p: p.stat().st_mtime_ns for p in sweep.glob("*/results.parquet")}
    (runs[0] / "checkpoint").mkdir()  # as left by a kill between marking the run finished and tidying up
    again = run_cli(sweep_args, tmp_path, cache_dir)
    assert again.returncode == 0
    assert all("already finished" in (run / "__main__.log").read_text() for run in runs)
    assert before == {p: p.stat().st_mtime_ns for p in sweep.glob("*/results.parquet")}
    assert not (runs[0] / "checkpoint").exists(), "a rerun of a finished run tidies its checkpoint"


def _table(root) -> pd.DataFrame:
    rows = read_results(root / "results")
    return (
        rows.drop(columns=["wall_time", "eval_seconds"])
        .sort_values(["step", "eval_task", "metric"])
        .reset_index(drop=True)
    )


RUN = ("results", "tiny_world", "tiny_decoder-full-seed0")
LONGER = [*SMALL, "train.steps=40", "train.log_every=1"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("straight")
    straight = run_cli(LONGER, root, cache_dir)
    assert straight.returncode == 0, straight.stderr[-3000:]
    return root


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_stopped_run_resumes_to_the_same_table(stop, uninterrupted, tmp_path, cache_dir) -> None:
    """SIGKILL as in a crash; SIGTERM as a scheduler stops a job; SIGINT as Ctrl-C."""
    root = tmp_path / "stopped"
    results = root.joinpath(*RUN, "results.parquet")
    process = start_cli(LONGER, root, cache_dir, stderr=tmp_path / "stderr.txt")
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if results.exists() and read_results(results)["step"].max() >= 1:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be stopped"
    process.send_signal(stop)
    process.wait(timeout=120)
    partial = read_results(results)
    assert partial["step"].max() < 3
    if stop != signal.SIGKILL:
        stderr = (tmp_path / "stderr.txt").read_text()
        assert process.returncode == 128 + stop, stderr[-2000:]
        assert "Traceback" not in stderr, stderr[-2000:]
        [line] = [line for line in stderr.splitlines() if line.startswith("forgetbench: stopped")]
        done = int(partial["step"].max())
        assert f"stopped by {stop.name} during step {done + 1}/3; steps 0-{done} are kept" in line
        assert "resume with: python -m forgetbench" in line and "train.steps=40" in line

    resumed = run_cli(LONGER, root, cache_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout + resumed.stderr
    pd.testing.assert_frame_equal(_table(root), _table(uninterrupted))
    assert len(read_items(results.parent)) == len(read_items(uninterrupted.joinpath(*RUN)))


@pytest.mark.parametrize(
    ("stop", "extra"),
    [(signal.SIGUSR1, []), (signal.SIGKILL, ["train.checkpoint_every_minutes=1e-9"])],
    ids=["SIGUSR1", "SIGKILL-after-a-periodic-checkpoint"],
)
def test_a_run_stopped_inside_a_task_continues_there(stop, extra, uninterrupted, tmp_path, cache_dir) -> None:
    """SIGUSR1 (Slurm's warning before a time limit) mid-task: the step in progress ends, a mid-task
    checkpoint is written, and the rerun continues inside the task; a periodic checkpoint does the
    same for a kill. Either way the table equals the uninterrupted run's (checkpoint_every_minutes
    is not hashed, so the runs are comparable)."""
    root = tmp_path / "stopped"
    log = root.joinpath(*RUN, "__main__.log")
    process = start_cli([*LONGER, *extra], root, cache_dir, stderr=tmp_path / "stderr.txt")
    wait_inside_task_2(process, lambda: [log])
    process.send_signal(stop)
    process.wait(timeout=120)
    text = log.read_text()
    saved = [int(n) for n in re.findall(r"mid-task checkpoint: step 2/3 at optimizer step (\d+)", text)]
    assert saved and 10 <= saved[-1] < 40, text[-3000:]
    if stop == signal.SIGUSR1:
        assert process.returncode == 128 + stop
        assert "stopped by SIGUSR1 during step 2/3; steps 0-1 are kept" in (tmp_path / "stderr.txt").read_text()

    resumed = run_cli([*LONGER, *extra], root, cache_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    [continued] = [int(n) for n in re.findall(r"step 2/3 continues at optimizer step (\d+)", log.read_text())]
    # a kill can land after a checkpoint is written and before its log line
    assert continued == saved[-1] or (stop == signal.SIGKILL and continued == saved[-1] + 1)
    pd.testing.assert_frame_equal(_table(root), _table(uninterrupted))


def test_submitits_warning_signal_stops_inside_the_task_and_the_requeued_job_continues_there(
    uninterrupted, tmp_path, cache_dir
) -> None:
    """hydra/launcher=local, SIGUSR2 to the job: submitit's warning before a time limit or a
    preemption (under Slurm, signal_delay_s ahead). The run ends its optimizer step and writes a
    mid-task checkpoint; then submitit requeues the job (its local executor restarts it, as Slurm
    would), the requeued run continues inside the task, and the sweep ends with the table of an
    uninterrupted run."""
    root = tmp_path / "requeued"
    process = start_cli(["-m", "hydra/launcher=local", *LONGER], root, cache_dir, stderr=tmp_path / "stderr.txt")
    log = wait_inside_task_2(process, lambda: list(root.glob("results/tiny_world/multirun/*/__main__.log")))
    ours = [(pid, command) for pid, _, command in running_processes() if str(root).encode() in command]
    [job] = [pid for pid, command in ours if b"submitit.core._submit" in command]
    os.kill(job, signal.SIGUSR2)
    process.wait(timeout=300)
    assert process.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    text = log.read_text()
    [saved] = [int(n) for n in re.findall(r"mid-task checkpoint: step 2/3 at optimizer step (\d+)", text)]
    [continued] = [int(n) for n in re.findall(r"step 2/3 continues at optimizer step (\d+)", text)]
    assert continued == saved and 10 <= saved < 40
    job_logs = "".join(p.read_text() for p in root.glob("results/tiny_world/multirun/.submitit/*/*_log.err"))
    assert "Caught signal SIGUSR2" in job_logs, job_logs[-3000:]  # submitit's handler ran, after forgetbench's stop
    pd.testing.assert_frame_equal(_table(root).drop(columns="run_id"), _table(uninterrupted).drop(columns="run_id"))
