"""Evaluation inside a task (eval.every_steps, eval.at_steps): rows at the configured optimizer steps,
exact after a crash between two of them, unchanged boundary rows, and the report's curves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from forgetbench import runner
from forgetbench.reporting.report import write_report
from forgetbench.results import InsideTaskTable, read_items, read_results
from tests.conftest import SMALL, compose, run_cli
from tests.helpers import Crash

TWO_TASKS = ["stream.tasks=[translate,count]"]  # 8 optimizer steps each (debug=smoke)
INSIDE = ["eval.every_steps=3", "eval.at_steps=[1]", "eval.inside_task_limit=8"]
TIMING = ["wall_time", "eval_seconds"]


def _run(tmp_path, cache_dir, overrides: list[str], name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    cfg = compose([f"paths.root_dir={tmp_path}", f"paths.cache_dir={cache_dir}", *SMALL, *TWO_TASKS, *overrides])
    runner.run_experiment(cfg, tmp_path / name)
    return read_results(tmp_path / name).drop(columns=TIMING), InsideTaskTable(tmp_path / name).read().drop(
        columns=TIMING
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory, cache_dir):
    """One uninterrupted run with inner evaluations ((rows, inner rows), its directory), and the
    rows of one without."""
    root = tmp_path_factory.mktemp("inside")
    return _run(root, cache_dir, INSIDE, "inside"), root / "inside", _run(root, cache_dir, [], "boundaries")[0]


def test_inner_rows_come_at_the_configured_steps_and_change_no_boundary_row(straight) -> None:
    (rows, inside), run_dir, boundaries_only = straight
    general = {"tiny_world_knowledge", "tiny_world_continuation", "tiny_world_reading"}
    for step in (1, 2):
        at = inside[inside["step"] == step]
        assert sorted(set(at["inner_step"])) == [1, 3, 6]  # every 3 and at 1; 8 is the boundary's
        assert set(at["eval_task"]) == general and (at["n"] == 8).all() and (at["task_steps"] == 8).all()
        assert len(at) == 3 * len(general)
    assert set(inside["trained_task"]) == {"translate", "count"}
    # the inner evaluations leave training as it was: the boundary rows equal a run without them
    # (all but the config hash: eval.every_steps is hashed when set)
    differ = ["config_hash", "run_id"]
    pd.testing.assert_frame_equal(rows.drop(columns=differ), boundaries_only.drop(columns=differ))
    runs = (run_dir.parent / "inside", run_dir.parent / "boundaries")
    logliks = [np.concatenate(read_items(run)["logliks"].to_list()) for run in runs]
    np.testing.assert_array_equal(*logliks)
    assert rows["config_hash"].iloc[0] != boundaries_only["config_hash"].iloc[0]


@pytest.mark.parametrize("periodic", [False, True], ids=["from-the-step-checkpoint", "from-a-mid-task-checkpoint"])
def test_a_crash_between_two_inner_evaluations_resumes_to_identical_tables(
    periodic: bool, straight, tmp_path, cache_dir, monkeypatch
) -> None:
    """The run dies right after the second inner evaluation of task 2 wrote its rows: resumed from the
    step-1 checkpoint, or (checkpoint every optimizer step) from the mid-task checkpoint before that
    evaluation; either way the rows written after the checkpoint go, and the tables come out equal."""
    (rows, inside), _, _ = straight
    extra = [*INSIDE, *(["train.checkpoint_every_minutes=1e-9"] if periodic else [])]
    append = InsideTaskTable.append

    def crash_after_second_inner_evaluation_of_task_2(self, new_rows, inner_step, task_steps):
        append(self, new_rows, inner_step, task_steps)
        if new_rows and new_rows[0].step == 2 and inner_step == 3:
            raise Crash

    monkeypatch.setattr(InsideTaskTable, "append", crash_after_second_inner_evaluation_of_task_2)
    with pytest.raises(Crash):
        _run(tmp_path, cache_dir, extra, "crashed")
    written = InsideTaskTable(tmp_path / "crashed").read()
    assert (2, 3) in set(zip(written["step"], written["inner_step"]))  # rows past the last checkpoint
    monkeypatch.setattr(InsideTaskTable, "append", append)
    resumed_rows, resumed_inside = _run(tmp_path, cache_dir, extra, "crashed")
    pd.testing.assert_frame_equal(resumed_rows.drop(columns="run_id"), rows.drop(columns="run_id"))
    pd.testing.assert_frame_equal(resumed_inside.drop(columns="run_id"), inside.drop(columns="run_id"))


def test_the_report_draws_the_curves_between_the_task_boundaries(straight, tmp_path) -> None:
    report = write_report([straight[1]], tmp_path)
    text = report.read_text()
    assert "## When inside each task the general score fell" in text
    assert "## Forgetting curves inside each task" in text
    curves = pd.read_csv(tmp_path / "inside_task_curves.csv")
    knowledge = curves[curves["eval_task"] == "tiny_world_knowledge"]
    # step 0, three inner points and the boundary of each of the two tasks
    assert len(knowledge) == 1 + 2 * 4
    assert knowledge["position"].is_monotonic_increasing and knowledge["position"].max() == 2
    assert (tmp_path / "inside_task_curves.png").stat().st_size > 0


def test_an_unknown_inside_task_is_one_line_naming_the_valid_ones(tmp_path, cache_dir) -> None:
    done = run_cli([*SMALL, "eval.every_steps=2", "eval.inside_task_tasks=[knowledge]"], tmp_path, cache_dir)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "'knowledge'" in line and "tiny_world_knowledge" in line and "translate" in line
    assert not (tmp_path / "results").exists() or not list((tmp_path / "results").rglob("results.parquet"))


def test_routed_adapters_train_the_same_with_inner_evaluations(tmp_path, cache_dir) -> None:
    """An inner evaluation scores translate with its own adapter while count trains (peft's set_adapter
    also makes that adapter the trainable one); training must go on with count's adapter: every boundary
    item's log-likelihoods equal a run's without inner evaluations. (method.route=learned failed the same
    way before the fix, and passes since.)"""
    method = ["method=adapters", "method.route=oracle"]
    inside = [*INSIDE, "eval.inside_task_tasks=[tiny_world_knowledge,translate]"]
    items = {}
    for name, extra in (("inside", inside), ("boundaries", [])):
        _run(tmp_path, cache_dir, [*method, *extra], name)
        items[name] = read_items(tmp_path / name).sort_values(["step", "eval_task", "doc_id"], ignore_index=True)
    assert len(InsideTaskTable(tmp_path / "inside").read()) > 0
    logliks = [np.concatenate(frame["logliks"].to_list()) for frame in items.values()]
    np.testing.assert_array_equal(*logliks)
