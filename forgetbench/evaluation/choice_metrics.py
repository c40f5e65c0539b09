"""Scores of multiple-choice items whose number of choices varies by row (the cards in a draft pack).

Plugged into lm-eval as the ``process_results`` of ``tasks/_multiple_choice_chance.yaml``: the same
accuracy as lm-eval's own multiple choice (the most likely choice is the answer) and its
``acc_norm`` (the most likely per character of the choice, as lm-eval computes it), plus ``chance``,
the accuracy of a uniform guess on that item (1 / its number of choices), so a task's mean accuracy
can be read against its own chance level.
"""

from __future__ import annotations


def score_choices(doc: dict, results: list[tuple[float, bool]]) -> dict[str, float]:
    """acc = 1 if argmax_i ll_i is ``doc["answer"]``; acc_norm = 1 if argmax_i ll_i / len(choice_i)
    is (len in characters, lm-eval's ``acc_norm``); chance = 1 / number of choices."""
    logliks = [loglik for loglik, _ in results]
    best = max(range(len(logliks)), key=logliks.__getitem__)
    per_char = [loglik / float(len(choice)) for loglik, choice in zip(logliks, doc["choices"])]
    best_norm = max(range(len(per_char)), key=per_char.__getitem__)
    return {
        "acc": float(best == doc["answer"]),
        "acc_norm": float(best_norm == doc["answer"]),
        "chance": 1.0 / len(logliks),
    }
