"""The default experiment at its default sizes meets the targets the README states.

Runs ``python -m forgetbench`` from scratch (world generation and base-model
pretraining included) in a temporary folder: about two and a half minutes.
"""

from __future__ import annotations

import pytest

from forgetbench.metrics import score_matrix
from forgetbench.results import read_results
from tests.conftest import run_cli


@pytest.mark.slow
def test_default_run_learns_then_forgets(tmp_path) -> None:
    done = run_cli([], tmp_path, tmp_path / "cache", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "forgetbench: results in" in done.stdout
    rows = read_results(tmp_path / "results")
    general = score_matrix(rows, "acc", "general")
    stream = score_matrix(rows, "acc", "stream")

    knowledge = general["tiny_world_knowledge"]
    assert knowledge[0] >= 0.6, "the base model must know the world (chance is 0.25)"
    assert knowledge[0] - knowledge[3] >= 0.15, "full fine-tuning through the stream must cost >= 15 points"
    for step, task in enumerate(["stream_translate", "stream_count", "stream_reverse"], start=1):
        assert stream.loc[step, task] >= stream.loc[0, task] + 0.5, f"{task} must be learned at its step"
        assert stream.loc[3, task] > stream.loc[0, task], f"{task} must end above where the base model started"
