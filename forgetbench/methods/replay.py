"""Replay: mix earlier tasks' examples and general data into each task.

After each task, ``buffer_size`` of its examples (a seeded sample) join the
buffer. Each task trains on its own examples plus replayed ones, so that
replayed rows make up ``ratio`` of the training rows:
n_replay = round(ratio / (1 − ratio) · n_task), drawn from the buffer and the
general data (half each when both exist; the first task replays general data
only). The reference study's variant mixes in general instruction data (10k
Alpaca examples): ``general_data`` is a JSON/JSONL file of prompt/response rows,
or ``stream`` (the default) for the stream's own general text where it has some
(the tiny world: held-out text in the style of its pretraining corpus), or null.
Extra memory: the buffer's rows (kept in the checkpoint). Extra time: the
replayed rows are trained on too.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import ClassVar

from datasets import Dataset

from forgetbench.methods.base import Method, TaskContext
from forgetbench.stream_records import PAIR_COLUMNS, SYSTEM_COLUMN
from forgetbench.streams.base import read_rows, require_columns, training_rows
from forgetbench.validation import NonNegative, Probability

log = logging.getLogger(__name__)


STREAM_GENERAL = "stream"  # general_data: the stream's own general text (TaskContext.general_examples)


@dataclass
class Replay(Method):
    """Attributes:
    ratio: fraction of each task's training rows that are replayed (0..1).
    buffer_size: examples kept from each finished task (0: no stream replay).
    general_data: general rows mixed in too: a JSON/JSONL file of prompt/response rows,
        ``stream`` (the stream's own general text, if it has any) or null (none).
    """

    name: str = "replay"
    fsdp_ready: ClassVar[bool] = True
    ratio: Probability = 0.2
    buffer_size: NonNegative = 200
    general_data: str | None = STREAM_GENERAL
    _buffer: list[dict] = field(default_factory=list, init=False, repr=False)
    _general: Dataset | None = field(default=None, init=False, repr=False)
    _said_none: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.general_data and self.general_data != STREAM_GENERAL:
            self._general = read_rows(self.general_data, "replay general_data", "general")
            require_columns(self._general, PAIR_COLUMNS, "replay general_data", self.general_data)

    def training_examples(self, ctx: TaskContext) -> Dataset:
        wanted = round(self.ratio / (1 - self.ratio) * len(ctx.examples))
        pools = [rows for rows in (self._buffer, self._general_rows(ctx)) if rows]
        if wanted == 0 or not pools:
            return ctx.examples
        rng = random.Random(ctx.seed)
        replayed = []
        for i, pool in enumerate(pools):
            share = wanted // len(pools) + (1 if i < wanted % len(pools) else 0)
            replayed += [pool[rng.randrange(len(pool))] for _ in range(share)]
        mixed = Dataset.from_list(training_rows(ctx.examples) + replayed)
        return mixed.shuffle(seed=ctx.seed)

    def _general_rows(self, ctx: TaskContext) -> list[dict]:
        general = ctx.general_examples if self.general_data == STREAM_GENERAL else self._general
        if general is None and self.general_data == STREAM_GENERAL and not self._said_none:
            log.info("replay: the stream has no general text of its own; replaying earlier tasks only")
            self._said_none = True
        return [] if general is None else training_rows(general)

    def after_task(self, ctx: TaskContext) -> None:
        rng = random.Random(ctx.seed)
        keep = rng.sample(range(len(ctx.examples)), min(self.buffer_size, len(ctx.examples)))
        rows = training_rows(ctx.examples.select(keep))
        self._buffer += rows

    def state_dict(self) -> dict:
        return {"buffer": list(self._buffer)}

    def load_state_dict(self, state: dict) -> None:
        self._buffer = [{SYSTEM_COLUMN: None, **row} for row in state["buffer"]]  # older runs kept no system prompt
