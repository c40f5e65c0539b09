"""95% intervals for a model's mean over seeds: a two-level bootstrap, runs and then items.

A point of the size figure is one model (one size, one architecture) averaged over its seeds. Its
uncertainty has two sources: which seeds were run (fine-tuning is chaotic, so seeds differ by more
than their items' noise) and which items each task happened to hold. Each draw therefore resamples
the runs with replacement and, inside each chosen run, its items (paired across steps, as in
:mod:`forgetbench.reporting.bootstrap`); with one seed it is the item bootstrap alone.

Per draw and run, for each general task with scores R_0..R_N on the resampled items:
FG = 1/N · Σ_{m=1..N} (R_0 − R_m) / R_0 × 100 and drop = (R_0 − R_N) × 100 (points); a category's
value is the mean over its tasks; the draw's value is the mean over the chosen runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forgetbench.reporting.bootstrap import correct_matrix

GROUP = ["model", "method"]  # what a point of the size figure averages over seeds


@dataclass
class SeedIntervals:
    """``curves``: per model, method, eval_task and step, the mean score and its interval (score_low/high).
    ``categories``: per model, method and category, fg and drop (points) with their intervals, the model's
    architecture and parameter count, and how many seeds it has."""

    curves: pd.DataFrame
    categories: pd.DataFrame


def seed_intervals(
    items: pd.DataFrame,
    facts: pd.DataFrame,
    categories: dict[str, str],
    draws: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> SeedIntervals:
    """The two-level bootstrap of every (model, method) in ``facts`` over its runs and their items.

    Args:
        items: per-item rows (run, eval_task, step, doc_id, correct) of the general tasks to use.
        facts: one row per run (index: run) with model, method, architecture, n_params
            (:func:`forgetbench.reporting.summary.run_facts`).
        categories: eval task -> category, for the general tasks to summarise.
        draws: bootstrap resamples.
        level: interval coverage.
    """
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2 * 100
    items = items[items["eval_task"].isin(categories)].dropna(subset=["correct"])
    curves, summaries = [], []
    for (model, method), group in facts.groupby(GROUP):
        per_task = _run_draws(items[items["run"].isin(group.index)], list(group.index), draws, rng)
        if not per_task:
            continue
        key = {"model": model, "method": method}
        chosen = rng.integers(0, len(group), size=(draws, len(group)))  # the same seeds for every task of a draw
        fg, drop = {}, {}
        for task, (steps, points, drawn) in per_task.items():
            pooled = _pooled(drawn, chosen)
            for k, step in enumerate(steps):
                low, high = np.percentile(pooled[:, k], [tail, 100 - tail])
                score = points[:, k].mean()
                curves.append(
                    {**key, "eval_task": task, "step": step, "score": score, "score_low": low, "score_high": high}
                )
            fg[task] = (_fg(points), _pooled(_fg(drawn), chosen))
            drop[task] = (_drop(points), _pooled(_drop(drawn), chosen))
        for category in sorted({categories[t] for t in per_task}):
            tasks = [t for t in per_task if categories[t] == category]
            row = {**key, "category": category, "seeds": len(group)}
            row.update(architecture=group["architecture"].iloc[0], n_params=group["n_params"].iloc[0])
            for name, values in (("fg", fg), ("drop", drop)):
                point = np.mean([values[t][0].mean() for t in tasks])
                spread = np.mean([values[t][1] for t in tasks], axis=0)
                low, high = _percentiles(spread, tail)
                row.update({name: point, f"{name}_low": low, f"{name}_high": high})
            summaries.append(row)
    return SeedIntervals(pd.DataFrame(curves), pd.DataFrame(summaries))


def _percentiles(values: np.ndarray, tail: float) -> tuple[float, float]:
    """The interval's ends, leaving out the draws where FG is undefined (an R_0 of 0 on the drawn items)."""
    finite = values[np.isfinite(values)]
    return tuple(np.percentile(finite, [tail, 100 - tail])) if len(finite) else (np.nan, np.nan)


def _run_draws(items: pd.DataFrame, runs: list[str], draws: int, rng: np.random.Generator) -> dict:
    """Per eval task: the steps every run has, each run's scores on them (runs × steps) and their item
    bootstrap (runs × draws × steps). A task some run lacks is left out."""
    out = {}
    for task, task_items in items.groupby("eval_task"):
        matrices = [correct_matrix(task_items[task_items["run"] == run]) for run in runs]
        if any(m.empty for m in matrices):
            continue
        steps = sorted(set.intersection(*(set(m.columns) for m in matrices)))
        values = [m[steps].to_numpy(dtype=float) for m in matrices]
        points = np.stack([v.mean(axis=0) for v in values])
        drawn = np.stack([v[rng.integers(0, len(v), size=(draws, len(v)))].mean(axis=1) for v in values])
        out[task] = ([int(s) for s in steps], points, drawn)
    return out


def _pooled(per_run: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Each draw's mean over its chosen runs: per_run is runs × draws (× steps), chosen draws × runs."""
    return per_run[chosen, np.arange(len(chosen))[:, None]].mean(axis=1)


def _fg(scores: np.ndarray) -> np.ndarray:
    """Luo et al.'s FG over the last axis (steps), in percent; NaN where R_0 is 0. The formula of
    :func:`forgetbench.metrics.luo_forgetting`, vectorised over runs and draws (a thousand per run)."""
    start = scores[..., :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return ((start - scores[..., 1:]) / start).mean(axis=-1) * 100


def _drop(scores: np.ndarray) -> np.ndarray:
    """The final drop R_0 − R_N over the last axis (steps), in points."""
    return (scores[..., 0] - scores[..., -1]) * 100
