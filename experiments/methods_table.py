"""The method comparison of docs/methods.md from the multirun of ``experiments/sweep_methods.sh``.

    python experiments/methods_table.py [SWEEP_DIR]   # default: results/tiny_world_methods/multirun

Reads the sweep's report (``report/summary.csv``, ``report/merged_results.parquet``) and prints one
table, a row per method, mean ± sd over seeds: the stream's ACC, LA and BWT, the knowledge drop with
the report's 95% interval per seed (paired bootstrap over items), the general drop (mean of the three
general tasks), and the seconds a stream step took (training and evaluation; mean of steps 1-3).
Seconds only: memory is measured by experiments/method_costs.py (each method in its own process).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forgetbench.reporting.bootstrap import bootstrap_intervals  # noqa: E402
from forgetbench.reporting.summary import task_table  # noqa: E402


def mean_sd(values, digits: int = 3) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1) if len(values) > 1 else 0:.{digits}f}"


def main() -> None:
    sweep = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "results" / "tiny_world_methods" / "multirun"
    report = sweep / "report"
    summary = pd.read_csv(report / "summary.csv")
    rows = pd.read_parquet(report / "merged_results.parquet")
    items = pd.read_parquet(report / "merged_items.parquet")
    knowledge = task_table(rows, bootstrap_intervals(items[items["eval_task"] == "tiny_world_knowledge"]), None)
    knowledge = knowledge[knowledge["eval_task"] == "tiny_world_knowledge"].set_index("run")
    seconds = rows[rows["step"] > 0].drop_duplicates(["run", "step"]).groupby("run")["wall_time"].mean()
    table = []
    for method, runs in summary.groupby("method", sort=False):
        runs = runs.sort_values("seed")
        general = runs[["drop_knowledge", "drop_reading", "drop_reasoning"]].mean(axis=1)
        intervals = ", ".join(
            f"{100 * knowledge.loc[r, 'drop_low']:.0f}–{100 * knowledge.loc[r, 'drop_high']:.0f}" for r in runs["run"]
        )
        table.append(
            {
                "method": method,
                "ACC": mean_sd(runs["stream_acc"]),
                "LA": mean_sd(runs["stream_la"]),
                "BWT": mean_sd(runs["stream_bwt"], 2),
                "knowledge drop (points)": mean_sd(runs["drop_knowledge"], 1),
                "its 95% interval per seed": intervals,
                "general drop (points)": mean_sd(general, 1),
                "s per step": mean_sd(seconds.loc[runs["run"]], 1),
            }
        )
    table = pd.DataFrame(table).sort_values("ACC", ascending=False, key=lambda c: c.str[:5].astype(float))
    print(f"{summary['seed'].nunique()} seeds, {len(summary)} runs; mean ± sd over seeds")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
