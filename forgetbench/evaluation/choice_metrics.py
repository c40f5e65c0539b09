"""Scores of multiple-choice items whose number of choices varies by row (the cards in a draft pack).

Plugged into lm-eval as the ``process_results`` of ``tasks/_multiple_choice_chance.yaml``: the same
accuracy as lm-eval's own multiple choice (the most likely choice is the answer), plus ``chance``,
the accuracy of a uniform guess on that item (1 / its number of choices), so a task's mean accuracy
can be read against its own chance level.
"""

from __future__ import annotations


def score_choices(doc: dict, results: list[tuple[float, bool]]) -> dict[str, float]:
    """acc = 1 if the highest log-likelihood choice is ``doc["answer"]``; chance = 1 / number of choices."""
    logliks = [loglik for loglik, _ in results]
    best = max(range(len(logliks)), key=logliks.__getitem__)
    return {"acc": float(best == doc["answer"]), "chance": 1.0 / len(logliks)}
