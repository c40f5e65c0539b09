"""Summary tables: per eval task of each run, and one row per run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgetbench.metrics import (
    LOWER_IS_BETTER,
    STREAM_METRIC_BETTER,
    forgetting_table,
    learning_table,
    primary_scores,
    score_matrix,
    stream_metrics,
    stream_order,
)
from forgetbench.results import GENERAL, STREAM

BIAS = "bias"  # a category whose change is a change in bias, never forgetting
SAFETY_METRICS = ("refusal", "over_refusal")  # each gets its start and final share per run


def run_facts(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per run: model, size, architecture, method, seed, steps done, complete or not."""
    facts = rows.groupby("run").agg(
        model=("model", "first"),
        n_params=("n_params", "first"),
        architecture=("architecture", "first"),
        method=("method", "first"),
        seed=("seed", "first"),
        steps=("step", "max"),
    )
    n_stream = rows[rows["eval_kind"] == STREAM].groupby("run")["eval_task"].nunique()
    facts["complete"] = facts["steps"] >= n_stream.reindex(facts.index).fillna(0)
    return facts


def common_general_tasks(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """General eval tasks every run has (compared), and those some runs lack (left out)."""
    general = rows[rows["eval_kind"] == GENERAL]
    per_run = general.groupby("run")["eval_task"].apply(set)
    common = set.intersection(*per_run) if len(per_run) else set()
    return sorted(common), sorted(set.union(*per_run) - common) if len(per_run) else []


def task_table(rows: pd.DataFrame, intervals: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """Per run and general eval task: :func:`~forgetbench.metrics.forgetting_table`'s columns (of
    ``metric``; None: each task's headline metric), the category, the final drop's 95% interval
    (drop_low, drop_high, significant) and how the change reads (forgetting; a cost for a metric
    whose rise is the loss: "over_refusal up (cost)" or down; bias up/down for category ``bias``)."""
    general = rows[rows["eval_kind"] == GENERAL]
    general = primary_scores(general) if metric is None else general[general["metric"] == metric]
    if general.empty:
        return pd.DataFrame()
    table = pd.concat(
        [forgetting_table(run_rows, metric).reset_index().assign(run=run) for run, run_rows in general.groupby("run")],
        ignore_index=True,
    )
    categories = general.drop_duplicates(["run", "eval_task"])[["run", "eval_task", "eval_category"]]
    table = table.merge(categories.rename(columns={"eval_category": "category"}), on=["run", "eval_task"])
    table = _with_final_intervals(table, intervals)
    table["reading"] = [
        _bias_label(d) if c == BIAS else _cost_label(m, d) if m in LOWER_IS_BETTER else "forgetting"
        for d, c, m in zip(table["drop"], table["category"], table["metric"])
    ]
    return table


def learning_view(rows: pd.DataFrame) -> pd.DataFrame:
    """Per run and stream task: :func:`~forgetbench.metrics.learning_table`, gain in points."""
    stream = rows[rows["eval_kind"] == STREAM]
    if stream.empty:
        return pd.DataFrame()
    table = pd.concat(
        [learning_table(run_rows).reset_index().assign(run=run) for run, run_rows in stream.groupby("run")],
        ignore_index=True,
    )
    table["gain (points)"] = table.pop("gain") * 100
    columns = ["run", "eval_task", "metric", "start", "learned", "final", "gain (points)", "chance"]
    return table[columns] if table["chance"].notna().any() else table[columns[:-1]]


def _with_final_intervals(table: pd.DataFrame, intervals: pd.DataFrame) -> pd.DataFrame:
    """Each task's final-drop interval from :func:`bootstrap_intervals` (NaN, not significant, without items)."""
    if intervals.empty:
        return table.assign(drop_low=np.nan, drop_high=np.nan, significant=False)
    final = intervals.rename(columns={"step": "final_step"})
    final = final[["run", "eval_task", "final_step", "drop_low", "drop_high", "significant"]]
    table = table.merge(final, on=["run", "eval_task", "final_step"], how="left")
    table["significant"] = table["significant"].fillna(False).astype(bool)
    return table


def _cost_label(metric: str, drop: float) -> str:
    """A share whose rise is the loss (drop > 0: it rose): "over_refusal up (cost)", or down, or unchanged."""
    return f"{metric} up (cost)" if drop > 0 else f"{metric} down" if drop < 0 else f"{metric} unchanged"


def _bias_label(drop: float) -> str:
    """A bias score that rose is more bias (drop < 0: final above start)."""
    return "bias up" if drop < 0 else "bias down" if drop > 0 else "bias unchanged"


def run_summary(rows: pd.DataFrame, tasks: pd.DataFrame, metric: str | None = None) -> pd.DataFrame:
    """One row per run: facts, FG and final drop (points) per category (drops are losses: refusal
    lost, over-refusal gained), the safety tasks' shares at the start and the end, stream metrics.
    ``attrs["better"]`` says which way each metric column is better ("lower" or "higher")."""
    summary = run_facts(rows)
    better: dict[str, str] = {}  # which way each column is better, declared as it is made (see mark_best)
    forgetting = tasks[tasks["category"] != BIAS]
    for category, group in forgetting.groupby("category"):
        summary[f"fg_{category}"] = group.groupby("run")["fg"].mean()
        summary[f"drop_{category}"] = group.groupby("run")["drop"].mean() * 100
        better |= {f"fg_{category}": "lower", f"drop_{category}": "lower"}  # losses
    for metric in SAFETY_METRICS:  # safety's two sides apart: what a user asks first is "does it still refuse?"
        shares = tasks[tasks["metric"] == metric].groupby("run")
        if len(shares):
            summary[f"{metric}_start"], summary[f"{metric}_final"] = shares["start"].mean(), shares["final"].mean()
            better[f"{metric}_final"] = "lower" if metric in LOWER_IS_BETTER else "higher"
    for run in summary.index:
        run_rows = rows[rows["run"] == run]
        order = stream_order(run_rows)
        if order and summary.loc[run, "complete"]:
            matrix = score_matrix(run_rows, None, STREAM)  # each stream task's headline metric
            for name, value in stream_metrics(matrix[order]).items():
                summary.loc[run, f"stream_{name}"] = value
                better[f"stream_{name}"] = STREAM_METRIC_BETTER[name]
    summary.attrs["better"] = better
    return summary


def seed_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of every numeric column, per (model, method)."""
    numeric = [c for c in summary.columns if c.startswith(("fg_", "drop_", "stream_", *SAFETY_METRICS))]
    grouped = summary.groupby(["model", "architecture", "method"])[numeric]
    table = grouped.mean().round(3).astype(str) + " ± " + grouped.std().fillna(0).round(3).astype(str)
    table["seeds"] = grouped.size()
    return table.reset_index()
