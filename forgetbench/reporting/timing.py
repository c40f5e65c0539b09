"""Where a run's time went (pure: the results table in, tables out).

Each row carries ``wall_time`` (the seconds of its step: training, then evaluation) and
``eval_seconds`` (the seconds its eval task took to score at that step, the same on every metric of
the task). Tables written before ``eval_seconds`` existed have NaN there and give empty tables.
"""

from __future__ import annotations

import pandas as pd

SLOWEST = 10  # eval tasks listed in the per-task table


def _per_task(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, step, eval task) with its seconds."""
    if "eval_seconds" not in rows or rows["eval_seconds"].isna().all():
        return pd.DataFrame()
    timed = rows.dropna(subset=["eval_seconds"])
    return timed.drop_duplicates(["run", "step", "eval_task"])[
        ["run", "step", "trained_task", "eval_task", "eval_seconds", "wall_time"]
    ]


def step_timing(rows: pd.DataFrame) -> pd.DataFrame:
    """Per run and step: ``wall_s`` (the step), ``eval_s`` = Σ over eval tasks of their seconds,
    ``train_s`` = wall_s − eval_s (training and what surrounds it; 0 at step 0), ``eval_share``
    = eval_s / wall_s, and the step's slowest eval task."""
    tasks = _per_task(rows)
    if tasks.empty:
        return tasks
    records = []
    for (run, step), group in tasks.groupby(["run", "step"], sort=True):
        slowest = group.loc[group["eval_seconds"].idxmax()]
        wall, spent = float(group["wall_time"].iloc[0]), float(group["eval_seconds"].sum())
        records.append(
            {
                "run": run,
                "step": int(step),
                "trained_task": group["trained_task"].iloc[0],
                "wall_s": round(wall, 1),
                "eval_s": round(spent, 1),
                "train_s": round(max(wall - spent, 0.0), 1),
                "eval_share": round(spent / wall, 3) if wall > 0 else float("nan"),
                "slowest eval task (s)": f"{slowest['eval_task']} ({slowest['eval_seconds']:.1f})",
            }
        )
    return pd.DataFrame(records)


def eval_task_timing(rows: pd.DataFrame) -> pd.DataFrame:
    """Per run, the :data:`SLOWEST` eval tasks by their mean seconds per evaluation (and the total)."""
    tasks = _per_task(rows)
    if tasks.empty:
        return tasks
    table = (
        tasks.groupby(["run", "eval_task"])["eval_seconds"]
        .agg(mean_s="mean", total_s="sum", evaluations="count")
        .reset_index()
        .sort_values(["run", "mean_s"], ascending=[True, False])
    )
    table[["mean_s", "total_s"]] = table[["mean_s", "total_s"]].round(2)
    return table.groupby("run", sort=False).head(SLOWEST).reset_index(drop=True)
