"""The analysis section of a run's report (``<run>/report/analysis/``): tables as CSV, figures as PNG
and SVG, and ``analysis.md`` / ``analysis.html`` beside the run's ``report.md``."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from forgetbench.reporting.figures import OKABE_ITO
from forgetbench.reporting.render import Report, Section, to_html, to_markdown
from forgetbench.reporting.report import ANALYSIS_DIR, written_whole

RECOVERY_TEXT = (
    "A copy of the final model trained for a few steps on a slice of each dropped task's own data (held "
    "apart from the items scored), then rescored. recovered share = (after probe − final) / (reference − "
    "final) on the scored items, 95% paired bootstrap interval; spurious (task alignment lost) when it "
    "reaches the threshold, real (knowledge lost) below it. base after probe: the same probe on the base "
    "model, which forgot nothing: what the probe teaches by itself (a probe that lifts the base well above "
    "its reference teaches, and a share above 1 says so)."
)
WHERE_TEXT = (
    "Per module group: rel. change = ||W_final − W_base|| / ||W_base||; alone = the general score of the "
    "base with only this group fine-tuned; restored = the fine-tuned model with only this group put back "
    "to the base; share of loss restored = (restored − final) / (base − final). The general score is the "
    "mean headline score of the suite's general tasks."
)
DRIFT_TEXT = (
    "Linear CKA between each layer's representation of the general items (mean hidden state over the "
    "prompt) at each step and before the stream: 1 = the same geometry, lower = drifted."
)


def recovery_figure(table: pd.DataFrame, threshold: float) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(table), 3.4))
    x = range(len(table))
    share = table["recovered share"]
    errors = [share - table["share low"], table["share high"] - share]
    colors = [OKABE_ITO[2] if r == "spurious" else OKABE_ITO[3] for r in table["reads as"]]
    ax.bar(x, share, yerr=errors, color=colors, capsize=4)
    ax.axhline(threshold, color="grey", linestyle=":", label=f"spurious at ≥ {threshold:g}")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(list(x), table["eval_task"], rotation=30, ha="right")
    ax.set_ylabel("share of the drop recovered")
    ax.set_title("Recovery probe (95% intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def drift_figure(table: pd.DataFrame) -> plt.Figure:
    grid = table.pivot(index="layer", columns="step", values="cka").reindex(table["layer"].unique())
    fig, ax = plt.subplots(figsize=(1.5 + 0.7 * grid.shape[1], 0.8 + 0.32 * grid.shape[0]))
    image = ax.imshow(grid.to_numpy(), cmap="viridis", vmin=min(0.5, float(grid.min().min())), vmax=1, aspect="auto")
    ax.set_xticks(range(grid.shape[1]), [str(c) for c in grid.columns])
    ax.set_yticks(range(grid.shape[0]), grid.index)
    for (i, j), value in pd.DataFrame(grid.to_numpy()).stack().items():
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.8 else "black")
    ax.set_xlabel("step (tasks fine-tuned)")
    ax.set_title("Drift: linear CKA with the base model, per layer")
    fig.colorbar(image, ax=ax, label="CKA")
    fig.tight_layout()
    return fig


def write_analysis(report_dir: Path, run: str, tables: dict[str, pd.DataFrame], threshold: float) -> Path:
    """Write the section for the analyses in ``tables`` (recovery, where, drift); returns analysis.md's path."""
    out = report_dir / ANALYSIS_DIR
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    if "recovery" in tables and not tables["recovery"].empty:
        figures["recovery"] = recovery_figure(tables["recovery"], threshold)
    if "drift" in tables and not tables["drift"].empty:
        figures["drift"] = drift_figure(tables["drift"])
    for name, figure in figures.items():
        for kind, options in (("png", {"dpi": 130}), ("svg", {})):
            with written_whole(out / f"{name}.{kind}") as tmp:
                figure.savefig(tmp, format=kind, bbox_inches="tight", **options)
        plt.close(figure)
    for name, table in tables.items():
        with written_whole(out / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False)
    report = Report(f"When and why {run} forgot")
    if "recovery" in tables:
        title = "Recovery probe: spurious or real forgetting"
        report.sections.append(Section(title, RECOVERY_TEXT, tables["recovery"]))
        if "recovery" in figures:
            report.sections.append(Section("Recovered share per task", figure="recovery.png"))
    if "where" in tables:
        report.sections.append(Section("Where: module groups", WHERE_TEXT, tables["where"]))
    if "drift" in tables:
        report.sections.append(Section("Drift: representations against the base", DRIFT_TEXT, figure="drift.png"))
    with written_whole(out / "analysis.md") as tmp:
        tmp.write_text(to_markdown(report))
    with written_whole(out / "analysis.html") as tmp:
        tmp.write_text(to_html(report, out))
    return out / "analysis.md"
