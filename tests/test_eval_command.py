"""``forgetbench eval``: a model scored on its suite with no training, in the results' own layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from forgetbench.results import read_items, read_results
from tests.conftest import ROOT, SMALL

PATHS = ["paths.root_dir={root}", "paths.cache_dir={cache}"]


def _eval(args: list[str], root: Path, cache: Path, console_script: bool = False) -> subprocess.CompletedProcess:
    paths = [p.format(root=root, cache=cache) for p in PATHS]
    if console_script:  # the installed `forgetbench` command beside this interpreter
        command = [str(Path(sys.executable).parent / "forgetbench"), "eval", *paths, *args]
    else:
        command = [sys.executable, "-m", "forgetbench", "eval", *paths, *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_eval_writes_step_zero_rows_items_and_a_report(tmp_path, cache_dir) -> None:
    done = _eval(SMALL, tmp_path, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = tmp_path / "results" / "tiny_world" / "tiny_decoder-eval"  # not the training run's folder
    rows = read_results(run_dir)
    assert set(rows["step"]) == {0} and set(rows["trained_task"]) == {""}
    assert {"general", "stream"} == set(rows["eval_kind"])  # the suite and the stream's held-out items
    assert set(read_items(run_dir)["step"]) == {0}
    assert (run_dir / "report" / "report.md").exists()
    assert json.loads((run_dir / "status.json").read_text()) == {
        "config_hash": rows["config_hash"].iloc[0],
        "steps": 0,
        "finished": True,
    }
    again = _eval(SMALL, tmp_path, cache_dir, console_script=True)  # the console script, a finished run
    assert again.returncode == 0 and "already finished" in again.stdout + again.stderr, again.stderr[-2000:]


def test_eval_of_a_model_path_that_does_not_exist_is_one_line(tmp_path, cache_dir) -> None:
    small = [o for o in SMALL if not o.startswith("model.")]
    done = _eval(["model=bloomz_1b1", "model.path=/no/such/model", *small], tmp_path, cache_dir, console_script=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    [line] = [line for line in done.stderr.splitlines() if line.startswith("forgetbench: error:")]
    assert "model.path='/no/such/model' does not exist" in line
    assert not list((tmp_path / "results").rglob("results.parquet")) if (tmp_path / "results").exists() else True
