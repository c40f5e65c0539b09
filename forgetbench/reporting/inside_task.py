"""Forgetting inside a task (``eval.every_steps``): the general score between the task boundaries.

Inner evaluations score the first ``eval.inside_task_limit`` items of each task; the boundary points of
these curves are the same items' outcomes at the boundary evaluations (from the run's items), so a
curve compares one set of items all along. Pure functions: tables in, tables out.
"""

from __future__ import annotations

import pandas as pd

from forgetbench.metrics import primary_scores
from forgetbench.results import GENERAL

CURVE_COLUMNS = ["run", "eval_task", "metric", "step", "trained_task", "inner_step", "task_steps", "position", "value"]


def inside_task_curves(inside: pd.DataFrame, rows: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Each run's general-task curve at optimizer-step resolution.

    ``position`` = (step − 1) + inner_step / task_steps: task k's evaluations lie between k − 1 and k.
    Boundary points (inner_step = task_steps; 0 at step 0) are the mean outcome of the items the inner
    evaluations scored (doc_id < their n), read from ``items``."""
    inner = primary_scores(inside[inside["eval_kind"] == GENERAL])
    if inner.empty:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    inner = inner.assign(position=inner["step"] - 1 + inner["inner_step"] / inner["task_steps"])
    frames = [inner[CURVE_COLUMNS]]
    for (run, task), group in inner.groupby(["run", "eval_task"]):
        n = int(group["n"].max())
        scored = items[(items["run"] == run) & (items["eval_task"] == task) & (items["doc_id"] < n)]
        steps = rows[(rows["run"] == run)].drop_duplicates("step").set_index("step")["trained_task"]
        boundary = scored.groupby("step")["correct"].mean()
        task_steps = group.groupby("step")["task_steps"].first()
        frames.append(
            pd.DataFrame(
                {
                    "run": run,
                    "eval_task": task,
                    "metric": group["metric"].iloc[0],
                    "step": boundary.index,
                    "trained_task": [steps.get(s, "") for s in boundary.index],
                    "inner_step": [int(task_steps.get(s, 0)) for s in boundary.index],
                    "task_steps": [int(task_steps.get(s, 0)) for s in boundary.index],
                    "position": boundary.index.astype(float),
                    "value": boundary.values,
                }
            )
        )
    curves = pd.concat(frames, ignore_index=True)
    return curves.sort_values(["run", "eval_task", "position"], ignore_index=True)


def drop_timing(curves: pd.DataFrame) -> pd.DataFrame:
    """When, inside each task, the general score fell: per run, step and general task, the score before
    and after the task, its drop, the share of that drop already there at the first inner evaluation,
    and the first optimizer step by which half of it had happened. Steps whose score did not fall
    (drop ≤ 0) have no half point."""
    out = []
    for (run, task, step), group in curves[curves["step"] > 0].groupby(["run", "eval_task", "step"]):
        before = curves[(curves["run"] == run) & (curves["eval_task"] == task) & (curves["step"] == step - 1)]
        if before.empty:
            continue
        start = before.sort_values("position")["value"].iloc[-1]
        group = group.sort_values("position")
        end, drop = group["value"].iloc[-1], start - group["value"].iloc[-1]
        first = group.iloc[0]
        half = group[group["value"] <= start - drop / 2]["inner_step"] if drop > 0 else pd.Series(dtype=int)
        out.append(
            {
                "run": run,
                "eval_task": task,
                "step": step,
                "trained_task": group["trained_task"].iloc[-1],
                "task_steps": int(group["task_steps"].max()),
                "before": start,
                "after": end,
                "drop (points)": 100 * drop,
                "first eval @ step": int(first["inner_step"]),
                "share of drop at first eval": (start - first["value"]) / drop if drop > 0 else float("nan"),
                "half of drop by step": str(int(half.iloc[0])) if len(half) else "–",
            }
        )
    return pd.DataFrame(out)
