"""A run's record is never damaged: a refused rerun touches nothing, a damaged file is named in one line
with what to do, and doing it recovers the run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pandas as pd
import pytest

from forgetbench.reporting.command import main as report_main
from forgetbench.results import read_results
from tests.conftest import SMALL, run_cli, start_cli

RUN = ("results", "tiny_world", "tiny_decoder-full-seed0")
KEEP = [*SMALL, "keep_checkpoint=true"]  # unhashed: the checkpoint stays for the damage below


def _files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _table(run_dir) -> pd.DataFrame:
    rows = read_results(run_dir)
    return (
        rows.drop(columns=["wall_time", "eval_seconds"])
        .sort_values(["step", "eval_task", "metric"])
        .reset_index(drop=True)
    )


def _error_line(done) -> str:
    """The one error line on stderr; stdout does not repeat it as a logged line."""
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("forgetbench: error:")]
    assert "[ERROR]" not in done.stdout, done.stdout[-2000:]
    return line


@pytest.fixture(scope="module")
def finished(tmp_path_factory, cache_dir):
    root = tmp_path_factory.mktemp("finished")
    done = run_cli(KEEP, root, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.fixture
def copy(finished, tmp_path):
    """A private copy of the finished run (its root and run directory)."""
    root = tmp_path / "root"
    shutil.copytree(finished, root)
    return root, root.joinpath(*RUN)


def test_a_refused_rerun_leaves_the_run_byte_identical(copy, cache_dir) -> None:
    root, run_dir = copy
    before = _files(run_dir)
    assert {".hydra/config.yaml", ".hydra/overrides.yaml", "results.parquet", "__main__.log"} <= set(before)
    done = run_cli([*KEEP, "train.lr=0.5"], root, cache_dir)  # another config, the same run directory
    assert "holds a run of a different config" in _error_line(done)
    assert _files(run_dir) == before


@pytest.mark.parametrize(
    ("bad", "message", "finished_run"),
    [
        ("threads=-1", "threads=-1 is not valid", True),
        ("threads=0", "threads=0 is not valid", False),
        ("device=cuda", "torch finds no CUDA GPU", True),
        ("device=tpu", "device='tpu' is not valid", False),
        ("seed=-1", "seed=-1 is not valid", False),
    ],
)
def test_a_bad_value_over_a_run_is_refused_and_touches_nothing(copy, cache_dir, bad, message, finished_run) -> None:
    """Unhashed settings (threads, device) too: the directory is this config's, and a finished run has
    nothing to do, yet the value is refused before the config record, the lock or the log is touched."""
    root, run_dir = copy
    if not finished_run:
        status = json.loads((run_dir / "status.json").read_text())
        (run_dir / "status.json").write_text(json.dumps({**status, "finished": False}))
    before = _files(run_dir)
    assert message in _error_line(run_cli([*KEEP, bad], root, cache_dir))
    assert _files(run_dir) == before


def test_a_refused_run_next_to_a_results_less_run_deletes_nothing(tmp_path, cache_dir) -> None:
    run_dir = tmp_path.joinpath(*RUN)  # as left by a run of another config killed in its step-0 evaluation
    run_dir.mkdir(parents=True)
    (run_dir / "status.json").write_text(json.dumps({"config_hash": "0123abcd", "steps": 3, "finished": False}))
    (run_dir / "__main__.log").write_text("the other run's log\n")
    before = _files(run_dir)
    done = run_cli(SMALL, tmp_path, cache_dir)
    assert "0123abcd" in _error_line(done)
    assert _files(run_dir) == before


def test_a_damaged_status_file_is_named_and_removing_it_resumes(copy, cache_dir) -> None:
    root, run_dir = copy
    (run_dir / "status.json").write_text('{"config_hash": "ab')
    before = _files(run_dir)
    line = _error_line(run_cli(KEEP, root, cache_dir))
    assert f"{run_dir / 'status.json'} is unreadable" in line and "remove it" in line
    assert _files(run_dir) == before
    (run_dir / "status.json").unlink()  # the config is then checked against the rows' hash
    again = run_cli(KEEP, root, cache_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run_dir / "status.json").read_text())["finished"]
    (run_dir / "status.json").unlink()
    other = run_cli([*KEEP, "train.lr=0.5"], root, cache_dir)
    assert "holds a run of a different config" in _error_line(other)  # refused by the rows' config hash


def test_damaged_results_of_a_partial_run_are_named(copy, cache_dir) -> None:
    root, run_dir = copy
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "finished": False}))
    (run_dir / "results.parquet").write_bytes((run_dir / "results.parquet").read_bytes()[:300])
    before = _files(run_dir)
    line = _error_line(run_cli(KEEP, root, cache_dir))
    assert f"{run_dir / 'results.parquet'} is unreadable" in line and f"remove {run_dir}" in line
    assert _files(run_dir) == before


def test_a_damaged_checkpoint_is_named_and_removing_it_recomputes_the_same_rows(finished, copy, cache_dir) -> None:
    root, run_dir = copy
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "finished": False}))
    state = run_dir / "checkpoint" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    before = _files(run_dir)
    line = _error_line(run_cli(KEEP, root, cache_dir))
    assert f"{run_dir / 'checkpoint'} is unreadable" in line and "remove it to rerun from step 0" in line
    assert _files(run_dir) == before  # refused in set-up, before the run is accepted
    shutil.rmtree(run_dir / "checkpoint")
    again = run_cli(KEEP, root, cache_dir)
    assert again.returncode == 0, again.stderr[-2000:]
    pd.testing.assert_frame_equal(_table(run_dir), _table(finished.joinpath(*RUN)))


def test_a_damaged_items_file_is_named_and_removing_it_leaves_its_step_out(copy, capsys) -> None:
    _, run_dir = copy
    items = run_dir / "items" / "step-001.parquet"
    items.write_bytes(b"PAR1 not a parquet file")
    assert report_main([str(run_dir)]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert f"{items} is unreadable" in line and "remove it" in line
    items.unlink()
    assert report_main([str(run_dir)]) == 0


def test_a_second_process_on_a_running_run_is_refused(tmp_path, cache_dir) -> None:
    """One run directory, one writer: the second process names the first and writes nothing."""
    longer = [*SMALL, "train.steps=40"]
    run_dir = tmp_path.joinpath(*RUN)
    first = start_cli(longer, tmp_path, cache_dir)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and not (run_dir / "status.json").exists():
        time.sleep(0.05)
    assert first.poll() is None, "the first run ended before the second could start"
    # paused while the second starts (seconds of imports), so a fast first run cannot finish before
    # it; a paused process keeps its lock
    os.kill(first.pid, signal.SIGSTOP)
    try:
        second = run_cli(longer, tmp_path, cache_dir)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    line = _error_line(second)
    assert f"{run_dir} is in use by host" in line and f"pid {first.pid}" in line
    assert first.wait(timeout=600) == 0
    rows = read_results(run_dir)
    assert len(rows) == len(rows.drop_duplicates(["step", "eval_task", "metric"])) == 24
    assert "in use" not in (run_dir / "__main__.log").read_text()  # the refused process wrote nothing there


def test_a_checkpoint_of_another_config_is_refused(tmp_path) -> None:
    from forgetbench.checkpoint import load_checkpoint, save_checkpoint
    from forgetbench.errors import RunDirectoryTaken
    from tests.helpers import tiny_model

    model, _ = tiny_model("llama", ["a", "b"])
    save_checkpoint(tmp_path, 0, model.state_dict(), None, {}, None, config_hash="aaaa")
    assert load_checkpoint(tmp_path, model, "aaaa").step == 0
    with pytest.raises(RunDirectoryTaken, match=r"written by a run of another config \(hash aaaa, now bbbb\)"):
        load_checkpoint(tmp_path, model, "bbbb")


def test_the_step_a_rerun_continues_after_is_read_without_loading_the_checkpoint(tmp_path) -> None:
    from forgetbench.checkpoint import CHECKPOINT_DIR, STEP_FILE, checkpoint_step, save_checkpoint
    from tests.helpers import tiny_model

    assert checkpoint_step(tmp_path) == -1  # no checkpoint: a rerun starts with the step-0 evaluation
    model, _ = tiny_model("llama", ["a", "b"])
    save_checkpoint(tmp_path, 0, model.state_dict(), None, {}, None)
    save_checkpoint(tmp_path, 1, model.state_dict(), None, {}, {"step": 3})  # inside task 2
    assert checkpoint_step(tmp_path) == 1
    (tmp_path / CHECKPOINT_DIR / STEP_FILE).unlink()  # a checkpoint from before the step file
    assert checkpoint_step(tmp_path) is None
