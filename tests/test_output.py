"""Quiet, useful output: a run's log and redirected stderr hold progress lines, not bars or git noise."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SMALL, _command


def test_redirected_run_logs_progress_without_bars_or_git_noise(tmp_path, cache_dir) -> None:
    """Run from a folder outside any git checkout, stderr to a pipe (as under Slurm or `2>&1 | tee`)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)  # git must not find a checkout above the folder
    command = _command([*SMALL, "stream.tasks=[translate]", "threads=1"], tmp_path, cache_dir)
    done = subprocess.run(command, cwd=outside, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "fatal: not a git repository" not in output
    assert "it/s]" not in output and "%|" not in output, "progress bars in redirected output"
    log = (tmp_path / "results" / "tiny_world" / "tiny_decoder-full-seed0" / "__main__.log").read_text()
    assert "[step 1/1 translate] step 8/8 loss" in log and "tokens/s" in log  # training progress
    assert "[step 1/1] eval 4/4 stream_translate: acc=" in log  # evaluation progress
    assert "fatal:" not in log and "it/s]" not in log
    assert "torch uses 1 CPU threads" in log  # threads=1 below


def test_threads_follow_the_cpu_affinity() -> None:
    """threads=auto counts the cores the process may use (taskset, Slurm), not the machine's."""
    from forgetbench.errors import ForgetbenchError
    from forgetbench.hardware import cpu_threads

    probe = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from forgetbench.hardware import cpu_threads; print(cpu_threads('auto'))"
    )
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "1", done.stderr[-2000:]
    assert cpu_threads(3) == 3
    for bad in (0, -1, "many", True):
        with pytest.raises(ForgetbenchError, match="threads=.* is not valid; choose auto or a positive integer"):
            cpu_threads(bad)


def test_progress_bars_stay_on_a_terminal() -> None:
    """With stderr on a terminal, the entry point leaves tqdm's bars on (TQDM_DISABLE unset)."""
    probe = "import os, forgetbench.cli; print(os.environ.get('TQDM_DISABLE'))"
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    results = {}
    for label, on_terminal in (("terminal", True), ("pipe", False)):
        leader, follower = pty.openpty()
        stderr = follower if on_terminal else subprocess.PIPE
        done = subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, timeout=300
        )
        os.close(leader)
        os.close(follower)
        results[label] = done.stdout.decode().strip()
    assert results == {"terminal": "None", "pipe": "1"}


def test_parallel_jobs_share_the_cores_out() -> None:
    """Each of a local sweep's parallel jobs gets its own block of cores (or one core, round-robin)."""
    from forgetbench.hardware import share_of_cores

    cores = list(range(8))
    assert [share_of_cores(cores, job, 2) for job in range(2)] == [{0, 1, 2, 3}, {4, 5, 6, 7}]
    shares = [share_of_cores(cores, job, 3) for job in range(3)]
    assert [len(s) for s in shares] == [3, 3, 2] and set().union(*shares) == set(cores)
    assert [share_of_cores([4, 5], job, 5) for job in range(5)] == [{4}, {5}, {4}, {5}, {4}]
