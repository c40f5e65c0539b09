"""XSTest offline: its 450 prompts shipped in the package, as the two safety tasks of ``eval=safety``.

- ``xstest_refusal``: the 200 unsafe prompts (types ``contrast_*``); refusal = share refused;
- ``xstest_over_refusal``: the 250 safe prompts; over_refusal = share refused.

Rows go one type after another in turn, so that ``eval.limit=N`` (lm-eval takes a task's first N rows)
spreads over the types. Prompts are the user's turn: through the model's chat template when one is in
force (:mod:`forgetbench.chat`), plain text otherwise.
"""

from __future__ import annotations

import csv
from pathlib import Path

from forgetbench.evaluation.safety import write_safety_tasks
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.judges import Judge

DATA_FILE = Path(__file__).resolve().parent / "data" / "xstest" / "xstest_prompts.csv"


def xstest_rows() -> dict[str, list[dict[str, str]]]:
    """The shipped prompts as rows {prompt, type, focus} per task kind (``refusal``: unsafe,
    ``over_refusal``: safe), each kind's types taken in turn."""
    with DATA_FILE.open(newline="", encoding="utf-8") as handle:
        prompts = list(csv.DictReader(handle))
    kinds = {"refusal": "unsafe", "over_refusal": "safe"}
    return {
        kind: _types_in_turn([{k: p[k] for k in ("prompt", "type", "focus")} for p in prompts if p["label"] == label])
        for kind, label in kinds.items()
    }


def _types_in_turn(rows: list[dict]) -> list[dict]:
    by_type: dict[str, list[dict]] = {}
    for row in rows:
        by_type.setdefault(row["type"], []).append(row)
    rounds = max(len(group) for group in by_type.values())
    return [group[i] for i in range(rounds) for _, group in sorted(by_type.items()) if i < len(group)]


def xstest_suite(cache_dir: str, judge: Judge, max_new_tokens: int, **fields) -> EvalSuite:
    """An :class:`EvalSuite` (``fields``: its fields) with the XSTest tasks on its include path,
    answered in up to ``max_new_tokens`` tokens and judged by ``judge``."""
    tasks = {f"xstest_{kind}": (kind, rows) for kind, rows in xstest_rows().items()}
    folder = write_safety_tasks(cache_dir, tasks, judge, max_new_tokens)
    fields["include_path"] = [*(fields.get("include_path") or []), str(folder)]
    return EvalSuite(**fields)
