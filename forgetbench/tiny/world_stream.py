"""The tiny world's generated instruction tasks, loaded like any local stream."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from datasets import Dataset

from forgetbench.errors import ForgetbenchError
from forgetbench.jsonl import read_jsonl
from forgetbench.stream_records import StreamTask
from forgetbench.streams.base import apply_order, local_stream_task, with_system_prompt
from forgetbench.tiny.files import materialize_world
from forgetbench.tiny.post_training import stage_rows
from forgetbench.tiny.stream_tasks import STREAM_TASKS
from forgetbench.tiny.world import WorldSpec, build_world
from forgetbench.validation import Positive, check_fields


@dataclass
class TinyWorldStream:
    """Attributes:
    name: the stream's name.
    world: the world the tasks are generated from.
    cache_dir: where generated worlds are kept.
    tasks: which generated tasks, in training order.
    order: an alternative order (empty: ``tasks`` as listed).
    max_train_examples: cap on training rows per task (null: all).
    held_out: which held-out items are scored: test (results) or validation (choosing
        hyper-parameters, experiments/tune_methods.py).
    system_prompt: a system turn before every training example, rendered by a chat template
        (``model.chat_template``; plain text ignores it); null: none.
    general_text: the general data replay mixes in (``method.general_data=stream``): ``corpus``
        (held-out text in the style of the pretraining corpus) or ``safety`` (the safety stage's rows,
        :func:`~forgetbench.tiny.post_training.stage_rows`: harmful requests refused, the instruct
        stage's answered: replaying safety data, for a model through that stage).
    keywords: rules a keyword router may use (``method.keyword.rules`` defaults to them):
        ``{pattern, task}`` pairs naming each task's own words; the stream itself ignores them.
    """

    name: str
    world: WorldSpec
    cache_dir: str
    tasks: list[str] = field(default_factory=lambda: list(STREAM_TASKS))
    order: list[str] = field(default_factory=list)
    max_train_examples: Positive | None = None
    held_out: Literal["test", "validation"] = "test"
    system_prompt: str | None = None
    general_text: Literal["corpus", "safety"] = "corpus"
    keywords: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_fields(self)

    def load(self, tokenizer=None) -> list[StreamTask]:  # no token filter: the tokenizer goes unused
        unknown = [t for t in self.tasks if t not in STREAM_TASKS]
        if unknown:
            raise ForgetbenchError(
                f"stream.tasks has unknown tiny-world tasks {unknown}; valid: {sorted(STREAM_TASKS)}"
            )
        files = materialize_world(self.world, self.cache_dir)
        loaded = [
            local_stream_task(
                t, files.stream_file(t, "train"), files.stream_file(t, self.held_out), self.max_train_examples
            )
            for t in self.tasks
        ]
        return with_system_prompt(apply_order(loaded, self.order), self.system_prompt)

    def general_examples(self) -> Dataset:
        """What replay mixes in: held-out text in the style of the base model's pretraining corpus, or
        the safety stage's rows (``general_text``)."""
        if self.general_text == "safety":
            return Dataset.from_list(stage_rows(build_world(self.world), "safety"))
        return Dataset.from_list(read_jsonl(materialize_world(self.world, self.cache_dir).general_text))
