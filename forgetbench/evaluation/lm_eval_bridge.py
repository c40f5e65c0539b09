"""The one door to lm-evaluation-harness: score an in-memory model on a list of tasks.

Design choices, each for a reason:
- HFLM wraps the model object and tokenizer we train, so no weights go to disk
  between steps; the causal or seq2seq backend follows the model's config.
- The TaskManager is built once per run (indexing task folders is slow).
- lm-eval's request cache is never used: its key ignores the weights, so it
  would return step 0's answers at every later step.
- lm-eval reseeds Python, NumPy and torch by default; we pass no seeds so the
  training RNG streams are untouched by evaluation (resumed runs stay exact).
- Task data sets are read from the suite's Hub mirror when it holds them, so the
  stock task YAMLs run unchanged on a machine without Hub access.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version

import pandas as pd
from packaging.version import Version

from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.hub_mirror import datasets_from
from forgetbench.models import LoadedModel

log = logging.getLogger(__name__)

TESTED_LM_EVAL = (Version("0.4.13"), Version("0.5"))  # [low, high): versions this bridge was tested with


def _check_lm_eval_version() -> None:
    found = Version(version("lm_eval"))
    low, high = TESTED_LM_EVAL
    if not low <= found < high:
        raise ForgetbenchError(f"lm_eval {found} is installed; forgetbench is tested with >={low},<{high}")


@functools.lru_cache(maxsize=8)
def _task_manager(folders: tuple[str, ...]):
    """Indexing lm-eval's task folders takes seconds: once per process and set of folders
    (the jobs of a multirun share it; a changed world has a new folder, hence a new index)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=list(folders))


@dataclass
class TaskScore:
    """One metric of one task (or group) after one evaluation."""

    eval_task: str
    metric: str
    value: float
    stderr: float | None
    n: int
    seconds: float


@dataclass
class Evaluation:
    scores: list[TaskScore]
    items: pd.DataFrame  # one row per scored item: eval_task, doc_id, target, pred, correct, logliks


class LmEvalBridge:
    """Evaluates a model on a suite plus the held-out sets of the stream tasks.

    Args:
        suite: the general-ability tasks.
        stream_configs: inline lm-eval task configs of the stream tasks.
    """

    def __init__(self, suite: EvalSuite, stream_configs: list[dict]) -> None:
        _check_lm_eval_version()
        self.suite = suite
        self.task_manager = _task_manager(tuple(str(p) for p in suite.task_folders()))
        # registered tasks go by name (lm-eval reads their YAML); stream tasks as inline configs
        self.specs: list[tuple[str | dict, int | None]] = suite.task_shots()
        self.specs += [(dict(c), None) for c in stream_configs]
        self._check_known([name for name, _ in suite.task_shots()])
        self._lm = None  # one HFLM per model object: it holds a reference, training updates it in place
        self._built: dict[int, object] = {}  # built lm-eval Task/Group per spec: data loaded once per run

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

    def evaluate(self, loaded: LoadedModel, label: str = "", context: Callable | None = None) -> Evaluation:
        """Score every task; the model is back in train mode afterwards.

        Args:
            loaded: the model and tokenizer.
            label: prefix of the progress lines.
            context: ``context(model, eval_task)`` gives a context manager each task is
                scored inside (a method's choice of adapter); none by default.
        """
        from lm_eval import simple_evaluate

        lm = self._wrap(loaded)
        scores, items = [], []
        # HFLM calls eval() once, when built; training has switched dropout (and gradient
        # checkpointing, which breaks cached generation) back on since
        loaded.model.eval()
        try:
            for index, (spec, shots) in enumerate(self.specs, start=1):
                name = spec if isinstance(spec, str) else spec["task"]
                start = time.perf_counter()
                with (
                    context(loaded.model, name) if context else contextlib.nullcontext(),
                    datasets_from(self.suite.mirror),
                ):
                    out = simple_evaluate(
                        model=lm,
                        tasks=[self._built_task(index, spec, name)],
                        num_fewshot=shots,
                        task_manager=self.task_manager,
                        limit=self.suite.limit,
                        cache_requests=False,
                        log_samples=True,
                        bootstrap_iters=100,
                        random_seed=None,
                        numpy_random_seed=None,
                        torch_random_seed=None,
                    )
                seconds = time.perf_counter() - start
                task_scores = _scores(out, seconds)
                scores += task_scores
                items.append(_items(out))
                # the entry's own scores (a group's overall, not its dozens of subtasks)
                main = ", ".join(f"{s.metric}={s.value:.3f}" for s in task_scores if s.eval_task == name)
                log.info(f"[{label}] eval {index}/{len(self.specs)} {name}: {main} ({seconds:.1f}s)")
        finally:
            loaded.model.train()
        return Evaluation(scores, pd.concat(items, ignore_index=True) if items else pd.DataFrame())

    def _built_task(self, index: int, spec: str | dict, name: str):
        """The task (or group) built once and reused at every step; a tag, which expands to
        several tasks, is passed by name and rebuilt each time."""
        if index not in self._built:
            loaded = self.task_manager.load([spec])
            self._built[index] = loaded["groups"].get(name) or loaded["tasks"].get(name) or spec
        return self._built[index]

    def _wrap(self, loaded: LoadedModel):
        from lm_eval.models.huggingface import HFLM

        if self._lm is None or self._lm.model is not loaded.model:
            backend = "seq2seq" if loaded.model.config.is_encoder_decoder else "causal"
            self._lm = HFLM(
                pretrained=loaded.model, tokenizer=loaded.tokenizer, backend=backend, batch_size=self.suite.batch_size
            )
        return self._lm


def _scores(out: dict, seconds: float) -> list[TaskScore]:
    """Metric rows from lm-eval's results (leaf tasks and groups alike)."""
    rows = []
    counts = {task: v["effective"] for task, v in out.get("n-samples", {}).items()}
    children = out.get("group_subtasks", {})

    def examples(task: str) -> int:  # a group (e.g. mmlu, mmlu_stem) counts its leaf tasks' items
        return counts[task] if task in counts else sum(examples(c) for c in children.get(task, []))

    for task, metrics in out["results"].items():
        n = examples(task)
        for key, value in metrics.items():
            metric, _, _filter = key.partition(",")
            if metric in ("alias", "sample_len") or metric.endswith("_stderr") or not isinstance(value, int | float):
                continue
            stderr = metrics.get(f"{metric}_stderr,{_filter}")
            rows.append(TaskScore(task, metric, float(value), _number(stderr), int(n), seconds))
    return rows


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _items(out: dict) -> pd.DataFrame:
    """Per-item outcomes: which choice won, whether it was right, the log-likelihoods."""
    rows = []
    for task, samples in out.get("samples", {}).items():
        for s in samples:
            if any(isinstance(r, str) for r in s["filtered_resps"]):  # generated text: no log-likelihoods
                rows.append(
                    {
                        "eval_task": task,
                        "doc_id": int(s["doc_id"]),
                        "target": str(s["target"]),
                        "pred": -1,
                        "correct": float(s.get("exact_match", float("nan"))),
                        "logliks": [],
                    }
                )
                continue
            logliks = [float(r[0]) for r in s["filtered_resps"]]
            multiple = len(logliks) > 1
            pred = int(max(range(len(logliks)), key=logliks.__getitem__)) if multiple else -1
            rows.append(
                {
                    "eval_task": task,
                    "doc_id": int(s["doc_id"]),
                    "target": str(s["target"]),
                    "pred": pred,
                    "correct": float(s.get("acc", float("nan"))),
                    "logliks": logliks,
                }
            )
    return pd.DataFrame(rows)
