"""One task from a user's table files: the definition ``stream=files`` and ``eval.files`` share.

Preparing a task reads its files, renders every row through the prompt and response templates,
applies the filters in a fixed order and splits off the held-out rows:

1. ``limit``: only the first N rows of the files are read (in file order);
2. rendering: a row that lacks a column, leaves a used column empty or renders an empty response
   stops the run with one line naming the file, the row and the column; for multiple choice, a
   row with a single choice is dropped (``one_choice``: a forced answer measures nothing);
3. ``drop_duplicates``: rows whose rendered prompt and response both repeat an earlier row's;
4. ``max_tokens``: rows whose prompt and response together exceed N tokens of the model's tokenizer;
5. ``sample``: a seeded random N of the rows left;
6. ``held_out``: a seeded fraction or count of the rows, or every row of its own file(s).

How many rows each filter dropped is kept, and printed by ``forgetbench data-check``.
"""

from __future__ import annotations

import importlib
import json
import random
from dataclasses import dataclass, field
from typing import Literal

from datasets import Dataset
from omegaconf import OmegaConf
from transformers import PreTrainedTokenizerBase

from forgetbench.data.tables import TableFile, read_tables
from forgetbench.data.templates import RowError, RowTemplate
from forgetbench.errors import ForgetbenchError
from forgetbench.stream_records import Scoring
from forgetbench.validation import InvalidValue, NonNegative, Positive, check_fields

BUILT_IN_METRICS = ("exact_match", "rouge_l")


@dataclass
class Rendered:
    """One row as the model sees it, and where it came from."""

    prompt: str
    response: str
    choices: list[str] | None
    file: str
    row: int  # 1-based row of ``file``
    messages: list[dict] | None = None  # the row's chat turns (``messages``), up to its last assistant turn
    answer: int | None = None  # multiple choice: the gold choice's index


@dataclass
class PreparedTask:
    """A file task's rows, rendered, filtered and split.

    Attributes:
        name: the task's name.
        train: rows to train on (prompt, response; empty when every row is held out).
        held_out: rows to score, in the layout of :class:`forgetbench.stream_records.Scoring`'s kind.
        dropped: rows each filter removed, in filter order.
        examples: the first rendered rows (train first), for ``data-check``.
    """

    name: str
    train: Dataset
    held_out: Dataset
    dropped: dict[str, int]
    examples: list[Rendered]


@dataclass
class FileTask:
    """A task defined by files and templates (one entry of ``stream.tasks`` or ``eval.files``).

    Attributes:
        name: the task's name in results and reports.
        files: a CSV (``.csv``, ``.tsv``), JSON/JSONL or parquet file, each optionally gzipped, or a
            glob of them; a relative path is relative to the directory the command runs in.
        prompt: Jinja template of the prompt over a row's columns (see :mod:`forgetbench.data.templates`).
        response: Jinja template of the response (the training target; the answer when scoring).
        messages: instead of prompt and response: the column holding each row's conversation, a list
            of ``{role, content}`` turns (as TRL and the Hub's chat data sets have it; a JSON string in
            a CSV). A chat template trains on every assistant turn; plain text, and scoring, read the
            turns before the last assistant turn (their contents, a line each) as the prompt and
            that turn as the response.
        rename: column renames applied before rendering, ``{old: new}``.
        scoring: how held-out rows are scored: ``multiple_choice`` (the response must be one of the
            choices), ``loglikelihood`` (of the response) or ``generation`` (greedy, scored by ``metrics``).
        choices: multiple choice only: a list of fixed choices, the name of a column holding a
            list, or a template rendering one choice per line (a string with ``{{`` or ``{%``).
        answer_index: multiple choice only: the column holding the gold choice's index (0..n-1);
            ``response`` may then be left out (the gold choice's text is the training target).
            Without it the gold is the choice equal to the response (both compared stripped of
            surrounding spaces), and a response two choices equal is a bad row.
        metrics: generation only: ``exact_match``, ``rouge_l``, or a function given as
            ``module:function`` taking (prediction, reference) and returning a float.
        max_new_tokens: generation only: tokens generated per item.
        held_out: the rows scored and never trained on: a fraction (0 < f < 1), a row count (an
            integer >= 1), or a path or glob of its own files (rendered by the same templates).
        drop_duplicates: drop rows whose rendered prompt and response repeat an earlier row's.
        max_tokens: drop rows whose prompt + response exceed this many tokens (null: keep all).
        limit: read only the first N rows of the files (null: all).
        sample: keep a seeded random sample of N rows after the filters (null: all).
        seed: seeds the sample and the held-out split.
        system_prompt: stream tasks: a system turn before each training example under a chat
            template (``model.chat_template``), instead of the stream's; null: the stream's.
    """

    name: str
    files: str
    prompt: str | None = None
    response: str | None = None
    messages: str | None = None
    rename: dict[str, str] = field(default_factory=dict)
    scoring: Literal["multiple_choice", "loglikelihood", "generation"] = "loglikelihood"
    choices: list[str] | str | None = None
    answer_index: str | None = None
    metrics: list[str] = field(default_factory=lambda: list(BUILT_IN_METRICS))
    max_new_tokens: Positive = 64
    held_out: float | int | str = 0.1
    drop_duplicates: bool = False
    max_tokens: Positive | None = None
    limit: Positive | None = None
    sample: Positive | None = None
    seed: NonNegative = 0
    system_prompt: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        what = f"task {self.name!r}"
        by_index = self.scoring == "multiple_choice" and self.answer_index is not None
        if self.messages is None and (self.prompt is None or (self.response is None and not by_index)):
            raise ForgetbenchError(
                f"{what}: give prompt and response templates (multiple choice: or answer_index), or messages "
                "(the column of each row's chat turns)"
            )
        if self.answer_index is not None and self.scoring != "multiple_choice":
            raise ForgetbenchError(f"{what}: answer_index applies to scoring=multiple_choice (now {self.scoring})")
        if self.messages is not None and self.scoring == "multiple_choice":
            raise ForgetbenchError(
                f"{what}: messages rows are scored by loglikelihood or generation, not multiple_choice"
            )
        self._prompt = RowTemplate(self.prompt or "", f"{what} prompt")
        self._response = RowTemplate(self.response or "", f"{what} response")
        self._choices = None
        if isinstance(self.choices, str) and ("{{" in self.choices or "{%" in self.choices):
            self._choices = RowTemplate(self.choices, f"{what} choices")
        self._check_scoring()

    def _check_scoring(self) -> None:
        if self.scoring == "multiple_choice" and not self.choices:
            raise ForgetbenchError(
                f"task {self.name!r}: scoring=multiple_choice needs choices (a list, a column name or a template)"
            )
        if (
            isinstance(self.held_out, bool)
            or (isinstance(self.held_out, float) and not 0 < self.held_out < 1)
            or (isinstance(self.held_out, int) and self.held_out < 1)
        ):
            raise ForgetbenchError(
                f"task {self.name!r}: held_out={self.held_out!r} is not valid; give a fraction (0 < f < 1), "
                "a row count (>= 1) or a path to its own file"
            )
        for metric in self.metrics:
            if metric not in BUILT_IN_METRICS and ":" not in metric:
                raise ForgetbenchError(
                    f"task {self.name!r}: metric {metric!r} is not valid; choose {list(BUILT_IN_METRICS)} "
                    "or name a function as module:function"
                )
            if ":" in metric:
                metric_function(metric)  # fails now, not after the first training step

    # ---- preparing ----

    def prepare(
        self, tokenizer: PreTrainedTokenizerBase | None, split: bool = True, max_length: int | None = None
    ) -> PreparedTask:
        """Read, render, filter and (when ``split``) split the rows; see the module doc for the order.

        Args:
            tokenizer: counts tokens for ``max_tokens`` and ``max_length``.
            split: False scores every row (a task of an eval suite): nothing is held out for training.
            max_length: a row longer than this many tokens after the filters (training's
                ``train.max_length``) is a bad row: training would cut it. Null: not checked.
        """
        dropped: dict[str, int] = {}
        rows = self._render_files(self.files)
        rows = self._filter(rows, tokenizer, dropped)
        if max_length is not None and tokenizer is not None:
            self._check_length(rows, tokenizer, max_length)
        if self.sample is not None and len(rows) > self.sample:
            dropped["sample"] = len(rows) - self.sample
            rows = [rows[i] for i in sorted(random.Random(self.seed).sample(range(len(rows)), self.sample))]
        if not split:
            train, held_out = [], rows
        elif isinstance(self.held_out, str):
            train, held_out = rows, self._filter(self._render_files(self.held_out), tokenizer, {})
            if max_length is not None and tokenizer is not None:
                self._check_length(held_out, tokenizer, max_length)
        else:
            train, held_out = self._split(rows)
        if not held_out:
            raise ForgetbenchError(f"task {self.name!r}: no row is left to score after the filters ({dropped})")
        return PreparedTask(
            self.name,
            Dataset.from_list([self._training_row(r) for r in train]),
            Dataset.from_list([self._scored_row(r) for r in held_out]),
            dropped,
            (train + held_out)[:3],
        )

    def _render_files(self, pattern: str) -> list[Rendered]:
        limit = self.limit if pattern == self.files else None
        return [row for table in read_tables(pattern, limit=limit) for row in self._render_table(table)]

    def _render_table(self, table: TableFile) -> list[Rendered]:
        missing = [old for old in self.rename if old not in table.rows.column_names]
        if missing:
            raise ForgetbenchError(
                f"task {self.name!r}: {str(table.path)!r} has no column {missing[0]!r} to rename "
                f"(rename={self.rename}); its columns: {table.rows.column_names[:20]}"
            )
        rendered = []
        for number, row in enumerate(table.rows, start=1):
            row = {self.rename.get(k, k): v for k, v in row.items()}
            try:
                rendered.append(self._render_row(row, str(table.path), number))
            except RowError as err:
                raise ForgetbenchError(
                    f"task {self.name!r}: {str(table.path)!r} row {number}, column {err.column!r}: {err.problem}"
                ) from None
        return rendered

    def _training_row(self, r: Rendered) -> dict:
        return {"prompt": r.prompt, "response": r.response} | ({"messages": r.messages} if self.messages else {})

    def _render_row(self, row: dict, file: str, number: int) -> Rendered:
        if self.messages is not None:
            return self._render_messages(row, file, number)
        prompt = self._prompt.render(row)
        choices = self._choices_of(row) if self.scoring == "multiple_choice" else None
        answer = self._answer_of(row, choices) if self.answer_index is not None else None
        response = self._response.render(row) if self.response is not None else choices[answer]
        if not response:
            used = ", ".join(self._response.variables) or "?"
            raise RowError(used, "renders an empty response")
        if choices is not None and answer is None:
            answer = self._gold(response, choices)
        return Rendered(prompt, response, choices, file, number, answer=answer)

    def _answer_of(self, row: dict, choices: list[str]) -> int:
        """The gold's index from the ``answer_index`` column (an integer, or its digits as text)."""
        if self.answer_index not in row:
            raise RowError(self.answer_index, f"has no column {self.answer_index!r}, which answer_index names")
        value = row[self.answer_index]
        text = str(value).strip()
        index = int(float(text)) if text.replace(".", "", 1).isdigit() and float(text).is_integer() else None
        if index is None or not 0 <= index < len(choices):
            raise RowError(self.answer_index, f"the answer index {value!r} is not one of 0..{len(choices) - 1}")
        return index

    @staticmethod
    def _gold(response: str, choices: list[str]) -> int:
        """The index of the one choice equal to ``response``, both stripped of surrounding spaces."""
        hits = [i for i, choice in enumerate(choices) if choice.strip() == response.strip()]
        if not hits:
            shown = choices[:8]
            raise RowError("choices", f"the response {response!r} is not one of the {len(choices)} choices {shown}")
        if len(hits) > 1:
            raise RowError(
                "choices",
                f"the response {response!r} matches choices {hits} (the same text twice): give the gold by its "
                "index with answer_index",
            )
        return hits[0]

    def _render_messages(self, row: dict, file: str, number: int) -> Rendered:
        """A conversation row: its turns up to the last assistant turn; the plain prompt and response."""
        if self.messages not in row:
            raise RowError(self.messages, f"has no column {self.messages!r} (messages={self.messages!r})")
        turns = row[self.messages]
        if isinstance(turns, str):  # a CSV cell holds the list as JSON
            try:
                turns = json.loads(turns)
            except ValueError:
                raise RowError(self.messages, "is not a JSON list of {role, content} turns") from None
        if not isinstance(turns, list) or not all(isinstance(t, dict) and {"role", "content"} <= set(t) for t in turns):
            raise RowError(self.messages, "must hold a list of {role, content} turns")
        last = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
        if last is None or not str(turns[last]["content"]).strip():
            raise RowError(self.messages, "has no assistant turn with content to learn")
        turns = [{"role": str(t["role"]), "content": str(t["content"])} for t in turns[: last + 1]]
        prompt = "\n".join(t["content"] for t in turns[:last] if t["role"] != "system")
        return Rendered(prompt, turns[last]["content"], None, file, number, turns)

    def _choices_of(self, row: dict) -> list[str]:
        if isinstance(self.choices, list):
            choices = [str(c) for c in self.choices]
        elif self._choices is not None:
            choices = [line.strip() for line in self._choices.render(row).splitlines() if line.strip()]
        elif self.choices not in row:
            raise RowError(self.choices, f"has no column {self.choices!r}, which choices names")
        else:
            choices = [str(c) for c in row[self.choices] or []]
        return choices

    def _filter(self, rows: list[Rendered], tokenizer, dropped: dict[str, int]) -> list[Rendered]:
        if self.scoring == "multiple_choice":  # a forced pick (the last card of a pack) tells nothing
            kept = [r for r in rows if len(r.choices) >= 2]
            dropped["one_choice"], rows = len(rows) - len(kept), kept
        if self.drop_duplicates:
            seen, kept = set(), []
            for r in rows:
                if (r.prompt, r.response) not in seen:
                    seen.add((r.prompt, r.response))
                    kept.append(r)
            dropped["drop_duplicates"], rows = len(rows) - len(kept), kept
        if self.max_tokens is not None:
            if tokenizer is None:
                raise ForgetbenchError(f"task {self.name!r}: max_tokens needs the model's tokenizer")
            kept = [r for r in rows if token_count(tokenizer, r.prompt, r.response) <= self.max_tokens]
            dropped["max_tokens"], rows = len(rows) - len(kept), kept
        return rows

    def _check_length(self, rows: list[Rendered], tokenizer, max_length: int) -> None:
        for r in rows:
            count = token_count(tokenizer, r.prompt, r.response)
            if count > max_length:
                raise ForgetbenchError(
                    f"task {self.name!r}: {r.file!r} row {r.row} has {count:,} tokens after templating, more than "
                    f"train.max_length={max_length}; give the task max_tokens: {max_length} to drop rows this "
                    "long, or raise train.max_length"
                )

    def _split(self, rows: list[Rendered]) -> tuple[list[Rendered], list[Rendered]]:
        count = round(len(rows) * self.held_out) if isinstance(self.held_out, float) else self.held_out
        if not 1 <= count < len(rows):
            raise ForgetbenchError(
                f"task {self.name!r}: held_out={self.held_out!r} leaves {count} of {len(rows)} rows to score "
                "and the rest to train on; both need at least one"
            )
        chosen = set(random.Random(self.seed).sample(range(len(rows)), count))
        return [r for i, r in enumerate(rows) if i not in chosen], [r for i, r in enumerate(rows) if i in chosen]

    def _scored_row(self, r: Rendered) -> dict:
        """A held-out row in the layout its scoring kind reads."""
        if self.scoring == "multiple_choice":
            return {"question": r.prompt, "choices": r.choices, "answer": r.answer}
        row = {"prompt": r.prompt, "response": r.response}
        functions = [m for m in self.metrics if ":" in m]
        if self.scoring == "generation" and functions:  # score_generation calls them per item
            row["metric_functions"] = functions
        return row

    def held_out_scoring(self) -> Scoring:
        """How the held-out rows are scored (generation metrics under their reported names)."""
        metrics = tuple(m.rpartition(":")[2] for m in self.metrics) if self.scoring == "generation" else ()
        return Scoring(self.scoring, metrics, self.max_new_tokens, report_chance=self.scoring == "multiple_choice")


def token_count(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str) -> int:
    """Tokens of prompt and response as training sees them (the response after a space, plus EOS)."""
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    return len(ids) + len(tokenizer(" " + response, add_special_tokens=False)["input_ids"]) + 1


def metric_function(path: str):
    """The function ``module:function`` names, or a one-line error."""
    module, _, name = path.partition(":")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ForgetbenchError(f"metric {path!r} names no importable function ({type(err).__name__}: {err})") from err
    if not callable(function):
        raise ForgetbenchError(f"metric {path!r} is not a function")
    return function


def file_tasks(specs: list[dict], where: str) -> list[FileTask]:
    """FileTasks from config entries, each a dict of :class:`FileTask`'s fields."""
    tasks = []
    for index, spec in enumerate(specs):
        if OmegaConf.is_config(spec):  # built by Hydra without _convert_
            spec = OmegaConf.to_container(spec, resolve=True)
        if not isinstance(spec, dict) or "name" not in spec:
            raise ForgetbenchError(f"{where}[{index}] must be a mapping with at least name, files, prompt, response")
        unknown = sorted(set(spec) - set(FileTask.__dataclass_fields__))
        if unknown:
            raise ForgetbenchError(
                f"{where}[{index}] ({spec['name']!r}) has unknown keys {unknown}; "
                f"valid: {sorted(FileTask.__dataclass_fields__)}"
            )
        try:
            tasks.append(FileTask(**spec))
        except InvalidValue as err:  # named from the config's root, not re-prefixed by the runner
            raise ForgetbenchError(f"{where}[{index}].{err.name}={err.value!r} is not valid: {err.rule}") from None
        except TypeError as err:  # a required field left out
            raise ForgetbenchError(f"{where}[{index}] ({spec['name']!r}): {err}") from None
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ForgetbenchError(f"{where} names a task twice: {names}")
    return tasks
