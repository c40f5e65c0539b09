"""The simplest router a practitioner writes: rules from config, a pattern → the adapter of a task."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from forgetbench.errors import ForgetbenchError
from forgetbench.routing import BASE, MERGE

log = logging.getLogger(__name__)


@dataclass
class KeywordRule:
    """Inputs in which ``pattern`` (a regular expression) is found go to ``task``'s adapter."""

    pattern: str
    task: str


@dataclass
class KeywordRouter:
    """Attributes:
    rules: tried in order; the first whose pattern is found in the input and whose task has been
        trained picks that task's adapter.
    fallback: the route of an input no rule picks: ``base`` (no adapter), ``merge`` (every trained
        adapter) or a stream task's name (its adapter once trained, else the base).
    """

    rules: list[KeywordRule] = field(default_factory=list)
    fallback: str = BASE

    def __post_init__(self) -> None:  # rules from config arrive as mappings
        self.rules = [r if isinstance(r, KeywordRule) else KeywordRule(**r) for r in self.rules]

    def check(self, tasks: list[str]) -> None:
        """Each rule's pattern compiles and the fallback is a route; rules for tasks outside this stream
        (rules written for a whole stream, run on some of its tasks) are dropped, named in a warning,
        and none left is an error."""
        unused = [r.task for r in self.rules if r.task not in tasks]
        if unused:
            log.warning(
                f"method.keyword.rules: tasks {sorted(set(unused))} are not in this stream {tasks}; "
                "their rules are unused"
            )
        if self.rules and len(unused) == len(self.rules):
            raise ForgetbenchError(
                f"method.keyword.rules name no task of this stream (they name {sorted(set(unused))}); valid: {tasks}"
            )
        self.rules = [r for r in self.rules if r.task in tasks]
        for index, rule in enumerate(self.rules):
            try:
                re.compile(rule.pattern)
            except re.error as err:
                raise ForgetbenchError(
                    f"method.keyword.rules[{index}].pattern={rule.pattern!r} is not a regular expression ({err})"
                ) from err
        if self.fallback not in [BASE, MERGE, *tasks]:
            raise ForgetbenchError(
                f"method.keyword.fallback={self.fallback!r} is not valid; "
                f"choose {BASE}, {MERGE} or a stream task {tasks}"
            )

    def choose(self, contexts: list[str], trained: list[str]) -> list[str]:
        """Each context's route."""
        compiled = [(re.compile(r.pattern), r.task) for r in self.rules if r.task in trained]
        fallback = self.fallback if self.fallback in (BASE, MERGE, *trained) else BASE
        return [next((task for pattern, task in compiled if pattern.search(c)), fallback) for c in contexts]
