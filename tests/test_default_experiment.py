"""The default experiment at its default sizes shows what docs/tiny-world.md states, on any seed and CPU.

Runs ``python -m forgetbench`` from an empty cache (world generation included; the base model
is the copy shipped in the package) in a temporary folder: under a minute on 2 cores.
``FORGETBENCH_TEST_SEED`` sets the run's seed (default 0).

Every threshold sits well below its minimum over seeds 0-4 measured by
``experiments/measure_default.py`` (docs/tiny-world.md, "Measured"; the minimum in brackets), so that
another CPU's floating-point rounding, which moves each number a little, cannot fail the test
where the science did not change. Fine-tuning at the default lr (5e-4) grades forgetting
instead of collapsing it to chance, which is what makes the margins possible.
"""

from __future__ import annotations

import os

import pytest

from forgetbench.metrics import score_matrix
from forgetbench.results import read_results
from tests.conftest import run_cli

SEED = int(os.environ.get("FORGETBENCH_TEST_SEED", "0"))
CHANCE = 0.25
STREAM = ["stream_translate", "stream_count", "stream_reverse"]


@pytest.mark.slow
def test_default_run_learns_then_forgets_gradually(tmp_path) -> None:
    done = run_cli([f"seed={SEED}"], tmp_path, tmp_path / "cache", timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "forgetbench: results in" in done.stdout
    rows = read_results(tmp_path / "results")
    general = score_matrix(rows, "acc", "general")
    stream = score_matrix(rows, "acc", "stream")

    for task, base in general.loc[0].items():
        assert base >= 0.6, f"the base model must be able to do {task} (chance is 0.25) [0.835]"
    knowledge = general["tiny_world_knowledge"]
    assert knowledge[0] - knowledge[3] >= 0.12, "full fine-tuning through the stream costs knowledge [20.0 points]"
    assert knowledge[3] >= CHANCE + 0.2, "but the model still knows much of the world [0.614]"
    for step, task in enumerate(STREAM, start=1):
        assert stream.loc[step, task] - stream.loc[0, task] >= 0.4, f"{task} is learned at its step [0.55]"
    # what survives of the earlier tasks varies most from seed to seed (count's gain at the end ranged
    # from +0.15 to +0.46, sd 0.12; translate's +0.11 to +0.36, sd 0.10; at 32 examples a step count's
    # went down to +0.03), hence count's wider margin and the stream's forgetting asserted on the two
    # tasks' mean: BWT = -mean(lost)
    margin = {"stream_translate": 0.05, "stream_count": 0.15}
    lost = []
    for step, task in enumerate(STREAM[:-1], start=1):
        at_end = stream.loc[3, task] - stream.loc[0, task]
        assert at_end > -margin[task], f"{task} ends near or above its start [translate +0.11, count +0.15]"
        lost.append(stream.loc[step, task] - stream.loc[3, task])
    bwt = -sum(lost) / len(lost)
    assert bwt <= -0.25, f"the earlier stream tasks are forgotten in part: BWT {bwt:.2f} [-0.46]"
