"""The one door to lm-evaluation-harness: score an in-memory model on a list of tasks.

Design choices, each for a reason:
- The engine (``eval.engine``) answers lm-eval's requests for the model object and tokenizer we
  train, so no weights go to disk between steps; the causal or seq2seq backend follows the
  model's config. ``fast`` (:mod:`.fast_engine`) builds each task's requests once per run and
  shares contexts between their continuations; ``lm_eval`` (:mod:`.hf_engine`) is lm-eval's own
  HF backend (HFLM) as it is, the reference the fast engine is tested against. The choice is read
  in one place (``_engine``); both engines answer ``prepare_task`` and ``reset_times``.
- The TaskManager is built once per run (indexing task folders is slow).
- lm-eval's request cache is never used: its key ignores the weights, so it
  would return step 0's answers at every later step.
- lm-eval reseeds Python, NumPy and torch by default; we pass no seeds so the
  training RNG streams are untouched by evaluation (resumed runs stay exact).
- Task data sets are read from the suite's Hub mirror when it holds them, so the
  stock task YAMLs run unchanged on a machine without Hub access.
- Stream tasks arrive as data (held-out rows and a scoring kind); their task YAMLs are
  written here, into a folder that lives as long as the bridge, and loaded by path.
- lm-eval's per-request progress bars show on an interactive terminal only; redirected
  output (log files, Slurm) gets one line per eval task instead (:class:`.hf_engine.QuietHFLM`;
  the run stamps are switched off in :mod:`.lm_eval_quirks`).
- What lm-eval returns is read into score rows and item rows by :mod:`.lm_eval_output`.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import version
from pathlib import Path

import pandas as pd
from packaging.version import Version
from transformers import PreTrainedTokenizerBase

from forgetbench.chat import available_template, template_in_force
from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.lm_eval_output import Evaluation, item_rows, task_scores
from forgetbench.evaluation.lm_eval_quirks import (
    no_bootstrap_pool,
    silence_in_memory_model_warnings,
    silence_run_stamps,
)
from forgetbench.evaluation.mmlu_offline import turn_end_rows
from forgetbench.evaluation.routed_lm import Router, routed_lm_class
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.task_configs import (
    TURN_END_TASK,
    local_task_config,
    stream_task_config,
    turn_end_config,
    write_rows,
    write_task_yaml,
)
from forgetbench.hub_mirror import datasets_from
from forgetbench.models import LoadedModel
from forgetbench.stopping import raise_if_stopped
from forgetbench.stream_records import StreamTask

log = logging.getLogger(__name__)

TESTED_LM_EVAL = (Version("0.4.13"), Version("0.5"))  # [low, high): versions this bridge was tested with


def _check_lm_eval_version() -> None:
    found = Version(version("lm_eval"))
    low, high = TESTED_LM_EVAL
    if not low <= found < high:
        raise ForgetbenchError(f"lm_eval {found} is installed; forgetbench is tested with >={low},<{high}")


@functools.lru_cache(maxsize=8)
def _task_manager(folders: tuple[str, ...], names: tuple[str, ...]):
    """Indexing lm-eval's own task folders takes seconds (8 s on 2 cores): once per process and
    set of folders (the jobs of a multirun share it; a changed world has a new folder, hence a new
    index), and not at all when every named task is in the given folders (the tiny world's)."""
    from lm_eval.tasks import TaskManager

    local = TaskManager(include_path=list(folders), include_defaults=False) if folders else None
    if local is not None and set(names) <= set(local.all_tasks):
        return local
    return TaskManager(include_path=list(folders))


@dataclass(frozen=True)
class _Entry:
    """One evaluation of ``evaluate``: an lm-eval spec (a registered name or a YAML path)."""

    name: str
    spec: str
    shots: int | None
    stream_task: str = ""
    limit: int | None = None


class LmEvalBridge:
    """Evaluates a model on a suite plus the held-out sets of the stream tasks.

    Args:
        suite: the general-ability tasks.
        stream_tasks: the stream's tasks, whose held-out rows are scored too.
    """

    def __init__(
        self, suite: EvalSuite, stream_tasks: list[StreamTask], tokenizer: PreTrainedTokenizerBase | None = None
    ) -> None:
        _check_lm_eval_version()
        self.suite = suite
        # the chat template in force (model.chat_template) decides how every prompt is rendered
        in_force = getattr(tokenizer, "chat_template", None)
        self.chat = suite.chat_options(in_force, available_template(tokenizer) if tokenizer else None)
        names = [name for name, _, _ in suite.task_shots()]
        self.task_manager = _task_manager(tuple(str(p) for p in suite.task_folders()), tuple(names))
        self._check_known(names)
        self._stream_dir = tempfile.TemporaryDirectory(prefix="forgetbench-stream-tasks-")
        folder = Path(self._stream_dir.name)
        # registered tasks go by name; file and stream tasks by the path of the YAML written for them
        self.entries = [_Entry(name, name, shots, limit=limit) for name, shots, limit in suite.task_shots()]
        for file_task in suite.file_tasks:  # tokenizer: for a task's max_tokens filter
            rows = file_task.prepare(tokenizer, split=False).held_out.to_list()
            data_file = write_rows(rows, folder, file_task.name)
            config = local_task_config(file_task.name, data_file, file_task.held_out_scoring(), self._chat)
            path = write_task_yaml(config, folder)
            self.entries.append(_Entry(path.stem, str(path), None, limit=suite.limit))
        for task in stream_tasks:
            path = write_task_yaml(stream_task_config(task, folder, self._chat), folder)
            self.entries.append(_Entry(path.stem, str(path), None, task.name, suite.limit))
        if suite.turn_end:
            self.entries.append(self._turn_end_entry(folder, tokenizer, suite.turn_end))
        self.inside_entries = self._inside_task_entries()
        self._lm = None  # one HFLM per model object: it holds a reference, training updates it in place
        self._built: dict[tuple[str, int], object] = {}  # built lm-eval Task/Group per entry: data loaded once per run
        self.last_times: tuple[float, float, float] | None = None  # fast engine: prepare, model, score seconds

    @staticmethod
    def _turn_end_entry(folder: Path, tokenizer: PreTrainedTokenizerBase | None, limit: int | None) -> _Entry:
        """Task ``turn_end`` (``eval.turn_end``) over the shipped MMLU items: does the model close its
        turn (EOS: what training appends to plain text, and what a chat model's template ends a turn
        with) right after a complete answer, "The answer is <the right choice>."? (After the bare
        choice, a fragment, SmolLM2-135M-Instruct closed its turn on 1 of 20 items here; after the
        sentence, on 36 of 100.)"""
        if tokenizer is None or not tokenizer.eos_token:
            raise ForgetbenchError(f"eval.turn_end={limit} needs the model's tokenizer and its end-of-turn (EOS) token")
        rows = turn_end_rows(tokenizer.eos_token)
        path = write_task_yaml(turn_end_config(write_rows(rows, folder, TURN_END_TASK)), folder)
        return _Entry(path.stem, str(path), 0, limit=limit)

    def _inside_task_entries(self) -> list[_Entry]:
        """What is scored inside a task (``eval.inside_task_tasks``; None: the general suite's tasks),
        at ``eval.inside_task_limit`` items each. An entry scored at both limits is two entries: lm-eval
        builds a task's requests for one limit, and the fast engine keeps them (``prepare_task``)."""
        general = [e for e in self.entries if not e.stream_task]
        by_name = {e.name: e for e in general} | {e.stream_task: e for e in self.entries if e.stream_task}
        names = self.suite.inside_task_tasks
        for name in names or []:
            if name not in by_name:
                raise ForgetbenchError(
                    f"eval.inside_task_tasks: {name!r} is neither a task of the suite nor a stream task; "
                    f"valid: {sorted(by_name)}"
                )
        chosen = general if names is None else [by_name[name] for name in names]
        return [replace(e, limit=self.suite.inside_task_limit) for e in chosen]

    @property
    def _chat(self) -> bool:
        return self.chat["apply_chat_template"]

    @property
    def engine(self):
        """The lm-eval model object that answers this bridge's requests (the fast engine or HFLM),
        built at the first evaluation; None before it."""
        return self._lm

    def _check_known(self, names: list[str]) -> None:
        known = set(self.task_manager.all_tasks)
        for name in names:
            if name not in known:
                close = difflib.get_close_matches(name, sorted(known), n=5)
                hint = f"close matches: {close}" if close else "no close match"
                raise ForgetbenchError(
                    f"eval task {name!r} is not known to lm-eval ({hint}; {len(known)} tasks known, "
                    f"see `lm-eval ls tasks` or add a folder to eval.include_path)"
                )

    def evaluate(
        self,
        loaded: LoadedModel,
        label: str = "",
        context: Callable | None = None,
        router: Router | None = None,
        inside_task: bool = False,
        tasks: list[str] | None = None,
    ) -> Evaluation:
        """Score every task (``inside_task``: what ``eval.inside_task_tasks`` names, at
        ``eval.inside_task_limit`` items; ``tasks``: only these suite or stream tasks); the model is
        back in train mode afterwards.

        Args:
            loaded: the model and tokenizer.
            label: prefix of the progress lines.
            context: ``context(model, eval_task, stream_task)`` gives a context manager each task
                is scored inside (a method's choice of adapter; ``stream_task`` is "" for the
                suite's tasks); none by default.
            router: picks each request's adapters from its input (:mod:`.routed_lm`); its choices
                fill the items' ``route`` column ("" without one).
        """
        from lm_eval import simple_evaluate

        silence_run_stamps()
        silence_in_memory_model_warnings()
        no_bootstrap_pool()
        lm = self._wrap(loaded)
        scores, items = [], []
        evaluation_start = time.perf_counter()
        # HFLM calls eval() once, when built; training has switched dropout (and gradient
        # checkpointing, which breaks cached generation) back on since
        loaded.model.eval()
        entries = self._selected(inside_task, tasks)
        try:
            for index, (key, entry) in enumerate(entries, start=1):
                start = time.perf_counter()
                model = routed_lm_class()(lm, router, loaded, entry.stream_task) if router else lm
                built = self._built_task(key, entry)
                for task in _leaf_tasks(built):
                    lm.prepare_task(task)
                with (
                    context(loaded.model, entry.name, entry.stream_task) if context else contextlib.nullcontext(),
                    datasets_from(self.suite.mirror),
                    template_in_force(loaded.tokenizer, self._chat),
                ):
                    out = simple_evaluate(
                        model=model,
                        tasks=[built],
                        num_fewshot=entry.shots,
                        task_manager=self.task_manager,
                        limit=entry.limit,
                        cache_requests=False,
                        log_samples=True,
                        bootstrap_iters=100,
                        random_seed=None,
                        numpy_random_seed=None,
                        torch_random_seed=None,
                        **self.chat,
                    )
                raise_if_stopped()
                seconds = time.perf_counter() - start
                if out is None:  # lm-eval builds results on LOCAL_RANK 0 only; this rank ran the same passes
                    continue
                scored = task_scores(out, seconds, entry.stream_task)
                scores += scored
                items.append(_with_routes(item_rows(out), model.decisions if router else {}))
                # the entry's own scores (a group's overall, not its dozens of subtasks)
                main = ", ".join(f"{s.metric}={s.value:.3f}" for s in scored if s.eval_task == entry.name)
                log.info(f"[{label}] eval {index}/{len(entries)} {entry.name}: {main} ({seconds:.1f}s)")
        finally:
            loaded.model.train()
        self._log_times(lm, label, time.perf_counter() - evaluation_start)
        return Evaluation(scores, pd.concat(items, ignore_index=True) if items else pd.DataFrame())

    def _selected(self, inside_task: bool, tasks: list[str] | None) -> list[tuple[tuple[str, int], _Entry]]:
        """The entries one evaluation scores, each with the key its built task is kept under."""
        if inside_task:
            return [(("inside", i), entry) for i, entry in enumerate(self.inside_entries)]
        chosen = [(("boundary", i), entry) for i, entry in enumerate(self.entries)]
        if tasks is None:
            return chosen
        return [(key, e) for key, e in chosen if e.name in tasks or (e.stream_task and e.stream_task in tasks)]

    def documents(self, task: str) -> list[dict]:
        """A general task's scored documents as training pairs (``doc_id``, ``prompt``: the rendered
        question, ``response``: its gold answer's text), in lm-eval's order; the suite's limit applies.
        For analyses that train on a task's own items (``forgetbench analyze``'s recovery probe)."""
        key, entry = next((k, e) for k, e in self._selected(False, None) if e.name == task and not e.stream_task)
        pairs = []
        with datasets_from(self.suite.mirror):
            for leaf in _leaf_tasks(self._built_task(key, entry)):
                for doc_id, doc in enumerate(leaf.eval_docs):
                    if entry.limit is not None and doc_id >= entry.limit:
                        break
                    target = leaf.doc_to_target(doc)
                    if leaf.OUTPUT_TYPE == "multiple_choice":
                        choices = leaf.doc_to_choice(doc)
                        target = choices[target] if isinstance(target, int) else target
                    pairs.append({"doc_id": doc_id, "prompt": leaf.doc_to_text(doc), "response": str(target)})
        return pairs

    def _log_times(self, lm, label: str, seconds: float) -> None:
        """How one evaluation's time split, when the engine says: preparing requests, the model,
        scoring (lm-eval's metrics and everything else)."""
        times = lm.reset_times()
        if times is None:
            return
        prepare = times.prepare
        score = max(seconds - prepare - times.model, 0.0)
        self.last_times = (prepare, times.model, score)
        log.info(f"[{label}] eval {seconds:.1f}s: prepare {prepare:.1f}s, model {times.model:.1f}s, score {score:.1f}s")

    def check_data(self) -> None:
        """Build every task now (its data is loaded once and kept for every step) and check the rows
        of tasks over local files: a field missing or null in some rows of a file but present in
        others would fail in the middle of an evaluation, after the run had started writing."""
        with datasets_from(self.suite.mirror):
            for key, entry in self._selected(inside_task=False, tasks=None):
                for task in _leaf_tasks(self._built_task(key, entry)):
                    _check_local_rows(entry.name, task)

    def _built_task(self, key: tuple[str, int], entry: _Entry):
        """The task (or group) built once and reused at every step; a tag, which expands to
        several tasks, is passed by name and rebuilt each time."""
        if key not in self._built:
            loaded = self.task_manager.load([entry.spec])
            self._built[key] = loaded["groups"].get(entry.name) or loaded["tasks"].get(entry.name) or entry.spec
        return self._built[key]

    def _wrap(self, loaded: LoadedModel):
        if self._lm is None or self._lm.model is not loaded.model:
            backend = "seq2seq" if loaded.model.config.is_encoder_decoder else "causal"
            kwargs = {"pretrained": loaded.model, "tokenizer": loaded.tokenizer, "backend": backend}
            self._lm = self._engine(batch_size=self.suite.batch_size, **kwargs)
        self._lm.progress_bars = sys.stderr.isatty()
        return self._lm

    def _engine(self, **kwargs):
        """The engine ``eval.engine`` names, for the model in ``kwargs`` (HFLM's arguments): the one
        place the choice is read (each engine module imports lm-eval, so it is imported here)."""
        if self.suite.engine == "fast":
            from forgetbench.evaluation.fast_engine import FastLM

            return FastLM(token_budget=self.suite.token_budget, **kwargs)
        from forgetbench.evaluation.hf_engine import QuietHFLM

        return QuietHFLM(**kwargs)


def _with_routes(items: pd.DataFrame, decisions: dict[tuple[str, int], str]) -> pd.DataFrame:
    """The items with the route each took (:class:`.routed_lm.Router`'s choice; "" when not routed)."""
    keys = zip(items.get("eval_task", []), items.get("doc_id", []))
    return items.assign(route=[decisions.get((task, int(doc)), "") for task, doc in keys])


LOCAL_BUILDERS = ("json", "csv", "parquet", "arrow", "text")  # datasets' builders for local files


def _leaf_tasks(built) -> list:
    """The lm-eval Task objects in a built task or group (a tag, passed by name, has none yet)."""
    if isinstance(built, str):
        return []
    if hasattr(built, "get_all_tasks"):  # an lm_eval.api.group.Group (MMLU and its subject groups)
        return built.get_all_tasks()
    return [built]


def _check_local_rows(name: str, task) -> None:
    if getattr(task.config, "dataset_path", None) not in LOCAL_BUILDERS:
        return
    docs = task.eval_docs
    files = (task.config.dataset_kwargs or {}).get("data_files", {})
    for column in getattr(docs, "column_names", []):
        if not docs.with_format("arrow")[column].null_count:  # Arrow counts them: no row is read when none lacks it
            continue
        values = docs[column]
        empty = [i for i, value in enumerate(values) if value is None]
        if empty and len(empty) < len(values):
            raise ForgetbenchError(
                f"eval task {name!r}: row {empty[0] + 1} of {files} has no {column!r} (missing or null), "
                f"though other rows do ({len(empty)} of {len(values)} rows lack it)"
            )
