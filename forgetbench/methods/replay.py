"""Replay: mix earlier tasks' examples (and optionally general instruction data) into each task.

After each task, ``buffer_size`` of its examples (a seeded sample) join the
buffer. Each later task trains on its own examples plus replayed ones, so that
replayed rows make up ``ratio`` of the training rows:
n_replay = round(ratio / (1 − ratio) · n_task), drawn from the buffer and the
general data (half each when both exist). The reference study's variant mixes
in general instruction data (10k Alpaca examples): give it as ``general_data``,
a JSON/JSONL file of prompt/response rows. Extra memory: the buffer's rows
(kept in the checkpoint). Extra time: the replayed rows are trained on too.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from datasets import Dataset, concatenate_datasets

from forgetbench.methods.base import Method, TaskContext
from forgetbench.streams.base import PAIR_COLUMNS, read_rows, require_columns
from forgetbench.validation import NonNegative, Probability


@dataclass
class Replay(Method):
    """Attributes:
    ratio: fraction of each task's training rows that are replayed (0..1).
    buffer_size: examples kept from each finished task (0: no stream replay).
    general_data: a JSON/JSONL file of prompt/response rows mixed in too (null: none).
    """

    name: str = "replay"
    fsdp_ready: ClassVar[bool] = True
    ratio: Probability = 0.2
    buffer_size: NonNegative = 200
    general_data: str | None = None
    _buffer: list[dict] = field(default_factory=list, init=False, repr=False)
    _general: Dataset | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.general_data:
            self._general = read_rows(self.general_data, "replay general_data", "general")
            require_columns(self._general, PAIR_COLUMNS, "replay general_data", self.general_data)

    def training_examples(self, ctx: TaskContext) -> Dataset:
        wanted = round(self.ratio / (1 - self.ratio) * len(ctx.examples))
        pools = [rows for rows in (self._buffer, self._general_rows()) if rows]
        if wanted == 0 or not pools:
            return ctx.examples
        rng = random.Random(ctx.seed)
        replayed = []
        for i, pool in enumerate(pools):
            share = wanted // len(pools) + (1 if i < wanted % len(pools) else 0)
            replayed += [pool[rng.randrange(len(pool))] for _ in range(share)]
        mixed = concatenate_datasets([ctx.examples.select_columns(list(PAIR_COLUMNS)), Dataset.from_list(replayed)])
        return mixed.shuffle(seed=ctx.seed)

    def _general_rows(self) -> list[dict]:
        return [] if self._general is None else self._general.select_columns(list(PAIR_COLUMNS)).to_list()

    def after_task(self, ctx: TaskContext) -> None:
        rng = random.Random(ctx.seed)
        keep = rng.sample(range(len(ctx.examples)), min(self.buffer_size, len(ctx.examples)))
        rows = ctx.examples.select(keep).select_columns(list(PAIR_COLUMNS)).to_list()
        self._buffer += rows

    def state_dict(self) -> dict:
        return {"buffer": list(self._buffer)}

    def load_state_dict(self, state: dict) -> None:
        self._buffer = list(state["buffer"])
