"""The tiny world's style stream: one task per register (:mod:`forgetbench.tiny.styles`), scored by generation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from datasets import Dataset

from forgetbench.jsonl import read_jsonl
from forgetbench.stream_records import Scoring, StreamTask
from forgetbench.streams.base import apply_order, with_system_prompt
from forgetbench.tiny.files import materialize_world
from forgetbench.tiny.styles import METRICS, STYLES, style_rows
from forgetbench.tiny.world import WorldSpec, build_world
from forgetbench.validation import Positive, check_fields


@dataclass
class TinyWorldStyleStream:
    """Attributes:
    name: the stream's name.
    world: the world the requests are about.
    cache_dir: where generated worlds are kept (the general text replay mixes in).
    tasks: which styles, in training order.
    order: an alternative order (empty: ``tasks`` as listed).
    cue: how a request asks for its style: ``explicit`` (a cue word) or ``implicit`` (the kind of
        question implies it).
    max_train_examples: cap on training rows per task (null: all).
    held_out: which held-out items are scored: test or validation.
    max_new_tokens: generation budget per held-out answer (an answer is about 14 words).
    system_prompt: a system turn before every training example under a chat template; null: none.
    keywords: rules a keyword router may use (``method.keyword.rules`` defaults to them):
        ``{pattern, task}`` pairs naming each task's own words; the stream itself ignores them.
    """

    name: str
    world: WorldSpec
    cache_dir: str
    tasks: list[str] = field(default_factory=lambda: list(STYLES))
    order: list[str] = field(default_factory=list)
    cue: Literal["explicit", "implicit"] = "explicit"
    max_train_examples: Positive | None = None
    held_out: Literal["test", "validation"] = "test"
    max_new_tokens: Positive = 24
    system_prompt: str | None = None
    keywords: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_fields(self)

    def load(self, tokenizer=None) -> list[StreamTask]:  # no token filter: the tokenizer goes unused
        world = build_world(self.world)
        scoring = Scoring("generation", metrics=METRICS, max_new_tokens=self.max_new_tokens)
        loaded = []
        for name in self.tasks:
            train, test, validation = style_rows(world, name, self.cue)
            train = train[: self.max_train_examples] if self.max_train_examples else train
            held_out = Dataset.from_list(test if self.held_out == "test" else validation)
            loaded.append(StreamTask(name, Dataset.from_list(train), None, scoring, test_rows=held_out))
        return with_system_prompt(apply_order(loaded, self.order), self.system_prompt)

    def general_examples(self) -> Dataset:
        """What replay mixes in: held-out text in the style of the base model's pretraining corpus."""
        return Dataset.from_list(read_jsonl(materialize_world(self.world, self.cache_dir).general_text))
