"""The reference engine (``eval.engine=lm_eval``): lm-eval's HF backend as it is, and what both
engines share: the times they report, and keeping a task's requests from one evaluation to the next.

An engine is the lm-eval model object the bridge hands ``simple_evaluate``; besides lm-eval's ``LM``
interface each has ``prepare_task(task)`` (before a task is scored) and ``reset_times()`` (where the
evaluation's seconds went, or None when it does not say). The bridge picks one in one place
(``LmEvalBridge._engine``); every later difference between them is one of these methods. This module
imports lm-eval: it is imported where an evaluation picks its engine, not at start-up.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from lm_eval.models.huggingface import HFLM


@dataclass
class EngineTimes:
    """Where an evaluation's seconds went inside the engine (the rest is lm-eval's scoring)."""

    prepare: float = 0.0  # building requests, tokenizing, grouping (after the first step: ~0)
    model: float = 0.0  # forward passes and generation


def keep_requests(task, times: EngineTimes) -> None:
    """The task's requests (documents, prompts, few-shot contexts) are built at its first
    evaluation and reused, answers cleared, at every later one: they do not depend on the
    weights. lm-eval's evaluator rebuilds them on every call and has no option to keep them
    in memory (its ``cache_requests`` pickles them to disk and reloads them each time), so the
    task's ``build_all_requests`` is replaced on this one object (once; the building's seconds
    are added to ``times.prepare``)."""
    if getattr(task, "_forgetbench_keeps_requests", False):
        return
    build = task.build_all_requests

    def build_once(**kwargs) -> None:
        if getattr(task, "_instances", None) is not None:
            for instance in task.instances:  # new containers: earlier samples keep theirs
                instance.resps, instance.filtered_resps = [], {}
            return
        start = time.perf_counter()
        build(**kwargs)
        times.prepare += time.perf_counter() - start

    task.build_all_requests = build_once
    task._forgetbench_keeps_requests = True


class QuietHFLM(HFLM):
    """lm-eval's HFLM, its progress bars shown only when stderr is a terminal; it rebuilds every
    request at every evaluation and reports no times, as lm-eval does.

    Its request methods take ``disable_tqdm``, but lm-eval's evaluator never passes it and
    each bar is built with an explicit ``disable=``, so neither TQDM_DISABLE nor any option
    reaches them; passing the flag in these three methods is the narrowest way.
    """

    progress_bars = True

    def prepare_task(self, task) -> None:
        """Nothing: lm-eval builds the task's requests anew at each evaluation."""

    def reset_times(self) -> None:
        """None: lm-eval's backend does not split its time."""
        return None

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return super().loglikelihood(requests, disable_tqdm=disable_tqdm or not self.progress_bars)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm or not self.progress_bars)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return super().generate_until(requests, disable_tqdm=disable_tqdm or not self.progress_bars)
