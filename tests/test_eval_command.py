"""``forgetbench eval``: a model, or a run's checkpoint, scored on its suite with no training, in the
results' own layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from forgetbench.results import read_items, read_results
from tests.conftest import ROOT, SMALL, run_cli

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


def test_eval_of_a_runs_checkpoint_scores_its_fine_tuned_model(tmp_path, cache_dir) -> None:
    """``forgetbench eval RUN_DIR``: the run's fine-tuned weights (LoRA-wrapped, as its method built
    them) scored at step 0 of a run of its own, which gives the items the training run gave after its
    last step."""
    trained = run_cli([*SMALL, "method=lora", "keep_checkpoint=true"], tmp_path, cache_dir)
    assert trained.returncode == 0, trained.stderr[-3000:]
    [source] = [p.parent for p in (tmp_path / "results").rglob("results.parquet")]
    command = [sys.executable, "-m", "forgetbench", "eval", str(source)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = source.parent / f"{source.name}-eval"
    assert set(read_results(run_dir)["step"]) == {0} and (run_dir / "report" / "report.md").exists()
    before = read_items(source)
    last = before[before["step"] == before["step"].max()]
    keys = ["eval_task", "doc_id"]
    scored = read_items(run_dir).merge(last, on=keys, suffixes=("", "_trained"))
    assert len(scored) == len(last) > 0
    assert (scored["response"] == scored["response_trained"]).all()  # generated items: the same text
    scored = scored[scored["logliks"].map(len) > 0]  # items scored by log-likelihood: the same numbers
    for row in scored.itertuples():  # the fine-tuned model's scores, not the base model's
        assert list(row.logliks) == pytest.approx(list(row.logliks_trained), abs=1e-5)
    base = scored.merge(before[before["step"] == 0], on=keys, suffixes=("", "_base"))
    moved = [max(abs(a - b) for a, b in zip(r.logliks, r.logliks_base, strict=True)) for r in base.itertuples()]
    assert len(moved) > 0 and max(moved) > 1e-3


def test_eval_of_a_folder_that_is_not_a_run_or_has_no_checkpoint_is_one_line(tmp_path) -> None:
    no_checkpoint = tmp_path / "finished-run"
    (no_checkpoint / ".hydra").mkdir(parents=True)
    (no_checkpoint / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    for folder, message in [
        (tmp_path / "no-such-run", "is not a run directory (no .hydra/overrides.yaml)"),
        (no_checkpoint, "has no checkpoint to score: a finished run keeps its fine-tuned model only with"),
    ]:
        command = [sys.executable, "-m", "forgetbench", "eval", str(folder)]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
        [line] = [line for line in done.stderr.splitlines() if line.startswith("forgetbench: error:")]
        assert message in line and str(folder) in line
