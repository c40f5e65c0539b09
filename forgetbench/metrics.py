"""Forgetting metrics: pure functions of a run's long results table.

Notation: R_m is an eval task's score after step m (R_0: before fine-tuning),
N the number of fine-tuning steps.
"""

from __future__ import annotations

import pandas as pd

from forgetbench.results import GENERAL, STREAM

# a task's headline metric, in this order of preference (a safety task reports refusal or over_refusal,
# a style task style adherence)
PRIMARY_METRICS = ("acc", "refusal", "over_refusal", "style", "rouge_l", "exact_match")
LOWER_IS_BETTER = frozenset({"over_refusal"})  # shares whose rise is the loss: harmless requests refused


def goodness(scores: pd.Series, metric: str) -> pd.Series:
    """A share turned so that higher is better: 1 − s for :data:`LOWER_IS_BETTER` metrics, else s."""
    return 1 - scores if metric in LOWER_IS_BETTER else scores


def primary_scores(rows: pd.DataFrame) -> pd.DataFrame:
    """Each eval task's rows of its headline metric: the first of :data:`PRIMARY_METRICS` it has, else its first."""
    keep = []
    for _, group in rows.groupby("eval_task"):
        metrics = set(group["metric"])
        chosen = next((m for m in PRIMARY_METRICS if m in metrics), min(metrics))
        keep.append(group[group["metric"] == chosen])
    return pd.concat(keep) if keep else rows.iloc[:0]


def score_matrix(rows: pd.DataFrame, metric: str | None = "acc", eval_kind: str | None = None) -> pd.DataFrame:
    """Scores as a step × eval_task matrix (one run's rows); ``metric=None``: each task's headline metric."""
    selected = rows[rows["eval_kind"] == eval_kind] if eval_kind is not None else rows
    selected = primary_scores(selected) if metric is None else selected[selected["metric"] == metric]
    return selected.pivot_table(index="step", columns="eval_task", values="value", aggfunc="first").sort_index()


def stream_order(rows: pd.DataFrame) -> list[str]:
    """One run's stream eval tasks in training order (``trained_task`` over steps, matched to ``stream_task``)."""
    trained = rows.drop_duplicates("step").sort_values("step")["trained_task"].tolist()
    stream = rows[rows["eval_kind"] == STREAM].drop_duplicates("eval_task")
    eval_task_of = dict(zip(stream["stream_task"], stream["eval_task"]))
    ordered = [eval_task_of[t] for t in trained if t in eval_task_of]
    return ordered + sorted(set(eval_task_of.values()) - set(ordered))


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


def forgetting_table(rows: pd.DataFrame, metric: str | None = "acc", eval_kind: str = GENERAL) -> pd.DataFrame:
    """Per eval task of one run: how much it forgot (the one place these numbers are computed).

    ``metric=None``: each task's headline metric (:func:`primary_scores`). Drops are losses: for a
    :data:`LOWER_IS_BETTER` metric they are computed on G = 1 − R (:func:`goodness`), so its rise
    from R_0 to R_N is a positive drop, R_N − R_0.

    Columns:
        metric: the metric scored.
        start: R_0.
        final: R_N (N: the last step the task was scored at, ``final_step``).
        drop: G_0 − G_N (in the metric's units; points ×100 for accuracies).
        drop_pct: (G_0 − G_N) / G_0 × 100.
        fg: :func:`luo_forgetting` of G.
        max_drop, max_drop_step: :func:`max_drop` of G.
    """
    selected = rows[rows["eval_kind"] == eval_kind]
    selected = primary_scores(selected) if metric is None else selected[selected["metric"] == metric]
    metric_of = selected.drop_duplicates("eval_task").set_index("eval_task")["metric"]
    matrix = score_matrix(selected, None if metric is None else metric)
    records = []
    for task in matrix.columns:
        scores = matrix[task].dropna()
        good = goodness(scores, metric_of[task])
        worst, worst_step = max_drop(good)
        drop = good.iloc[0] - good.iloc[-1]
        records.append(
            {
                "eval_task": task,
                "metric": metric_of[task],
                "start": scores.iloc[0],
                "final": scores.iloc[-1],
                "final_step": int(scores.index.max()),
                "drop": drop,
                "drop_pct": drop / good.iloc[0] * 100 if good.iloc[0] else float("nan"),
                "fg": luo_forgetting(good),
                "max_drop": worst,
                "max_drop_step": worst_step,
            }
        )
    return pd.DataFrame(records).set_index("eval_task")


def learning_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per stream task of one run: what fine-tuning on it gained (the other side of forgetting), in
    each task's headline metric (:func:`primary_scores`: acc, else rouge_l, else exact_match).

    Columns:
        metric: the headline metric.
        start: R_0, the base model on the task's held-out rows.
        learned: R_j, right after the step that trained on it (NaN before that step ran).
        final: R_N, after the last step.
        gain: R_N − R_0 (points ×100 for accuracies).
        chance: the mean ``chance`` score where the task reports one (multiple choice whose
            number of choices varies: 1 / choices per item), else NaN.
    """
    stream = rows[rows["eval_kind"] == STREAM]
    headline = primary_scores(stream).drop_duplicates("eval_task").set_index("eval_task")["metric"]
    matrix = score_matrix(stream, None)
    chance = stream[stream["metric"] == "chance"].groupby("eval_task")["value"].first()
    step_of = {task: step for step, task in zip(stream["step"], stream["trained_task"]) if task}
    records = []
    for task in matrix.columns:
        scores = matrix[task].dropna()
        name = stream.loc[stream["eval_task"] == task, "stream_task"].iloc[0]
        trained_at = step_of.get(name)
        records.append(
            {
                "eval_task": task,
                "metric": headline[task],
                "start": scores.iloc[0],
                "learned": scores.get(trained_at, float("nan")),
                "final": scores.iloc[-1],
                "gain": scores.iloc[-1] - scores.iloc[0],
                "chance": chance.get(task, float("nan")),
            }
        )
    return pd.DataFrame(
        records, columns=["eval_task", "metric", "start", "learned", "final", "gain", "chance"]
    ).set_index("eval_task")


def max_drop(scores: pd.Series) -> tuple[float, int]:
    """The largest drop below the start, max_m (R_0 − R_m) over m ≥ 1, and the step m where it happened."""
    scores = scores.sort_index()
    drops = scores.iloc[0] - scores.iloc[1:]
    if drops.empty:
        return float("nan"), 0
    return float(drops.max()), int(drops.idxmax())


# which way each of stream_metrics' numbers is better (the report stars the best run by it)
STREAM_METRIC_BETTER = {"acc": "higher", "la": "higher", "bwt": "higher", "fwt": "higher", "forgetting": "lower"}


def stream_metrics(matrix: pd.DataFrame) -> dict[str, float]:
    """Continual-learning metrics from the stream accuracy matrix.

    ``matrix.loc[i, j]`` is R[i][j], the score on the j-th stream task after step i
    (row 0: the base model, b_j = R[0][j]); columns in training order, T tasks.

    - ACC (average accuracy) = 1/T · Σ_j R[T][j]
    - LA (learning accuracy) = 1/T · Σ_j R[j][j]
    - BWT (backward transfer, Lopez-Paz & Ranzato 2017) = 1/(T−1) · Σ_{j<T} (R[T][j] − R[j][j])
    - FWT (forward transfer, ibid.) = 1/(T−1) · Σ_{j>1} (R[j−1][j] − b_j)
    - forgetting (Chaudhry et al. 2018) = 1/(T−1) · Σ_{j<T} (max_{l∈1..T−1} R[l][j] − R[T][j])
    """
    r = matrix.sort_index().to_numpy(dtype=float)
    t = r.shape[1]
    if r.shape[0] < t + 1:
        raise ValueError(f"the matrix has {r.shape[0] - 1} steps after the base, needs {t}")
    last = r[t]
    metrics = {"acc": float(last.mean()), "la": float(sum(r[j + 1, j] for j in range(t)) / t)}
    if t > 1:
        metrics["bwt"] = float(sum(last[j] - r[j + 1, j] for j in range(t - 1)) / (t - 1))
        metrics["fwt"] = float(sum(r[j, j] - r[0, j] for j in range(1, t)) / (t - 1))
        metrics["forgetting"] = float(sum(r[1:t, j].max() - last[j] for j in range(t - 1)) / (t - 1))
    return metrics
