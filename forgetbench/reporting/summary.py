"""Summary tables: per eval task of each run, and one row per run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forgetbench.metrics import luo_forgetting, max_drop, score_matrix, stream_metrics, stream_order

BIAS = "bias"  # a category whose change is a change in bias, never forgetting


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
    n_stream = rows[rows["eval_kind"] == "stream"].groupby("run")["eval_task"].nunique()
    facts["complete"] = facts["steps"] >= n_stream.reindex(facts.index).fillna(0)
    return facts


def common_general_tasks(rows: pd.DataFrame) -> tuple[list[str], list[str]]:
    """General eval tasks every run has (compared), and those some runs lack (left out)."""
    general = rows[rows["eval_kind"] == "general"]
    per_run = general.groupby("run")["eval_task"].apply(set)
    common = set.intersection(*per_run) if len(per_run) else set()
    return sorted(common), sorted(set.union(*per_run) - common) if len(per_run) else []


def task_table(rows: pd.DataFrame, intervals: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """Per run and general eval task: start, final, drop with its interval, FG, max drop and its step."""
    records = []
    general = rows[(rows["eval_kind"] == "general") & (rows["metric"] == metric)]
    for (run, task), group in general.groupby(["run", "eval_task"]):
        scores = group.set_index("step")["value"].sort_index()
        worst, worst_step = max_drop(scores)
        final_step = int(scores.index.max())
        ci = intervals[(intervals["run"] == run) & (intervals["eval_task"] == task) & (intervals["step"] == final_step)]
        low, high, significant = (
            ci.iloc[0][["drop_low", "drop_high", "significant"]] if len(ci) else (np.nan, np.nan, False)
        )
        category = group["eval_category"].iloc[0]
        records.append(
            {
                "run": run,
                "eval_task": task,
                "category": category,
                "start": scores.iloc[0],
                "final": scores.iloc[-1],
                "drop": scores.iloc[0] - scores.iloc[-1],
                "drop_pct": (scores.iloc[0] - scores.iloc[-1]) / scores.iloc[0] * 100 if scores.iloc[0] else np.nan,
                "drop_low": low,
                "drop_high": high,
                "significant": bool(significant),
                "fg": luo_forgetting(scores),
                "max_drop": worst,
                "max_drop_step": worst_step,
                "reading": _bias_label(scores) if category == BIAS else "forgetting",
            }
        )
    return pd.DataFrame(records)


def _bias_label(scores: pd.Series) -> str:
    change = scores.iloc[-1] - scores.iloc[0]
    return "bias up" if change > 0 else "bias down" if change < 0 else "bias unchanged"


def run_summary(rows: pd.DataFrame, tasks: pd.DataFrame, metric: str = "acc") -> pd.DataFrame:
    """One row per run: facts, FG and final drop (points) per category, stream metrics."""
    summary = run_facts(rows)
    forgetting = tasks[tasks["category"] != BIAS]
    for category, group in forgetting.groupby("category"):
        summary[f"fg_{category}"] = group.groupby("run")["fg"].mean()
        summary[f"drop_{category}"] = group.groupby("run")["drop"].mean() * 100
    for run in summary.index:
        run_rows = rows[rows["run"] == run]
        order = stream_order(run_rows)
        if order and summary.loc[run, "complete"]:
            matrix = score_matrix(run_rows, None, "stream")  # each stream task's headline metric
            for name, value in stream_metrics(matrix[order]).items():
                summary.loc[run, f"stream_{name}"] = value
    return summary


def seed_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of every numeric column, per (model, method)."""
    numeric = [c for c in summary.columns if c.startswith(("fg_", "drop_", "stream_"))]
    grouped = summary.groupby(["model", "architecture", "method"])[numeric]
    table = grouped.mean().round(3).astype(str) + " ± " + grouped.std().fillna(0).round(3).astype(str)
    table["seeds"] = grouped.size()
    return table.reset_index()
