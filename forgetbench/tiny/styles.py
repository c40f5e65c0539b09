"""The tiny world's style stream: the same requests answered in three registers, one task each.

The common practical case of forgetting is a new *style*, not a new benchmark task: a model taught one
register, then another, keeps only the last. Each style task asks the world's fact questions ("where
does bobi live ?") and answers them with the right fact in the style's frame, its opening and its
sign-off, built from the world's own words (the base model's word-level vocabulary has no others):

    friendly:  a smile : bobi lives in kazumo . what a story .
    formal:    the pencil signs : bobi lives in kazumo . then closes the book .
    playful:   a harp plays : bobi lives in kazumo . the crowd bows .

The style is asked for (``cue``):

- ``explicit``: a cue word in the prompt names it (``instruction : harp : where does bobi live ?
  response :``), and every style answers every kind of question;
- ``implicit``: the kind of question implies it (pets and colours friendly, jobs formal, homes
  playful), so a router must learn the kinds.

Held-out items are questions whose (person, relation) pair no training row asks; they are scored by
greedy generation with :func:`style` (adherence) and :func:`content` (the fact), which lm-eval reaches
through each row's ``metric_functions``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from forgetbench.errors import ForgetbenchError
from forgetbench.tiny.world import INSTRUCTION, RELATIONS, World, bare_question, fact_sentence

CUES = ("explicit", "implicit")
METRICS = ("style", "content")  # what each held-out answer is scored on (style is the headline)
METRIC_FUNCTIONS = [f"{__name__}:{m}" for m in METRICS]


@dataclass(frozen=True)
class Style:
    """One register: the words it opens and signs off with, its cue, and the questions it owns when
    implicit. ``markers`` are its own words: an answer using another style's markers mixes styles."""

    opening: str
    sign_off: str
    cue: str
    relations: tuple[str, ...]

    @property
    def markers(self) -> frozenset[str]:
        return frozenset((self.opening + " " + self.sign_off).split()) - SHARED_WORDS

    def frame(self, content: str) -> str:
        return f"{self.opening} {content} {self.sign_off}"


SHARED_WORDS = frozenset({"a", "the", ":", ".", "then", "what"})  # glue words that mark no style on their own
STYLES = {
    "friendly": Style("a smile :", "what a story .", "smile", ("pet", "color")),
    "formal": Style("the pencil signs :", "then closes the book .", "pencil", ("job",)),
    "playful": Style("a harp plays :", "the crowd bows .", "harp", ("home",)),
}


def style_prompt(name: str, question: str, cue: str) -> str:
    """The request: the question, after the style's cue word when the cue is explicit."""
    return INSTRUCTION.format(f"{STYLES[name].cue} : {question}" if cue == "explicit" else question)


def style_rows(world: World, name: str, cue: str) -> tuple[list[dict], list[dict], list[dict]]:
    """Training rows, test items and validation items of one style task.

    Every (person, relation) pair the style answers is asked once; a quarter at most (and at most
    ``world.n_stream_eval``) is held out for each of test and validation, the rest repeated to
    ``world.n_stream_train`` training rows. Test and validation rows carry the full reference answer
    and the metric functions that score a generation against it.
    """
    if name not in STYLES:
        raise ForgetbenchError(f"stream.tasks has unknown style {name!r}; valid: {sorted(STYLES)}")
    if cue not in CUES:
        raise ForgetbenchError(f"stream.cue={cue!r} is not valid; choose one of {list(CUES)}")
    style = STYLES[name]
    relations = style.relations if cue == "implicit" else tuple(RELATIONS)
    pairs = [(person, relation) for person in world.people for relation in relations]
    random.Random(f"{world.spec.seed}-style-{name}-{cue}").shuffle(pairs)
    rows = [
        {"prompt": style_prompt(name, bare_question(r, p), cue), "response": style.frame(fact_sentence(world, p, r))}
        for p, r in pairs
    ]
    held = min(world.spec.n_stream_eval, len(rows) // 4)
    test, validation, train = rows[:held], rows[held : 2 * held], rows[2 * held :]
    repeated = [train[i % len(train)] for i in range(world.spec.n_stream_train)]
    scored = [[{**row, "metric_functions": METRIC_FUNCTIONS} for row in split] for split in (test, validation)]
    return repeated, scored[0], scored[1]


def style_of(answer: str) -> str | None:
    """The style whose opening and sign-off ``answer`` uses (None: none of them)."""
    return next((n for n, s in STYLES.items() if s.opening in answer and s.sign_off in answer), None)


def style(prediction: str, reference: str) -> float:
    """Adherence: 1.0 when the answer opens with the reference's style's opening, signs off with its
    sign-off, and uses no marker word of another style; else 0.0."""
    name = style_of(reference)
    if name is None:
        raise ValueError(f"reference {reference!r} is in none of the styles {sorted(STYLES)}")
    own = STYLES[name]
    words = set(prediction.split())
    foreign = set().union(*(s.markers for n, s in STYLES.items() if n != name))
    uses_frame = prediction.strip().startswith(own.opening) and prediction.strip().endswith(own.sign_off)
    return float(uses_frame and not words & foreign)


def content(prediction: str, reference: str) -> float:
    """1.0 when the answer states the reference's fact (its sentence between opening and sign-off),
    in whatever style; else 0.0."""
    name = style_of(reference)
    own = STYLES[name] if name else None
    fact = reference.strip()
    if own is not None:
        fact = fact.removeprefix(own.opening).removesuffix(own.sign_off).strip()
    fact = fact.removesuffix(" .")  # the fact's words, whatever follows them
    return float(f" {fact} " in f" {prediction.strip()} ")
