"""95% intervals by bootstrap over the per-item outcomes, paired across steps.

The same items are scored at every step, so a drop between steps is
resampled as a whole: one draw of item indices gives the score at step 0 and at
step m on the same items. A drop whose interval contains zero is not significant.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def correct_matrix(items: pd.DataFrame) -> pd.DataFrame:
    """doc_id × step matrix of 0/1 correctness for one (run, eval task); items scored at every step only."""
    return items.pivot_table(index="doc_id", columns="step", values="correct", aggfunc="first").dropna()


def bootstrap_intervals(items: pd.DataFrame, draws: int = 1000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (run, eval_task, step): score, its interval, the drop from step 0 and the drop's interval.

    Args:
        items: per-item rows with run, eval_task, step, doc_id, correct.
        draws: bootstrap resamples.
        level: interval coverage.

    Returns:
        Columns run, eval_task, step, score, score_low, score_high, drop, drop_low,
        drop_high, significant (the drop's interval excludes zero).
    """
    rng = np.random.default_rng(seed)
    tail = (1 - level) / 2 * 100
    records = []
    for (run, task), group in items.dropna(subset=["correct"]).groupby(["run", "eval_task"]):
        matrix = correct_matrix(group)
        if matrix.empty:
            continue
        values = matrix.to_numpy(dtype=float)
        # draws × steps; each draw picks the same items for every step (chunked: MMLU has 14k items)
        means = np.concatenate(
            [
                values[rng.integers(0, len(values), size=(min(100, draws - start), len(values)))].mean(axis=1)
                for start in range(0, draws, 100)
            ]
        )
        drops = means[:, :1] - means
        for k, step in enumerate(matrix.columns):
            low, high = np.percentile(means[:, k], [tail, 100 - tail])
            drop_low, drop_high = np.percentile(drops[:, k], [tail, 100 - tail])
            drop = values[:, 0].mean() - values[:, k].mean()
            records.append(
                {
                    "run": run,
                    "eval_task": task,
                    "step": int(step),
                    "score": values[:, k].mean(),
                    "score_low": low,
                    "score_high": high,
                    "drop": drop,
                    "drop_low": drop_low,
                    "drop_high": drop_high,
                    "significant": bool(step != matrix.columns[0] and (drop_low > 0 or drop_high < 0)),
                }
            )
    return pd.DataFrame(records)
