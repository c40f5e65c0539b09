"""The routing table of docs/styles-and-routers.md: each method and route, mean ± sd over seeds, 95% t-intervals.

Columns: ACC and BWT of the stream (each task's headline metric: style adherence on the style stream,
accuracy on the default one), the general suite's mean drop (points), routing accuracy at the last step
(trained stream tasks' items sent to their own adapter), the share of general items left on the base,
extra parameters (adapters, gate, probe) and the evaluation seconds of the last step (every eval task).

    python experiments/routes_table.py results/tiny_world_routes_styles/multirun results/tiny_world_routes/multirun
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from forgetbench.metrics import forgetting_table, score_matrix, stream_metrics, stream_order
from forgetbench.reporting.load import load_runs
from forgetbench.reporting.routing import routing_accuracy
from forgetbench.results import GENERAL, STREAM

T_975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571}  # Student's t, 97.5% quantile, by number of seeds
ADAPTER_METHODS = ("adapters",)


def run_record(rows: pd.DataFrame, routing: pd.DataFrame) -> dict:
    stream = rows[rows["eval_kind"] == STREAM]
    matrix = score_matrix(stream, None)[stream_order(rows)]
    metrics = stream_metrics(matrix)
    general = forgetting_table(rows, None, GENERAL)
    last = rows["step"].max()
    final_routing = routing[routing["step"] == last] if not routing.empty else routing
    return {
        "stream": rows["experiment"].iloc[0],
        "method": rows["method"].iloc[0],
        "seed": rows["seed"].iloc[0],
        "ACC": metrics["acc"],
        "BWT": metrics["bwt"],
        "general drop (points)": general["drop"].mean() * 100,
        "routing acc": final_routing["routing_acc"].iloc[0] if len(final_routing) else float("nan"),
        "general to base": final_routing["general_to_base"].iloc[0] if len(final_routing) else float("nan"),
        "eval s (last step)": rows[rows["step"] == last].drop_duplicates("eval_task")["eval_seconds"].sum(min_count=1),
        "tasks": matrix.shape[1],
    }


def extra_parameters(method: str, tasks: int, hidden: int, per_adapter: int) -> int:
    """What a method adds to the base: LoRA adapters, and a route's gate or probe (weights, bias,
    and the probe's feature mean and scale)."""
    if method == "lora":
        return per_adapter
    if not method.startswith("adapters"):
        return 0
    if method == "adapters-learned":
        return tasks * per_adapter + hidden * tasks + tasks
    if method.startswith("adapters-classifier"):  # -base: the general text is a class of its own
        classes = tasks + method.endswith("-base")
        return tasks * per_adapter + hidden * classes + classes + 2 * hidden
    return tasks * per_adapter


def interval(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    if len(values) < 2:
        return f"{values.mean():.3f}"
    half = T_975.get(len(values), 1.96) * values.std() / math.sqrt(len(values))
    return f"{values.mean():.3f} ± {values.std():.3f} [{values.mean() - half:.3f}, {values.mean() + half:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--hidden", type=int, default=128, help="the model's hidden size (the tiny decoder's: 128)")
    parser.add_argument("--per-adapter", type=int, default=12288, help="one LoRA adapter (logged at setup)")
    args = parser.parse_args()
    runs = load_runs(args.paths)
    routing = routing_accuracy(runs.rows, runs.items)
    records = []
    for run, rows in runs.rows.groupby("run"):
        record = run_record(rows, routing[routing["run"] == run] if not routing.empty else routing)
        record["extra params"] = extra_parameters(record["method"], record["tasks"], args.hidden, args.per_adapter)
        records.append(record)
    table = pd.DataFrame(records)
    columns = ["ACC", "BWT", "general drop (points)", "routing acc", "general to base", "eval s (last step)"]
    grouped = table.groupby(["stream", "method"], sort=False)
    out = grouped[columns].agg(interval)
    out.insert(0, "seeds", grouped.size())
    out["extra params"] = grouped["extra params"].first()
    print(out.reset_index().to_markdown(index=False))


if __name__ == "__main__":
    main()
