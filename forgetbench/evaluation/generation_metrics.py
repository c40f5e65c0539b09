"""Scores of generated responses (stream tasks evaluated by generation), per item.

Plugged into lm-eval as a task's ``process_results``: ROUGE-L F1 (via the
``rouge_score`` package that lm-eval itself depends on), exact match, and for
the constrained-headline task whether the generated headline meets its constraint, and any
function a user's file task names (``module:function``, listed in each row's ``metric_functions``
because lm-eval hands ``process_results`` only the row and the generation).
"""

from __future__ import annotations

from rouge_score import rouge_scorer

from forgetbench.data.file_task import metric_function

_ROUGE = rouge_scorer.RougeScorer(["rougeL"])


def constraint_met(text: str, kind: str, word: str) -> bool:
    """Whether ``text`` starts with, contains or ends with ``word`` (kind: start, contain, end)."""
    words = text.lower().split()
    word = word.lower()
    if not words:
        return False
    return {"start": words[0] == word, "end": words[-1] == word, "contain": word in words}[kind]


def score_generation(doc: dict, results: list[str]) -> dict[str, float]:
    """rouge_l and exact_match of the generation against ``doc["response"]``; constraint_met when
    the doc carries ``constraint_kind`` and ``constraint_word``; each of ``doc["metric_functions"]``
    (``module:function``, called as ``function(prediction, reference)``) under its function's name."""
    prediction = results[0].strip()
    reference = doc["response"].strip()
    scores = {
        "rouge_l": _ROUGE.score(reference, prediction)["rougeL"].fmeasure,
        "exact_match": float(prediction == reference),
    }
    if doc.get("constraint_kind"):
        scores["constraint_met"] = float(constraint_met(prediction, doc["constraint_kind"], doc["constraint_word"]))
    for path in doc.get("metric_functions") or []:
        scores[path.rpartition(":")[2]] = float(metric_function(path)(prediction, reference))
    return scores
