"""Read run and multirun directories back as one table of scores and one of per-item outcomes."""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forgetbench.errors import ForgetbenchError
from forgetbench.results import RESULTS_FILE, read_inside_task, read_items, read_results


@dataclass
class Runs:
    """Scores and items of many runs; ``run`` (experiment/run_id) names a run in both."""

    rows: pd.DataFrame
    items: pd.DataFrame
    inside: pd.DataFrame  # evaluations inside tasks (eval.every_steps); empty when no run made any


def _expand(paths: list[str | Path]) -> list[Path]:
    expanded: list[Path] = []
    for path in map(str, paths):
        matches = sorted(glob.glob(path)) if any(c in path for c in "*?[") else [path]
        if not matches:
            raise ForgetbenchError(f"{path!r} matches nothing")
        expanded.extend(Path(m) for m in matches)
    return expanded


def load_runs(paths: list[str | Path]) -> Runs:
    """Every run under ``paths`` (run or multirun directories, or globs of them)."""
    files: list[Path] = []
    for path in _expand(paths):
        if not path.exists():
            raise ForgetbenchError(f"{str(path)!r} does not exist")
        found = [path] if path.is_file() else sorted(path.rglob(RESULTS_FILE))
        if not found:
            raise ForgetbenchError(f"no {RESULTS_FILE} under {str(path)!r}: not a forgetbench run or multirun")
        files.extend(f for f in found if f not in files)
    rows, items, inside, seen = [], [], [], set()
    for file in files:
        run_rows = read_results(file)
        if run_rows.empty:
            continue
        first = run_rows.iloc[0]
        run = f"{first['experiment']}/{first['run_id']}"
        if run in seen:  # the same name from another results folder
            run = f"{run}@{file.parent}"
        seen.add(run)
        rows.append(run_rows.assign(run=run))
        items.append(read_items(file.parent).assign(run=run))
        inside.append(read_inside_task(file.parent).assign(run=run))
    if not rows:
        raise ForgetbenchError(f"the results under {[str(p) for p in paths]} hold no rows")
    return Runs(*(pd.concat(frames, ignore_index=True) for frames in (rows, items, inside)))
