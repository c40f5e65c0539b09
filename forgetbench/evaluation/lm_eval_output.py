"""What one lm-eval evaluation returns, read into forgetbench's terms: metric rows and per-item rows.

``simple_evaluate`` returns nested dicts (``results``, ``n-samples``, ``group_subtasks``,
``samples``); this module turns them into :class:`TaskScore` rows and an items table, the two
things the results table records. It reads plain dicts and imports nothing from lm-eval.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from forgetbench.metrics import LOWER_IS_BETTER, PRIMARY_METRICS


@dataclass
class TaskScore:
    """One metric of one task (or group) after one evaluation.

    ``stream_task`` names the stream task whose held-out items were scored ("" for the suite's tasks).
    """

    eval_task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    seconds: float
    stream_task: str = ""


@dataclass
class Evaluation:
    scores: list[TaskScore]
    items: pd.DataFrame  # one row per scored item: eval_task, doc_id, target, pred, correct, logliks


def task_scores(out: dict, seconds: float, stream_task: str) -> list[TaskScore]:
    """Metric rows from lm-eval's results (leaf tasks and groups alike)."""
    rows = []
    counts = {task: v["effective"] for task, v in out.get("n-samples", {}).items()}
    children = out.get("group_subtasks", {})

    def examples(task: str) -> int:  # a group (e.g. mmlu, mmlu_stem) counts its leaf tasks' items
        return counts[task] if task in counts else sum(examples(c) for c in children.get(task, []))

    for task, metrics in out["results"].items():
        n = examples(task)
        for key, value in metrics.items():
            metric, _, _filter = key.partition(",")
            if metric in ("alias", "sample_len") or metric.endswith("_stderr") or not isinstance(value, int | float):
                continue
            stderr = metrics.get(f"{metric}_stderr,{_filter}")
            rows.append(TaskScore(task, metric, float(value), _number(stderr), int(n), seconds, stream_task))
    return rows


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def item_rows(out: dict) -> pd.DataFrame:
    """Per-item outcomes: which choice won, whether it was right, the log-likelihoods, the generated text.

    Generated answers have no log-likelihoods: their ``pred`` is −1 and ``correct`` is the task's
    headline metric (exact match; a style task's adherence; a safety task's outcome in the direction
    where higher is better, refusal: refused, over_refusal: answered), so that a bootstrapped drop is
    a loss for all."""
    rows = []
    for task, samples in out.get("samples", {}).items():
        for s in samples:
            row = {"eval_task": task, "doc_id": int(s["doc_id"]), "target": str(s["target"])}
            if any(isinstance(r, str) for r in s["filtered_resps"]):  # generated text
                text = next(r for r in s["filtered_resps"] if isinstance(r, str))
                rows.append(row | {"pred": -1, "correct": _generated_outcome(s), "logliks": [], "response": text})
                continue
            # (log-likelihood, is_greedy) per choice; a rolling (perplexity) request gives its sum alone
            logliks = [float(r[0] if isinstance(r, list | tuple) else r) for r in s["filtered_resps"]]
            pred = int(max(range(len(logliks)), key=logliks.__getitem__)) if len(logliks) > 1 else -1
            rows.append(
                row | {"pred": pred, "correct": float(s.get("acc", float("nan"))), "logliks": logliks, "response": ""}
            )
    return pd.DataFrame(rows)


def _generated_outcome(sample: dict) -> float:
    """The item's headline metric (the first of PRIMARY_METRICS it has), turned so higher is better."""
    metric = next((m for m in PRIMARY_METRICS if m in sample), None)
    if metric is None:
        return float("nan")
    return 1.0 - float(sample[metric]) if metric in LOWER_IS_BETTER else float(sample[metric])
