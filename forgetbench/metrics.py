"""Forgetting metrics: pure functions of a run's long results table.

Notation: R_m is an eval task's score after step m (R_0: before fine-tuning),
N the number of fine-tuning steps.
"""

from __future__ import annotations

import pandas as pd


def score_matrix(rows: pd.DataFrame, metric: str = "acc", eval_kind: str | None = None) -> pd.DataFrame:
    """Scores as a step × eval_task matrix (one run's rows)."""
    selected = rows[rows["metric"] == metric]
    if eval_kind is not None:
        selected = selected[selected["eval_kind"] == eval_kind]
    return selected.pivot_table(index="step", columns="eval_task", values="value", aggfunc="first").sort_index()


def luo_forgetting(scores: pd.Series) -> float:
    """Luo et al. (2023) forgetting: the mean relative drop from step 0, in percent.

    FG = 1/N · Σ_{m=1..N} (R_0 − R_m) / R_0 × 100

    Args:
        scores: R_0..R_N indexed by step.
    """
    scores = scores.sort_index()
    r0, later = scores.iloc[0], scores.iloc[1:]
    if len(later) == 0 or r0 == 0:
        return float("nan")
    return float(((r0 - later) / r0).mean() * 100)


def forgetting_table(rows: pd.DataFrame, metric: str = "acc", eval_kind: str = "general") -> pd.DataFrame:
    """Per eval task: start, final, drop and FG.

    Columns:
        start: R_0.
        final: R_N.
        drop: R_0 − R_N (in the metric's units; points ×100 for accuracies).
        drop_pct: (R_0 − R_N) / R_0 × 100.
        fg: :func:`luo_forgetting`.
    """
    matrix = score_matrix(rows, metric, eval_kind)
    records = []
    for task in matrix.columns:
        scores = matrix[task].dropna()
        start, final = scores.iloc[0], scores.iloc[-1]
        records.append(
            {
                "eval_task": task,
                "start": start,
                "final": final,
                "drop": start - final,
                "drop_pct": (start - final) / start * 100 if start else float("nan"),
                "fg": luo_forgetting(scores),
            }
        )
    return pd.DataFrame(records).set_index("eval_task")
