"""Reports: metrics by hand, interval coverage, and the whole report on real tiny-world runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from forgetbench.metrics import max_drop, stream_metrics
from forgetbench.reporting.bootstrap import bootstrap_intervals
from forgetbench.reporting.command import main as report_main
from forgetbench.reporting.seed_bootstrap import seed_intervals
from tests.conftest import ROOT, SMALL, run_cli


def test_stream_metrics_on_a_3x3_matrix_by_hand() -> None:
    # rows: after step 0 (base), 1, 2, 3; columns: tasks in training order
    matrix = pd.DataFrame(
        [[0.2, 0.1, 0.3], [0.9, 0.2, 0.3], [0.6, 0.8, 0.4], [0.5, 0.4, 0.7]],
        columns=["a", "b", "c"],
    )
    m = stream_metrics(matrix)
    assert m["acc"] == pytest.approx((0.5 + 0.4 + 0.7) / 3)  # final row
    assert m["la"] == pytest.approx((0.9 + 0.8 + 0.7) / 3)  # diagonal R[j][j]
    assert m["bwt"] == pytest.approx(((0.5 - 0.9) + (0.4 - 0.8)) / 2)  # -0.4
    assert m["fwt"] == pytest.approx(((0.2 - 0.1) + (0.4 - 0.3)) / 2)  # R[j-1][j] - R[0][j]
    assert m["forgetting"] == pytest.approx(((0.9 - 0.5) + (0.8 - 0.4)) / 2)  # best of steps 1..2 minus final


def test_max_drop_and_its_step() -> None:
    assert max_drop(pd.Series([0.8, 0.5, 0.6, 0.7])) == (pytest.approx(0.3), 1)


def test_bootstrap_interval_covers_the_true_drop() -> None:
    """In 200 simulated runs, the 95% interval of the drop covers the true drop about 95% of the time."""
    rng = np.random.default_rng(0)
    true_p0, true_p1, n, covered = 0.70, 0.60, 300, 0
    trials = 200
    for trial in range(trials):
        latent = rng.random(n)  # the same items at both steps: paired outcomes
        before = (latent < true_p0).astype(float)
        after = (latent < true_p1).astype(float)
        flip = rng.random(n) < 0.1  # some items change independently
        after[flip] = (rng.random(flip.sum()) < true_p1).astype(float)
        items = pd.DataFrame(
            {
                "run": "r",
                "eval_task": "t",
                "doc_id": np.tile(np.arange(n), 2),
                "step": np.repeat([0, 1], n),
                "correct": np.concatenate([before, after]),
            }
        )
        row = bootstrap_intervals(items, draws=400, seed=trial).query("step == 1").iloc[0]
        covered += row["drop_low"] <= true_p0 - true_p1 <= row["drop_high"]
    assert 0.90 <= covered / trials <= 0.99


def _seed_items(correct_by_run: dict[str, list[list[int]]]) -> pd.DataFrame:
    """Per-item rows of one task: correct_by_run[run][step] lists the 0/1 outcomes of its items."""
    rows = [
        {"run": run, "eval_task": "k", "step": step, "doc_id": doc, "correct": float(c)}
        for run, steps in correct_by_run.items()
        for step, outcomes in enumerate(steps)
        for doc, c in enumerate(outcomes)
    ]
    return pd.DataFrame(rows)


def test_seed_intervals_average_per_run_fg_and_widen_with_the_spread_of_seeds() -> None:
    """A size point is the mean over seeds of each run's FG and drop, with an interval over seeds and items:
    seeds that disagree give a wider interval than seeds that agree on the same mean."""
    base = [1] * 16 + [0] * 4  # R0 = 0.8 on 20 items
    agree = {f"s{i}": [base, [1] * 12 + [0] * 8, [1] * 10 + [0] * 10] for i in range(4)}  # R1 = 0.6, R2 = 0.5
    spread = {  # R2 = 0.2 or 0.8 (mean 0.5)
        f"t{i}": [base, [1] * 12 + [0] * 8, ([1] * 4 + [0] * 16) if i % 2 else ([1] * 16 + [0] * 4)] for i in range(4)
    }
    facts = pd.DataFrame(
        {"model": ["agree"] * 4 + ["spread"] * 4, "method": "full", "architecture": "decoder", "n_params": 10}
        | {"run": [*agree, *spread]}
    ).set_index("run")
    result = seed_intervals(_seed_items(agree | spread), facts, {"k": "knowledge"}, draws=2000)
    points = result.categories.set_index("model")
    fg = np.mean([(0.8 - 0.6) / 0.8, (0.8 - 0.5) / 0.8]) * 100  # 31.25 for every agreeing seed
    assert points.loc["agree", "fg"] == pytest.approx(fg) and points.loc["agree", "drop"] == pytest.approx(30)
    assert points.loc["spread", "drop"] == pytest.approx(30) and points.loc["spread", "seeds"] == 4
    for model in ("agree", "spread"):
        assert points.loc[model, "drop_low"] < 30 < points.loc[model, "drop_high"]
    width = points["drop_high"] - points["drop_low"]
    assert width["spread"] > 1.5 * width["agree"]
    curve = result.curves.query("model == 'agree' and step == 2").iloc[0]
    assert curve["score"] == pytest.approx(0.5) and curve["score_low"] < 0.5 < curve["score_high"]


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory, cache_dir):
    """Two decoder sizes (one multirun) and an encoder-decoder run, small."""
    root = tmp_path_factory.mktemp("runs")
    small = [o for o in SMALL if not o.startswith("model.hidden_size")]
    sweep = run_cli(["-m", "model.hidden_size=32,48", *small], root, cache_dir)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    single = run_cli(["model=tiny_encdec", *SMALL], root, cache_dir)
    assert single.returncode == 0, single.stderr[-3000:]
    return root / "results" / "tiny_world"


def test_report_on_sizes_and_architectures_has_every_section(three_runs, tmp_path) -> None:
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "forgetbench", "report", str(three_runs), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    text = (out / "report.md").read_text()
    for section in (
        "How to read it",
        "Runs (★ best per column)",
        "Forgetting per eval task",
        "Forgetting curves",
        "Forgetting against model size",
        "Forgetting curves per architecture",
        "Per model and category (mean over seeds, 95% CI)",
        "Stream accuracy matrix",
        "Time per step (seconds: the step, its evaluation, the rest)",
        "Slowest eval tasks (seconds per evaluation)",
    ):
        assert f"## {section}" in text
    for name in ("forgetting_curves", "fg_by_size", "curves_by_architecture", "stream_matrix"):
        assert (out / f"{name}.png").stat().st_size > 5_000 and (out / f"{name}.svg").exists()
    # `python -m forgetbench report` is the console script's `forgetbench report`, not an override "report"
    again = tmp_path / "again"
    command = [sys.executable, "-m", "forgetbench", "report", str(three_runs), "--out", str(again)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (again / "report.md").read_text() == text
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert len(summary) == 3 and set(summary["architecture"]) == {"decoder", "encoder-decoder"}
    assert summary["n_params"].nunique() == 3
    assert {"fg_knowledge", "drop_knowledge", "stream_acc", "stream_bwt", "stream_fwt"} <= set(summary.columns)
    # every summary number is recomputable from the merged table with the documented formula
    merged = pd.read_parquet(out / "merged_results.parquet")
    for run, row in summary.iterrows():
        scores = merged[(merged["run"] == run) & (merged["eval_task"] == "tiny_world_knowledge")]
        scores = scores.sort_values("step")["value"].to_numpy()
        assert row["fg_knowledge"] == pytest.approx(np.mean((scores[0] - scores[1:]) / scores[0]) * 100)
        assert row["drop_knowledge"] == pytest.approx((scores[0] - scores[-1]) * 100)
    assert re.search(r"\d+\.\d \[-?\d+\.\d, -?\d+\.\d\]", text), "drops are shown with their intervals"


def test_incomplete_runs_and_uncommon_tasks_are_reported(three_runs, tmp_path) -> None:
    runs = sorted(p.parent for p in three_runs.rglob("results.parquet") if p.parent.name != "report")
    partial = tmp_path / "partial" / "run"
    shutil.copytree(runs[0], partial)
    rows = pq.read_table(partial / "results.parquet").to_pandas()
    rows = rows[(rows["step"] <= 1) & (rows["eval_task"] != "tiny_world_reading")]
    rows.to_parquet(partial / "results.parquet", index=False)
    out = tmp_path / "out"
    assert report_main([str(runs[1]), str(partial), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "INCOMPLETE" in text and "Incomplete runs" in text
    assert "left out: tiny_world_reading" in text


def test_report_errors_are_one_line(tmp_path, capsys) -> None:
    assert report_main([str(tmp_path)]) == 2
    assert "no results.parquet under" in capsys.readouterr().err
    bad = tmp_path / "bad" / "results.parquet"
    bad.parent.mkdir()
    bad.write_bytes(b"not parquet at all")
    assert report_main([str(bad.parent)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a readable forgetbench results table" in err


@pytest.mark.skipif(not shutil.which("chromium"), reason="headless Chromium is not installed")
def test_html_opens_in_chromium_with_every_image_loaded(three_runs, tmp_path) -> None:
    out = tmp_path / "report"
    assert report_main([str(three_runs), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    probe = (
        "<script>window.onload=()=>{const i=[...document.images];"
        "document.title='loaded '+i.filter(x=>x.complete&&x.naturalWidth>0).length+' of '+i.length}</script>"
    )
    (out / "probe.html").write_text(page.replace("</body>", probe + "</body>"))
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            (out / "probe.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r"<title>loaded (\d+) of (\d+)</title>", done.stdout)
    assert match, done.stdout[:500] + done.stderr[-500:]
    loaded, total = map(int, match.groups())
    assert total >= 3 and loaded == total


def test_timing_tables_sum_each_eval_task_once_per_step() -> None:
    """An eval task's seconds are on each of its metric rows: counted once; training is the rest."""
    from forgetbench.reporting.timing import eval_task_timing, step_timing

    rows = pd.DataFrame(
        [
            # run, step, trained_task, eval_task, metric, eval_seconds, wall_time
            ("r", 0, "", "a", "acc", 2.0, 5.0),
            ("r", 0, "", "a", "acc_norm", 2.0, 5.0),
            ("r", 0, "", "b", "acc", 3.0, 5.0),
            ("r", 1, "t1", "a", "acc", 4.0, 20.0),
            ("r", 1, "t1", "a", "acc_norm", 4.0, 20.0),
            ("r", 1, "t1", "b", "acc", 1.0, 20.0),
        ],
        columns=["run", "step", "trained_task", "eval_task", "metric", "eval_seconds", "wall_time"],
    )
    steps = step_timing(rows).set_index("step")
    assert steps.loc[0, "eval_s"] == 5.0 and steps.loc[0, "train_s"] == 0.0
    assert steps.loc[1, "eval_s"] == 5.0 and steps.loc[1, "train_s"] == 15.0 and steps.loc[1, "eval_share"] == 0.25
    assert steps.loc[1, "slowest eval task (s)"] == "a (4.0)"
    tasks = eval_task_timing(rows).set_index("eval_task")
    assert tasks.loc["a", "mean_s"] == 3.0 and tasks.loc["a", "total_s"] == 6.0 and tasks.loc["a", "evaluations"] == 2
    assert list(tasks.index) == ["a", "b"]  # slowest first
    assert step_timing(rows.assign(eval_seconds=float("nan"))).empty  # a table from before the column
