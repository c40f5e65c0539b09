"""A forgetting report across runs: load, summarise with intervals, draw, render.

The report folder gets report.md, report.html (self-contained), the merged
results and items tables, summary.csv, and every figure as PNG and SVG. It is
written by the entry point after every run (into ``<run>/report``), by a Hydra
callback after every multirun (into ``<sweep>/report``), and by
``forgetbench report PATH...`` (:mod:`forgetbench.reporting.command`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from forgetbench.reporting.bootstrap import bootstrap_intervals
from forgetbench.reporting.figures import (
    curves_by_architecture,
    fg_by_size,
    forgetting_curves,
    inside_task_curves_figure,
    method_comparison,
    stream_heatmaps,
)
from forgetbench.reporting.inside_task import drop_timing, inside_task_curves
from forgetbench.reporting.load import load_runs
from forgetbench.reporting.render import Report, Section, mark_best, to_html, to_markdown
from forgetbench.reporting.routing import routing_accuracy, routing_confusion
from forgetbench.reporting.seed_bootstrap import seed_intervals
from forgetbench.reporting.summary import (
    BIAS,
    common_general_tasks,
    learning_view,
    run_facts,
    run_summary,
    seed_summary,
    task_table,
)
from forgetbench.reporting.timing import eval_task_timing, step_timing
from forgetbench.results import STREAM

REPORT_DIR = "report"
ANALYSIS_DIR = "analysis"  # written into a run's report by `forgetbench analyze` (forgetbench.analysis)

FORMULAS = (
    "drop = R0 − Rfinal (×100: points); FG (Luo et al. 2023) = 1/N · Σ_m (R0 − Rm)/R0 × 100; "
    "max drop = max_m (R0 − Rm). Stream (R[i][j]: task j after step i): ACC = mean_j R[T][j]; "
    "LA = mean_j R[j][j]; BWT = mean_{j<T} (R[T][j] − R[j][j]); FWT = mean_{j>1} (R[j−1][j] − R[0][j]); "
    "forgetting = mean_{j<T} (max_{l<T} R[l][j] − R[T][j]). Intervals: 95% paired bootstrap over items "
    "(1000 draws); a drop marked * has an interval excluding zero."
)


INSIDE_TITLE = "When inside each task the general score fell"
INSIDE_TEXT = (
    "Evaluations inside each task (eval.every_steps) score the first eval.inside_task_limit items of each "
    "general task; before/after are the same items at the task's boundaries. share of drop at first eval: "
    "(before − score at the first inner evaluation) / (before − after); half of drop by step: the first "
    "optimizer step whose score had fallen by half the task's drop."
)


def write_report(paths: list[str | Path], out_dir: str | Path, metric: str | None = None) -> Path:
    """Build the report of every run under ``paths`` into ``out_dir`` (``metric``: the general tasks'
    metric; None: each task's headline, acc, or refusal/over_refusal for safety tasks); return report.md's path."""
    out = Path(out_dir)
    runs = load_runs(paths)
    common, left_out = common_general_tasks(runs.rows)
    keep = (runs.rows["eval_kind"] == STREAM) | runs.rows["eval_task"].isin(common)
    rows = runs.rows[keep]
    items = runs.items[runs.items["eval_task"].isin(set(rows["eval_task"]))]
    intervals = bootstrap_intervals(items)
    tasks = task_table(rows, intervals, metric)
    summary = run_summary(rows, tasks, metric)
    facts = run_facts(rows)

    out.mkdir(parents=True, exist_ok=True)
    figures = {
        "forgetting_curves": forgetting_curves(rows, intervals, facts, common, metric),
        "stream_matrix": stream_heatmaps(rows, facts, metric),
    }
    size_points = pd.DataFrame()
    if summary["n_params"].nunique() > 1 or summary["architecture"].nunique() > 1:
        categories = dict(zip(tasks["eval_task"], tasks["category"]))
        by_seed = seed_intervals(items, facts, {t: c for t, c in categories.items() if c != BIAS})
        size_points = by_seed.categories
        if not size_points.empty:
            figures["fg_by_size"] = fg_by_size(size_points)
            figures["curves_by_architecture"] = curves_by_architecture(by_seed.curves, size_points, common)
    if summary["method"].nunique() > 1:
        figures["method_comparison"] = method_comparison(tasks, summary)
    inside = inside_task_curves(runs.inside, runs.rows, runs.items)
    if not inside.empty:
        figures["inside_task_curves"] = inside_task_curves_figure(inside, facts)
    for name, figure in figures.items():
        for kind, options in (("png", {"dpi": 130}), ("svg", {})):
            with written_whole(out / f"{name}.{kind}") as tmp:
                figure.savefig(tmp, format=kind, bbox_inches="tight", **options)
        plt.close(figure)

    tables = {
        "merged_results.parquet": runs.rows,  # not results.parquet: readers glob that
        "merged_items.parquet": runs.items,
    }
    for name, table in tables.items():
        with written_whole(out / name) as tmp:
            table.to_parquet(tmp, index=False)
    with written_whole(out / "summary.csv") as tmp:
        summary.to_csv(tmp)
    if not size_points.empty:
        with written_whole(out / "size_summary.csv") as tmp:
            size_points.to_csv(tmp, index=False)
    routing = (routing_accuracy(runs.rows, runs.items), routing_confusion(runs.rows, runs.items))
    if not routing[0].empty:
        with written_whole(out / "routing.csv") as tmp:
            routing[0].to_csv(tmp, index=False)
    timing = (step_timing(runs.rows), eval_task_timing(runs.rows))
    report = _assemble(summary, tasks, learning_view(rows), facts, left_out, figures, size_points, routing, timing)
    if (out / ANALYSIS_DIR / "analysis.md").exists():
        text = f"forgetbench analyze wrote {ANALYSIS_DIR}/analysis.md (and .html): recovery probe, where, drift."
        report.sections.insert(1, Section("When and why it forgot", text))
    if not inside.empty:
        report.sections.insert(-len(figures), Section(INSIDE_TITLE, INSIDE_TEXT, table=drop_timing(inside)))
        with written_whole(out / "inside_task_curves.csv") as tmp:
            inside.to_csv(tmp, index=False)
    with written_whole(out / "report.md") as tmp:
        tmp.write_text(to_markdown(report))
    with written_whole(out / "report.html") as tmp:
        tmp.write_text(to_html(report, out))
    return out / "report.md"


@contextlib.contextmanager
def written_whole(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path``, moved onto it once written: a failed write (a full disk)
    leaves the previous file, or none, never a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _assemble(summary, tasks, learning, facts, left_out, figures, size_points, routing, timing) -> Report:
    notes = []
    incomplete = facts.index[~facts["complete"]].tolist()
    if incomplete:
        notes.append(f"Incomplete runs (reported up to their last step): {', '.join(incomplete)}.")
    if left_out:
        notes.append(f"Compared on the eval tasks all runs share; left out: {', '.join(left_out)}.")
    report = Report("forgetbench report", [Section("How to read it", "\n\n".join([FORMULAS, *notes]))])
    summary_view = summary.copy()
    summary_view["complete"] = summary_view["complete"].map({True: "yes", False: "INCOMPLETE"})
    table = mark_best(summary_view, summary.attrs.get("better", {}))
    report.sections.append(Section("Runs (★ best per column)", table=table))
    if summary.groupby(["model", "method"]).size().max() > 1:
        report.sections.append(Section("Across seeds (mean ± std)", table=seed_summary(summary)))
    if not size_points.empty:
        report.sections.append(
            Section("Per model and category (mean over seeds, 95% CI)", table=_size_view(size_points))
        )
    report.sections.append(Section("Forgetting per eval task", table=_task_view(tasks)))
    if not learning.empty:  # the gain beside the forgetting it cost
        report.sections.append(Section("Learning per stream task", table=learning))
    accuracy, confusion = routing
    if not accuracy.empty:  # a router picked each input's adapter
        title = "Routing accuracy per step (trained stream tasks' items to their own adapter)"
        report.sections.append(Section(title, table=accuracy))
        title = "Routing at the last step (share of each source's items per route)"
        report.sections.append(Section(title, table=confusion))
    steps, eval_tasks = timing
    if not steps.empty:  # evaluation's cost beside training's
        report.sections.append(Section("Time per step (seconds: the step, its evaluation, the rest)", table=steps))
        report.sections.append(Section("Slowest eval tasks (seconds per evaluation)", table=eval_tasks))
    titles = {
        "forgetting_curves": "Forgetting curves",
        "fg_by_size": "Forgetting against model size",
        "curves_by_architecture": "Forgetting curves per architecture",
        "stream_matrix": "Stream accuracy matrix",
        "method_comparison": "Method comparison",
        "inside_task_curves": "Forgetting curves inside each task",
    }
    report.sections += [Section(titles[name], figure=f"{name}.png") for name in figures]
    return report


def _task_view(tasks: pd.DataFrame) -> pd.DataFrame:
    view = tasks[["run", "eval_task", "category", "start", "final"]].copy()
    points = tasks["drop"] * 100
    view["drop (points, 95% CI)"] = [
        f"{d:.1f} [{lo * 100:.1f}, {hi * 100:.1f}]{' *' if sig else ''}"
        for d, lo, hi, sig in zip(points, tasks["drop_low"], tasks["drop_high"], tasks["significant"])
    ]
    view["drop %"] = tasks["drop_pct"]
    view["fg"] = tasks["fg"]
    view["max drop (points) @ step"] = [
        f"{m * 100:.1f} @ {s}" for m, s in zip(tasks["max_drop"], tasks["max_drop_step"])
    ]
    view["reads as"] = tasks["reading"]
    return view


def _size_view(points: pd.DataFrame) -> pd.DataFrame:
    view = points[["model", "architecture", "n_params", "method", "category", "seeds"]].copy()
    for name, unit in (("fg", "FG %"), ("drop", "final drop (points)")):
        view[f"{unit} [95% CI]"] = [
            f"{v:.1f} [{lo:.1f}, {hi:.1f}]"
            for v, lo, hi in zip(points[name], points[f"{name}_low"], points[f"{name}_high"])
        ]
    return view.sort_values(["category", "architecture", "n_params"], ignore_index=True)
