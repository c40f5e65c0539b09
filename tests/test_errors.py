"""Bad input: a clear one-line error naming the bad value, a non-zero exit, no results."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from forgetbench.results import read_results
from tests.conftest import SMALL, run_cli


def _no_results(root) -> bool:
    return not list((root / "results").rglob("results.parquet")) if (root / "results").exists() else True


def _error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.startswith("forgetbench: error:")]
    assert len(lines) == 1, done.stderr[-2000:]
    return lines[0]


def test_unknown_config_option(tmp_path, cache_dir) -> None:
    done = run_cli(["model=tiny_nope"], tmp_path, cache_dir)
    assert done.returncode != 0
    assert "tiny_nope" in done.stderr and "tiny_decoder" in done.stderr  # Hydra lists the valid options
    assert _no_results(tmp_path)


@pytest.mark.parametrize("override", ["=5", "+=5"])
def test_an_override_without_a_key(override, tmp_path, cache_dir) -> None:
    done = run_cli([override], tmp_path, cache_dir)
    assert done.returncode == 2
    assert (
        _error_line(done) == f"forgetbench: error: the override {override!r} has no key: write KEY=VALUE (e.g. seed=5)"
    )
    assert "Traceback" not in done.stderr and not (tmp_path / "results").exists()


def test_a_value_left_for_the_command_line(tmp_path, cache_dir) -> None:
    done = run_cli(["experiment=tiny_world_safety", "judge=classifier"], tmp_path, cache_dir)
    assert done.returncode == 2
    assert _error_line(done).startswith("forgetbench: error: judge.path has no value")
    assert "Traceback" not in done.stderr and _no_results(tmp_path)


def test_model_path_that_does_not_exist(tmp_path, cache_dir) -> None:
    done = run_cli(["model=bloomz_1b1", "model.path=/no/such/model", *SMALL_NO_MODEL], tmp_path, cache_dir)
    assert done.returncode == 2
    assert "model.path='/no/such/model' does not exist" in _error_line(done)
    assert _no_results(tmp_path) and not (tmp_path / "results" / "tiny_world" / "bloomz-1b1-full-seed0").exists()


def test_eval_task_lm_eval_does_not_know(tmp_path, cache_dir) -> None:
    done = run_cli([*SMALL, "eval.tasks=[tiny_world_knowlege]"], tmp_path, cache_dir)
    assert done.returncode == 2
    line = _error_line(done)
    assert "'tiny_world_knowlege' is not known to lm-eval" in line and "tiny_world_knowledge" in line
    assert _no_results(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ('{"prompt": "a", "response": \n', "is not valid JSON lines"),
        ('{"question": "a b"}\n', "lacks columns ['prompt', 'response']"),
        ('{"prompt": "a", "response": "b"}\n' * 5 + '{"prompt": "c"}\n', "row 6 has no 'response' (missing or null)"),
    ],
)
def test_bad_stream_task_file(tmp_path, cache_dir, content: str, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    good = tmp_path / "test.jsonl"
    good.write_text(json.dumps({"prompt": "a", "response": "b"}) + "\n")
    tasks = f"stream.tasks=[{{name: mine, train: '{bad}', test: '{good}'}}]"
    done = run_cli([*SMALL, "stream=local", tasks], tmp_path, cache_dir)
    assert done.returncode == 2
    line = _error_line(done)
    assert "stream task 'mine'" in line and message in line and str(bad) in line
    assert _no_results(tmp_path)


def test_diverging_loss_stops_and_keeps_completed_steps(tmp_path, cache_dir) -> None:
    done = run_cli([*SMALL, "train.lr=1e30", "train.max_grad_norm=0"], tmp_path, cache_dir)
    assert done.returncode == 2
    assert "loss became" in _error_line(done) and "lower train.lr" in _error_line(done)  # with a remedy
    rows = read_results(tmp_path / "results")
    assert set(rows["step"]) == {0}  # step 0 was completed and is kept


SMALL_NO_MODEL = [o for o in SMALL if not o.startswith("model.")]


# A full disk, through a writer patched to fail as the real one does on a full disk (a tmpfs would need
# root); the CLI runs unchanged around it.
FULL_DISK_CASES = {
    # safetensors names the OS error only in its text
    "checkpoint": (
        "forgetbench.checkpoint.save_file",
        "raise Exception('I/O error: No space left on device (os error 28)')",
    ),
    # matplotlib leaves the file it opened empty: the report writes beside it and swaps it in whole
    "report": (
        "matplotlib.figure.Figure.savefig",
        "open(args[1], 'wb').close(); raise OSError(errno.ENOSPC, 'No space left on device')",
    ),
}


@pytest.mark.parametrize("case", list(FULL_DISK_CASES))
def test_a_full_disk_is_one_line_and_the_rerun_resumes(case, tmp_path, cache_dir) -> None:
    import shlex
    import subprocess
    import sys

    from tests.conftest import ROOT, run_cli_patched

    target, action = FULL_DISK_CASES[case]
    (tmp_path / "more_conf").mkdir()  # a search path the resume line must keep
    searchpath = f"hydra.searchpath=[file://{tmp_path / 'more_conf'}]"
    done = run_cli_patched([*SMALL, "keep_checkpoint=true", searchpath], tmp_path, cache_dir, target, action)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    line = _error_line(done)
    assert "no space left on the disk of" in line and "resume with: python -m forgetbench" in line
    if case == "report":
        assert "after its last step, while writing its report; all 3 steps are kept" in line, line
    else:  # the checkpoint after step 0's evaluation failed: a rerun evaluates step 0 again
        assert "during step 1/3; nothing is kept yet (the rerun starts with the step-0 evaluation)" in line, line
    run_dir = tmp_path / "results" / "tiny_world" / "tiny_decoder-full-seed0"
    assert not [p for p in run_dir.rglob("*") if p.is_file() and (p.stat().st_size == 0 or ".tmp" in p.name)]
    printed = line.split("resume with: ", 1)[1]
    resume = shlex.split(printed)
    assert resume[:3] == ["python", "-m", "forgetbench"] and searchpath in resume
    # run as printed, by a shell, with this environment's python first on the PATH
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    again = subprocess.run(
        printed, shell=True, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PATH": path}
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert set(read_results(run_dir)["step"]) == {0, 1, 2, 3}
