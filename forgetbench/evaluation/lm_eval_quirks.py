"""lm-eval behaviours forgetbench switches off, each where lm-eval offers no option for it:
the run stamps its evaluator adds to every result, HFLM's two warnings about the in-memory model
forgetbench hands it on purpose; and the process pool of its bootstrap, through the switch lm-eval
does offer. (HFLM's progress bars in log files: :class:`.hf_engine.QuietHFLM`.)"""

from __future__ import annotations

import logging
import os

# HFLM warns at every construction that it was handed a model object rather than a name, which is how
# forgetbench always calls it (one process per model; the bridge does the distribution): twice per run
# and evaluation, in every log. Only these two messages are dropped; lm-eval's other warnings stay.
_IN_MEMORY_MODEL_WARNINGS = (
    "`pretrained` model kwarg is not of type `str`",
    "Passed an already-initialized model through `pretrained`",
)


class _InMemoryModelWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_IN_MEMORY_MODEL_WARNINGS)


def silence_in_memory_model_warnings() -> None:
    """Drop HFLM's two warnings about being handed a model object (see above); once per process."""
    hflm_logger = logging.getLogger("lm_eval.models.huggingface")
    if not any(isinstance(f, _InMemoryModelWarnings) for f in hflm_logger.filters):
        hflm_logger.addFilter(_InMemoryModelWarnings())


def _no_git_hash() -> None:
    return None


def _no_env_info(results: dict) -> None:
    return None


def no_bootstrap_pool() -> None:
    """lm-eval bootstraps the stderr of some metrics (perplexity among them) in a
    ``multiprocessing.Pool`` forked from the evaluating process: a fork of a process that holds a
    model, torch's threads and a tokenizer's, which hung an evaluation here (SmolLM2, task
    turn_end: the parent waiting forever in ``Pool.terminate``) and costs a fork of gigabytes
    each time. lm-eval's own switch, ``DISABLE_MULTIPROC``, makes it bootstrap in-process."""
    os.environ.setdefault("DISABLE_MULTIPROC", "1")


def silence_run_stamps() -> None:
    """lm-eval stamps every result with ``git describe`` of the working directory and with
    torch's environment report. The first runs with its stderr inherited, so each evaluation
    outside a git checkout prints "fatal: not a git repository" into the run's output; the second
    starts a dozen subprocesses (``pip list`` among them), about 0.6 s per task and evaluation,
    more than scoring a tiny-world task takes. forgetbench never reads either (its rows carry the
    config hash, its run record the environment), and lm-eval has no option to skip them: both
    probes are replaced by silent ones."""
    import lm_eval.evaluator

    lm_eval.evaluator.get_git_commit_hash = _no_git_hash
    lm_eval.evaluator.add_env_info = _no_env_info
