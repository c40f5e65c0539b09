"""The default experiment at its default sizes shows what the README states, on any seed and CPU.

Runs ``python -m forgetbench`` from scratch (world generation and base-model pretraining
included) in a temporary folder: about five minutes on 2 cores. ``FORGETBENCH_TEST_SEED``
sets the run's seed (default 0).

Every threshold sits well below its minimum over seeds 0-4 measured by
``experiments/measure_default.py`` (README, "Measured"; minimum in brackets), because
full fine-tuning at the default lr is chaotic: the floating-point rounding of one CPU
type decides where a run lands. In particular the first stream task ends near chance,
a little above or below its start depending on seed and CPU, so the test asserts that it
was forgotten, not where it ended.
"""

from __future__ import annotations

import os

import pytest

from forgetbench.metrics import score_matrix
from forgetbench.results import read_results
from tests.conftest import run_cli

SEED = int(os.environ.get("FORGETBENCH_TEST_SEED", "0"))


@pytest.mark.slow
def test_default_run_learns_then_forgets(tmp_path) -> None:
    done = run_cli([f"seed={SEED}"], tmp_path, tmp_path / "cache", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "forgetbench: results in" in done.stdout
    rows = read_results(tmp_path / "results")
    general = score_matrix(rows, "acc", "general")
    stream = score_matrix(rows, "acc", "stream")

    knowledge = general["tiny_world_knowledge"]
    assert knowledge[0] >= 0.6, "the base model must know the world (chance is 0.25) [0.807]"
    assert knowledge[0] - knowledge[3] >= 0.15, "full fine-tuning through the stream must cost >= 15 points [45.0]"
    gains = {}
    for step, task in enumerate(["stream_translate", "stream_count", "stream_reverse"], start=1):
        gains[task] = stream.loc[step, task] - stream.loc[0, task]
        assert gains[task] >= 0.5, f"{task} must be learned at its step [0.78]"
    translate_lost = gains["stream_translate"] - (stream.loc[3, "stream_translate"] - stream.loc[0, "stream_translate"])
    assert translate_lost >= 0.4, "the first task must lose most of what it gained by the end [0.77]"
    assert stream.loc[3, "stream_reverse"] - stream.loc[0, "stream_reverse"] >= 0.5, "the last task is kept [0.88]"
