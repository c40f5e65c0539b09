"""A stream of tasks kept in local JSON/JSONL files (a user's own data)."""

from __future__ import annotations

from dataclasses import dataclass, field

from forgetbench.stream_records import StreamTask
from forgetbench.streams.base import apply_order, local_stream_task, with_system_prompt
from forgetbench.validation import Positive, check_fields


@dataclass
class LocalStream:
    """Tasks from files.

    Attributes:
        name: the stream's name.
        tasks: list of {name, train, test}: a task name and its two files.
        order: task names in training order (empty: as listed).
        max_train_examples: cap on training rows per task (null: all).
        system_prompt: a system turn before every training example, rendered by a chat template
            (``model.chat_template``; plain text ignores it); null: none.
    """

    name: str
    tasks: list[dict]
    order: list[str] = field(default_factory=list)
    max_train_examples: Positive | None = None
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)

    def load(self, tokenizer=None) -> list[StreamTask]:  # no token filter: the tokenizer goes unused
        loaded = [local_stream_task(t["name"], t["train"], t["test"], self.max_train_examples) for t in self.tasks]
        return with_system_prompt(apply_order(loaded, self.order), self.system_prompt)
