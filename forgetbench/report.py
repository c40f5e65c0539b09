"""The per-run report: a forgetting table (Markdown) and forgetting curves (PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
import pandas as pd

from forgetbench.metrics import forgetting_table, score_matrix
from forgetbench.streams.base import stream_eval_name

REPORT_FILE = "report.md"
CURVES_FILE = "forgetting_curves.png"


def _markdown(frame: pd.DataFrame, digits: int = 3) -> str:
    """A plain Markdown table (written by hand: pandas needs the optional tabulate for this)."""
    frame = frame.reset_index()
    head = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _cell(value, digits: int) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def plot_curves(rows: pd.DataFrame, metric: str = "acc") -> plt.Figure:
    """Score against step, a line per eval task (general solid, stream dashed)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    palette = plt.get_cmap("tab10")
    for i, kind in enumerate(("general", "stream")):
        matrix = score_matrix(rows, metric, kind)
        for j, task in enumerate(matrix.columns):
            ax.plot(
                matrix.index,
                matrix[task],
                marker="o",
                linestyle="-" if kind == "general" else "--",
                color=palette((j + 3 * i) % 10),
                label=task,
            )
    steps = sorted(rows["step"].unique())
    trained = rows.drop_duplicates("step").set_index("step")["trained_task"]
    ax.set_xticks(steps, [f"{s}\n{trained.get(s) or 'base'}" for s in steps], fontsize=8)
    ax.set_xlabel("step (task trained)")
    ax.set_ylabel(f"{metric} (fraction correct)")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"{rows['model'].iloc[0]} · {rows['method'].iloc[0]}: score after each step")
    fig.tight_layout()
    return fig


def render_report(rows: pd.DataFrame, metric: str = "acc") -> str:
    """The report's Markdown text for one run's rows."""
    run = rows.iloc[0]
    general = forgetting_table(rows, metric, "general")
    stream = score_matrix(rows, metric, "stream")
    trained = rows.drop_duplicates("step").sort_values("step")["trained_task"]
    order = [stream_eval_name(t) for t in trained if stream_eval_name(t) in stream.columns]
    stream = stream[order + [c for c in stream.columns if c not in order]]  # columns in training order
    lines = [
        f"# forgetbench run {run['run_id']}",
        "",
        f"model {run['model']} ({run['architecture']}, {run['n_params']:,} parameters), method {run['method']}, "
        f"seed {run['seed']}, steps {int(rows['step'].max())}",
        "",
        f"## Forgetting of general ability ({metric})",
        "",
        "drop = R0 − Rfinal; drop_pct = drop / R0 × 100; fg = mean over steps m ≥ 1 of (R0 − Rm) / R0 × 100 "
        "(Luo et al. 2023)",
        "",
        _markdown(general),
        "",
        f"## Stream tasks ({metric}, row = after step, column = task)",
        "",
        _markdown(stream),
        "",
        f"![forgetting curves]({CURVES_FILE})",
        "",
    ]
    return "\n".join(lines)


def write_run_report(run_dir: Path, rows: pd.DataFrame, metric: str = "acc") -> Path:
    """Write ``report.md`` and the curves PNG into ``run_dir``; return the report's path."""
    fig = plot_curves(rows, metric)
    fig.savefig(run_dir / CURVES_FILE, dpi=120)
    plt.close(fig)
    path = run_dir / REPORT_FILE
    path.write_text(render_report(rows, metric))
    return path
