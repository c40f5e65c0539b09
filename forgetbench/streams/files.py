"""A stream of tasks from a user's own table files (CSV, JSON/JSONL, parquet) through templates.

Each task is a :class:`forgetbench.data.file_task.FileTask`: files, a prompt and a response
template, filters, a held-out split and how held-out rows are scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import PreTrainedTokenizerBase

from forgetbench.data.file_task import FileTask, file_tasks
from forgetbench.stream_records import StreamTask
from forgetbench.streams.base import apply_order, with_system_prompt
from forgetbench.validation import Positive, check_fields


@dataclass
class FilesStream:
    """Tasks from files and templates.

    Attributes:
        name: the stream's name.
        tasks: one mapping per task, with :class:`FileTask`'s fields (name, files, prompt, response, ...).
        order: task names in training order (empty: as listed).
        max_train_examples: cap on training rows per task, after the task's own filters (null: all).
        system_prompt: a system turn before every training example, rendered by a chat template
            (``model.chat_template``; plain text ignores it); a task's own ``system_prompt`` wins; null: none.
        max_length: a row longer than this many tokens (prompt and response, templated) stops the run
            at set-up, naming its file and row: training would cut it (``train.max_length``; a task's
            ``max_tokens`` drops such rows instead). Null: not checked.
    """

    name: str
    tasks: list[dict]
    order: list[str] = field(default_factory=list)
    max_train_examples: Positive | None = None
    system_prompt: str | None = None
    max_length: Positive | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        self.file_tasks: list[FileTask] = file_tasks(self.tasks, "stream.tasks")

    def load(self, tokenizer: PreTrainedTokenizerBase | None = None) -> list[StreamTask]:
        """Every task read, rendered, filtered and split (``tokenizer`` counts tokens for ``max_tokens``)."""
        return apply_order([self._stream_task(task, tokenizer) for task in self.file_tasks], self.order)

    def _stream_task(self, task: FileTask, tokenizer) -> StreamTask:
        prepared = task.prepare(tokenizer, max_length=self.max_length)
        train = prepared.train
        if self.max_train_examples is not None and len(train) > self.max_train_examples:
            prepared.dropped["max_train_examples"] = len(train) - self.max_train_examples
            train = train.select(range(self.max_train_examples))
        stream_task = StreamTask(
            task.name, train, None, task.held_out_scoring(), test_rows=prepared.held_out, dropped=prepared.dropped
        )
        return with_system_prompt([stream_task], task.system_prompt or self.system_prompt)[0]
