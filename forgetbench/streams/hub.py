"""A stream of instruction tasks built from datasets on the Hugging Face Hub (or local copies).

Each task names a dataset (``path``: a Hub ID or a local folder of JSON/JSONL
or parquet files, whatever ``datasets.load_dataset`` accepts), its splits and
templates that turn a row into a prompt and a response; several prompt
templates (paraphrases) may be given, one drawn per example from a fixed seed.
``processed_dir`` instead reads the processed files the original study
published (``<prompt_name>.train.json`` / ``.test.json`` holding parallel
``src`` and ``tgt`` lists), so anyone holding them trains on identical data.
Held-out rows are written to a JSONL file, to be scored (by ``forgetbench.evaluation``)
by generation (ROUGE-L, exact match, constraint satisfaction) or by the
log-likelihood of the reference response.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from datasets import Dataset, load_dataset
from hydra.utils import get_method

from forgetbench.errors import ForgetbenchError
from forgetbench.hashing import stable_hash
from forgetbench.hub_mirror import local_copy
from forgetbench.jsonl import write_jsonl
from forgetbench.stream_records import PAIR_COLUMNS, Scoring, StreamTask
from forgetbench.streams.base import apply_order, with_system_prompt
from forgetbench.validation import Positive, check_fields


@dataclass
class HubTaskSpec:
    """One task: where its rows come from and how a row becomes an example.

    Attributes:
        name: the task's name.
        path: Hub dataset ID or local folder.
        prompt: a ``str.format`` template over the row's columns (and derived ones),
            or a list of paraphrases, one drawn per example.
        response: the template of the target, e.g. "{target}".
        subset: the dataset's config name, if it has several.
        revision: the Hub revision to read, e.g. "refs/convert/parquet" for a repo whose data
            comes from a loading script, which ``datasets`` no longer runs.
        train_split, test_split: split names (the same name: held-out rows are set aside).
        n_train: training rows (a seeded sample; null: all).
        n_test: held-out rows scored after every step.
        derive: dotted path of ``f(response, rng) -> dict`` adding template fields
            computed from the target (e.g. the headline's constraint word).
        processed_dir: read ``<prompt_name>.{train,test}.json`` (src/tgt lists) from here instead.
        prompt_name: file stem in ``processed_dir`` (default: the task's name).
    """

    name: str
    path: str
    prompt: str | list[str]
    response: str
    subset: str | None = None
    revision: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    n_train: Positive | None = None
    n_test: Positive = 200
    derive: str | None = None
    processed_dir: str | None = None
    prompt_name: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def templates(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


@dataclass
class HubStream:
    """Attributes:
    name: the stream's name.
    tasks: the tasks (HubTaskSpec fields), in training order.
    cache_dir: where held-out rows are written for lm-eval.
    order: another order of the same tasks (empty: as listed).
    seed: seed of the row sampling and of the template drawn per example.
    eval_kind: "generation" (greedy generation scored by ROUGE-L, exact match and, for the
        headline task, constraint satisfaction) or "loglikelihood" (of the reference response).
    max_new_tokens: generation budget per held-out item.
    max_train_examples: cap on training rows per task after sampling (null: ``n_train``); for smoke runs.
    mirror: a folder of local Hub copies (see :mod:`forgetbench.hub_mirror`).
    system_prompt: a system turn before every training example, rendered by a chat template
        (``model.chat_template``; plain text ignores it); null: none.
    """

    name: str
    tasks: list[dict]
    cache_dir: str
    order: list[str] = field(default_factory=list)
    seed: int = 0
    eval_kind: Literal["generation", "loglikelihood"] = "generation"
    max_new_tokens: Positive = 64
    max_train_examples: Positive | None = None
    mirror: str | None = None
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)

    def load(self, tokenizer=None) -> list[StreamTask]:  # no token filter: the tokenizer goes unused
        # order first: a task left out is never downloaded
        specs = apply_order([HubTaskSpec(**spec) for spec in self.tasks], self.order)
        return with_system_prompt([self._load_task(spec) for spec in specs], self.system_prompt)

    def _load_task(self, spec: HubTaskSpec) -> StreamTask:
        if spec.processed_dir:
            train = _processed(spec, "train", spec.n_train, self.seed)
            test = _processed(spec, "test", spec.n_test, self.seed)
        else:
            source = local_copy(spec.path, self.mirror)
            train_rows = _split(spec, source, spec.train_split)
            test_rows = train_rows if spec.test_split == spec.train_split else _split(spec, source, spec.test_split)
            # one split for both: held-out rows are the head of the shuffle, training rows the rest
            skip = spec.n_test if test_rows is train_rows else 0
            test = _pairs(test_rows, spec, 0, spec.n_test, self.seed)
            train = _pairs(train_rows, spec, skip, spec.n_train, self.seed)
        if self.max_train_examples is not None:
            train = train.select(range(min(self.max_train_examples, len(train))))
        folder = Path(self.cache_dir) / "streams" / f"{spec.name}-{stable_hash([spec.__dict__, self.seed])}"
        test_file = (folder / "test.jsonl").resolve()
        write_jsonl(test_file, test.to_list())
        return StreamTask(spec.name, train, test_file, self._scoring("constraint_kind" in test.column_names))

    def _scoring(self, constrained: bool) -> Scoring:
        if self.eval_kind == "loglikelihood":
            return Scoring("loglikelihood")
        metrics = ("rouge_l", "exact_match") + (("constraint_met",) if constrained else ())
        return Scoring("generation", metrics, self.max_new_tokens)


def _split(spec: HubTaskSpec, source: str, split: str) -> Dataset:
    try:
        return load_dataset(source, spec.subset, split=split, revision=spec.revision)
    except Exception as err:  # offline, missing split, bad ID: datasets raises many types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ForgetbenchError(f"stream task {spec.name!r}: cannot load {source!r} split {split!r}: {first}") from err


def _sample(n_rows: int, skip: int, limit: int | None, seed: int) -> list[int]:
    indices = list(range(n_rows))
    random.Random(seed).shuffle(indices)
    return indices[skip : skip + limit if limit else None]


def _pairs(rows: Dataset, spec: HubTaskSpec, skip: int, limit: int | None, seed: int) -> Dataset:
    """Rows ``skip`` to ``skip + limit`` of a seeded shuffle, as prompt/response pairs."""
    if len(rows) <= skip:
        raise ForgetbenchError(f"stream task {spec.name!r}: {spec.path!r} has {len(rows)} rows, too few")
    rows = rows.select(_sample(len(rows), skip, limit, seed))
    derive = get_method(spec.derive) if spec.derive else None
    rng = random.Random(f"{seed}-{spec.name}")
    pairs = []
    for row in rows:
        try:
            response = spec.response.format(**row)
            derived = derive(response, rng) if derive else {}
            prompt = rng.choice(spec.templates).format(**row, **derived)
            pairs.append({"prompt": prompt, "response": response, **derived})  # derived: for scoring
        except KeyError as err:
            raise ForgetbenchError(
                f"stream task {spec.name!r}: template names column {err} which {spec.path!r} lacks; "
                f"columns: {rows.column_names}"
            ) from err
    return Dataset.from_list(pairs)


def _processed(spec: HubTaskSpec, split: str, limit: int | None, seed: int) -> Dataset:
    """The original study's processed format: ``{"src": [...], "tgt": [...]}``, prompts already written."""
    path = Path(spec.processed_dir) / f"{spec.prompt_name or spec.name}.{split}.json"
    if not path.is_file():
        raise ForgetbenchError(f"stream task {spec.name!r}: processed file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text())
        sources, targets = data["src"], data["tgt"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ForgetbenchError(f"stream task {spec.name!r}: {str(path)!r} is not a src/tgt JSON file") from err
    if len(sources) != len(targets) or not sources:
        raise ForgetbenchError(
            f"stream task {spec.name!r}: {str(path)!r} has {len(sources)} src and "
            f"{len(targets)} tgt entries; they must be equal and non-zero"
        )
    keep = _sample(len(sources), 0, limit, seed)
    return Dataset.from_dict({PAIR_COLUMNS[0]: [sources[i] for i in keep], PAIR_COLUMNS[1]: [targets[i] for i in keep]})
