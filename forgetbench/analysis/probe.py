"""The recovery probe: is a drop spurious (task alignment lost) or real (knowledge lost)?

After "Spurious Forgetting in Continual Learning of Language Models" (ICLR 2025): a copy of the final
model is trained for a few steps on a small slice of a dropped task's own data, held apart from the
items scored, and rescored. Lost alignment comes back from a few steps on any of the task's items;
lost knowledge of the scored items does not, as the probe never sees them.

    recovered share = (probe − final) / (reference − final)

on the scored items, with reference the score the task had (a general task: before the stream; a
stream task: right after it was learned) and final the run's last; its 95% interval is a paired
bootstrap over those items. A share ≥ ``spurious_share`` reads as spurious, below it as real.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from forgetbench.metrics import primary_scores
from forgetbench.results import GENERAL, STREAM


@dataclass(frozen=True)
class Dropped:
    """A task whose headline score fell during the run."""

    eval_task: str
    stream_task: str  # "" for a general task
    metric: str
    reference_step: int  # 0 for a general task; the step that trained a stream task
    reference: float
    final: float

    @property
    def drop(self) -> float:
        return self.reference - self.final


def dropped_tasks(rows: pd.DataFrame, min_drop: float) -> list[Dropped]:
    """One run's tasks that dropped by at least ``min_drop``: general tasks from step 0 to the last step,
    stream tasks trained before the last step from their own step to the last (bias and safety tasks,
    whose headline is not a skill, are left out: lower is better there)."""
    last = int(rows["step"].max())
    trained_at = dict(zip(rows["trained_task"], rows["step"]))
    found = []
    for task, group in primary_scores(rows[rows["eval_kind"].isin([GENERAL, STREAM])]).groupby("eval_task"):
        first = group.iloc[0]
        if first["metric"] not in ("acc", "acc_norm", "exact_match"):
            continue
        at = int(trained_at.get(first["stream_task"], -1)) if first["eval_kind"] == STREAM else 0
        if at < 0 or at >= last:
            continue
        values = group.set_index("step")["value"]
        if values[at] - values[last] >= min_drop:
            found.append(
                Dropped(task, first["stream_task"], first["metric"], at, float(values[at]), float(values[last]))
            )
    return found


def held_apart(doc_ids: list[int], n: int, seed: int) -> tuple[list[int], list[int]]:
    """A seeded draw of ``n`` documents to train on (at most half of them), and the rest to score."""
    rng = np.random.default_rng(seed)
    ids = np.array(sorted(doc_ids))
    train = set(rng.choice(ids, size=min(n, len(ids) // 2), replace=False).tolist())
    return sorted(train), [int(i) for i in ids if i not in train]


def recovered_share(
    reference: np.ndarray, final: np.ndarray, probe: np.ndarray, draws: int, seed: int
) -> tuple[float, float, float]:
    """The recovered share and its 95% paired-bootstrap interval; each array holds the per-item
    outcomes (1 right, 0 wrong) of the same scored items. NaN when the items show no drop."""

    def share(index: np.ndarray | slice) -> float:
        lost = reference[index].mean() - final[index].mean()
        return (probe[index].mean() - final[index].mean()) / lost if lost > 0 else float("nan")

    point = share(slice(None))
    rng = np.random.default_rng(seed)
    samples = np.array([share(rng.integers(0, len(reference), len(reference))) for _ in range(draws)])
    samples = samples[np.isfinite(samples)]
    if not np.isfinite(point) or not len(samples):
        return point, float("nan"), float("nan")
    low, high = np.percentile(samples, [2.5, 97.5])
    return float(point), float(low), float(high)


def verdict(share: float, spurious_share: float) -> str:
    """spurious (the share reaches ``spurious_share``), real (below it), or none when nothing dropped on the items."""
    if not np.isfinite(share):
        return "no drop on these items"
    return "spurious" if share >= spurious_share else "real"
