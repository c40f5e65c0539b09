"""Task-specific pieces of the Luo et al. 2023 stream that templates cannot express."""

from __future__ import annotations

import random

CONSTRAINTS = {"start": "begins with", "contain": "contains", "end": "ends with"}


def headline_constraint(headline: str, rng: random.Random) -> dict[str, str]:
    """The constrained-headline task (Scialom et al. 2022): a word the headline must start with,
    contain or end with, taken from the reference headline itself.

    Returns the template field ``constraint``, e.g. "begins with the word 'police'", and
    ``constraint_kind``/``constraint_word``, with which generated headlines are checked.
    """
    words = headline.split() or [""]
    kind = rng.choice(list(CONSTRAINTS))
    if kind == "start":
        word = words[0]
    elif kind == "end":
        word = words[-1]
    else:
        word = rng.choice(words[1:-1] or words)
    return {"constraint": f"{CONSTRAINTS[kind]} the word '{word}'", "constraint_kind": kind, "constraint_word": word}
