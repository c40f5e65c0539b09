"""A stream of instruction tasks built from datasets on the Hugging Face Hub (or local copies).

Each task names a dataset (``path``: a Hub ID or a local folder of JSON/JSONL
or parquet files, whatever ``datasets.load_dataset`` accepts), its splits and
two templates that turn a row into a prompt and a response. Held-out rows are
written to a JSONL file and scored by lm-eval on the log-likelihood of the
reference response.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset, load_dataset

from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.task_configs import local_task_config
from forgetbench.hashing import stable_hash
from forgetbench.jsonl import write_jsonl
from forgetbench.streams.base import StreamTask, apply_order, stream_eval_name

log = logging.getLogger(__name__)


@dataclass
class HubTaskSpec:
    """One task: where its rows come from and how a row becomes an example.

    Attributes:
        name: the task's name.
        path: Hub dataset ID or local folder.
        prompt: a ``str.format`` template over the row's columns, e.g. "Simplify: {source}".
        response: the template of the target, e.g. "{target}".
        subset: the dataset's config name, if it has several.
        train_split, test_split: split names.
        n_train: training rows (first n after a seeded shuffle; null: all).
        n_test: held-out rows scored after every step.
    """

    name: str
    path: str
    prompt: str
    response: str
    subset: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    n_train: int | None = None
    n_test: int = 200


@dataclass
class HubStream:
    """Attributes:
    name: the stream's name.
    tasks: the tasks (HubTaskSpec fields), in training order.
    cache_dir: where held-out rows are written for lm-eval.
    order: another order of the same tasks (empty: as listed).
    seed: seed of the row sampling.
    """

    name: str
    tasks: list[dict]
    cache_dir: str
    order: list[str] = field(default_factory=list)
    seed: int = 0

    def load(self) -> list[StreamTask]:
        loaded = [self._load_task(HubTaskSpec(**spec)) for spec in self.tasks]
        return apply_order(loaded, self.order)

    def _load_task(self, spec: HubTaskSpec) -> StreamTask:
        train_rows = _split(spec, spec.train_split)
        test_rows = train_rows if spec.test_split == spec.train_split else _split(spec, spec.test_split)
        # one split for both: held-out rows are the head of the shuffle, training rows the rest
        skip = spec.n_test if test_rows is train_rows else 0
        test = _pairs(test_rows, spec, 0, spec.n_test, self.seed)
        train = _pairs(train_rows, spec, skip, spec.n_train, self.seed)
        folder = Path(self.cache_dir) / "streams" / f"{spec.name}-{stable_hash([spec.__dict__, self.seed])}"
        test_file = folder / "test.jsonl"
        write_jsonl(test_file, test.to_list())
        return StreamTask(spec.name, train, local_task_config(stream_eval_name(spec.name), test_file, "loglikelihood"))


def _split(spec: HubTaskSpec, split: str) -> Dataset:
    try:
        return load_dataset(spec.path, spec.subset, split=split)
    except Exception as err:  # offline, missing split, bad ID: datasets raises many types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ForgetbenchError(
            f"stream task {spec.name!r}: cannot load {spec.path!r} split {split!r}: {first}"
        ) from err


def _pairs(rows: Dataset, spec: HubTaskSpec, skip: int, limit: int | None, seed: int) -> Dataset:
    """Rows ``skip`` to ``skip + limit`` of a seeded shuffle, as prompt/response pairs."""
    if len(rows) <= skip:
        raise ForgetbenchError(f"stream task {spec.name!r}: {spec.path!r} has {len(rows)} rows, too few")
    indices = list(range(len(rows)))
    random.Random(seed).shuffle(indices)
    rows = rows.select(indices[skip : skip + limit if limit else None])
    try:
        return rows.map(
            lambda r: {"prompt": spec.prompt.format(**r), "response": spec.response.format(**r)},
            remove_columns=rows.column_names,
        )
    except KeyError as err:
        raise ForgetbenchError(
            f"stream task {spec.name!r}: template names column {err} which {spec.path!r} lacks; "
            f"columns: {rows.column_names}"
        ) from err
