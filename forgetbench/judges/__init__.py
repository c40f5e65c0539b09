"""Refusal judges: whether a model's answer to a request refuses it (the ``judge`` config group).

A judge is any object with ``refused(prompt, completion) -> bool``: :class:`strmatch.StrMatchJudge`
(the standard refusal-phrase match) or :class:`classifier.ClassifierJudge` (a classifier model given
by path). lm-eval hands a task's ``process_results`` only the row and the generation, so a safety
task's rows carry their judge as a spec (:func:`judge_spec`), rebuilt once per process by
:func:`judge_from_spec`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from typing import Protocol


class Judge(Protocol):
    def refused(self, prompt: str, completion: str) -> bool: ...


def judge_spec(judge: Judge) -> str:
    """``judge`` as a JSON string (its class and its fields) that :func:`judge_from_spec` rebuilds."""
    cls = type(judge)
    return json.dumps({"target": f"{cls.__module__}.{cls.__qualname__}", "fields": dataclasses.asdict(judge)})


@functools.cache
def judge_from_spec(spec: str) -> Judge:
    """The judge :func:`judge_spec` wrote (built once per process: a classifier loads its weights)."""
    parsed = json.loads(spec)
    module, _, name = parsed["target"].rpartition(".")
    return getattr(importlib.import_module(module), name)(**parsed["fields"])
