"""The report's figures: pure functions from tables to matplotlib Figures.

Okabe–Ito colours (colour-blind safe), labelled axes with units, sizes legible in print.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from forgetbench.metrics import LOWER_IS_BETTER, primary_scores, score_matrix, stream_order
from forgetbench.results import STREAM

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.prop_cycle": plt.cycler(color=OKABE_ITO)})


def _label(facts: pd.DataFrame, run: str) -> str:
    row = facts.loc[run]
    return f"{row['model']} · {row['method']} · s{row['seed']}"


def _task_grid(n_tasks: int, width: float) -> tuple[plt.Figure, np.ndarray]:
    """A figure of one panel per task, three to a row."""
    cols = min(3, n_tasks) or 1
    rows = -(-n_tasks // cols)
    return plt.subplots(rows, cols, figsize=(width * cols, 3.4 * rows), squeeze=False)


def _finish_grid(fig: plt.Figure, axes: np.ndarray, n_tasks: int, title: str) -> plt.Figure:
    """Blank the unused panels, put the legend in the first, title the figure."""
    for ax in list(axes.flat)[n_tasks:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def forgetting_curves(
    rows: pd.DataFrame, intervals: pd.DataFrame, facts: pd.DataFrame, tasks: list[str], metric: str | None = None
) -> plt.Figure:
    """Score against step per general eval task (``metric``; None: each task's headline), a line per
    run, with its 95% band; a metric whose rise is the loss (over_refusal) says so on its axis."""
    scored = primary_scores(rows) if metric is None else rows[rows["metric"] == metric]
    fig, axes = _task_grid(len(tasks), 4.2)
    for ax, task in zip(axes.flat, tasks):
        name = (
            scored.loc[scored["eval_task"] == task, "metric"].iloc[0]
            if (scored["eval_task"] == task).any()
            else "score"
        )
        for i, run in enumerate(facts.sort_values("n_params").index):
            scores = scored[(scored["run"] == run) & (scored["eval_task"] == task)].sort_values("step")
            color = OKABE_ITO[i % len(OKABE_ITO)]
            ax.plot(scores["step"], scores["value"], marker="o", color=color, label=_label(facts, run))
            band = intervals[(intervals["run"] == run) & (intervals["eval_task"] == task)].sort_values("step")
            if len(band):
                low, high = band["score_low"], band["score_high"]
                if name in LOWER_IS_BETTER:  # items are bootstrapped as goodness, 1 − the share
                    low, high = 1 - high, 1 - low
                ax.fill_between(band["step"], low, high, color=color, alpha=0.15)
        ax.set_title(task)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step (tasks fine-tuned)")
        ax.set_ylabel(f"{name} (fraction{', up is worse' if name in LOWER_IS_BETTER else ''})")
        ax.grid(alpha=0.3)
    return _finish_grid(fig, axes, len(tasks), "Forgetting curves (bands: 95% bootstrap intervals)")


def fg_by_size(points: pd.DataFrame) -> plt.Figure:
    """Luo et al.'s picture: FG (top) and final drop (bottom) against parameter count (log axis), per
    category, a line per architecture (and method, when several), each point a model's mean over its
    seeds with its 95% interval (:func:`forgetbench.reporting.seed_bootstrap.seed_intervals`)."""
    categories = sorted(points["category"].unique())
    several_methods = points["method"].nunique() > 1
    fig, axes = plt.subplots(
        2, max(1, len(categories)), figsize=(4.2 * max(1, len(categories)), 6.4), squeeze=False, sharex=True
    )
    for column, category in enumerate(categories):
        in_category = points[points["category"] == category]
        for i, ((arch, method), line) in enumerate(in_category.groupby(["architecture", "method"])):
            line = line.sort_values("n_params")
            label = f"{arch} · {method}" if several_methods else arch
            for row, metric in enumerate(("fg", "drop")):
                err = np.vstack([line[metric] - line[f"{metric}_low"], line[f"{metric}_high"] - line[metric]])
                axes[row, column].errorbar(
                    line["n_params"],
                    line[metric],
                    yerr=np.abs(err),
                    capsize=3,
                    color=OKABE_ITO[i % 8],
                    marker="o" if arch == "decoder" else "s",
                    label=label,
                )
        axes[0, column].set_title(category)
        axes[0, column].set_ylabel("FG (% mean relative drop)")
        axes[1, column].set_ylabel("final drop (points)")
        axes[1, column].set_xlabel("parameters (log scale)")
    sizes = sorted(points["n_params"].unique())
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator(sizes))  # a tick at each model's size, in millions
        ax.xaxis.set_major_formatter(FuncFormatter(lambda n, _: f"{n / 1e6:.2g}M"))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    seeds = points.groupby(["model", "method"])["seeds"].first()
    fig.suptitle(
        f"Forgetting against model size ({_seed_range(seeds)} a point; bars: 95% bootstrap over seeds and items)"
    )
    fig.tight_layout()
    return fig


def curves_by_architecture(curves: pd.DataFrame, points: pd.DataFrame, tasks: list[str]) -> plt.Figure:
    """Forgetting curves side by side per architecture: a row per general task, a line per model (its
    mean over seeds) coloured by size, the band its 95% interval over seeds and items."""
    facts = points.drop_duplicates(["model", "method"]).sort_values("n_params")
    architectures = sorted(facts["architecture"].unique())
    fig, axes = plt.subplots(
        len(tasks),
        len(architectures),
        figsize=(4.6 * len(architectures), 3.0 * len(tasks)),
        squeeze=False,
        sharey="row",
    )
    for column, arch in enumerate(architectures):
        models = facts[facts["architecture"] == arch]
        for row, task in enumerate(tasks):
            ax = axes[row, column]
            for i, model in enumerate(models.itertuples()):
                line = curves[(curves["model"] == model.model) & (curves["method"] == model.method)]
                line = line[line["eval_task"] == task].sort_values("step")
                color = OKABE_ITO[i % len(OKABE_ITO)]
                ax.plot(
                    line["step"],
                    line["score"],
                    marker="o",
                    color=color,
                    label=f"{model.model} ({model.n_params / 1e6:.2f}M)",
                )
                ax.fill_between(line["step"], line["score_low"], line["score_high"], color=color, alpha=0.15)
            ax.set_title(f"{arch} · {task}", fontsize=10)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("step (tasks fine-tuned)")
            ax.set_ylabel("acc (fraction)")
            ax.grid(alpha=0.3)
        axes[0, column].legend(fontsize=7)
    fig.suptitle("Forgetting curves per architecture (mean over seeds; bands: 95% bootstrap over seeds and items)")
    fig.tight_layout()
    return fig


def _seed_range(seeds: pd.Series) -> str:
    low, high = int(seeds.min()), int(seeds.max())
    return f"{low} seed{'s' if high > 1 else ''}" if low == high else f"{low}-{high} seeds"


def stream_heatmaps(rows: pd.DataFrame, facts: pd.DataFrame, metric: str = "acc", limit: int = 8) -> plt.Figure:
    """The stream accuracy matrix R[step][task] of each run (up to ``limit`` runs)."""
    runs = list(facts.index[:limit])
    cols = min(4, len(runs))
    fig, axes = plt.subplots(
        -(-len(runs) // cols), cols, figsize=(3.6 * cols, 3.2 * -(-len(runs) // cols)), squeeze=False
    )
    for ax, run in zip(axes.flat, runs):
        run_rows = rows[rows["run"] == run]
        matrix = score_matrix(run_rows, None, STREAM)[stream_order(run_rows)]
        stream_task_of = dict(zip(run_rows["eval_task"], run_rows["stream_task"]))
        image = ax.imshow(matrix.to_numpy(), vmin=0, vmax=1, cmap="cividis", aspect="auto")
        ax.set_xticks(range(len(matrix.columns)), [stream_task_of[c] for c in matrix.columns], rotation=30, fontsize=8)
        ax.set_yticks(range(len(matrix.index)), matrix.index)
        for (i, j), value in np.ndenumerate(matrix.to_numpy()):
            ax.text(
                j, i, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if value < 0.5 else "black"
            )
        ax.set_title(_label(facts, run), fontsize=9)
        ax.set_xlabel("stream task")
        ax.set_ylabel("after step")
    for ax in list(axes.flat)[len(runs) :]:
        ax.axis("off")
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8, label="score (acc, else ROUGE-L F1)")
    return fig


def method_comparison(tasks: pd.DataFrame, summary: pd.DataFrame) -> plt.Figure:
    """Per method: final drop of each general task (with its 95% interval), and the stream's final accuracy."""
    runs = summary.index
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    task_names = sorted(tasks["eval_task"].unique())
    width = 0.8 / max(1, len(task_names))
    labels = [f"{summary.loc[r, 'method']}" for r in runs]
    for k, task in enumerate(task_names):
        sub = tasks[tasks["eval_task"] == task].set_index("run").reindex(runs)
        x = np.arange(len(runs)) + k * width
        err = np.abs(np.vstack([sub["drop"] - sub["drop_low"], sub["drop_high"] - sub["drop"]])) * 100
        left.bar(x, sub["drop"] * 100, width, yerr=err, capsize=2, color=OKABE_ITO[k % 8], label=task)
    left.set_xticks(np.arange(len(runs)) + 0.4 - width / 2, labels, rotation=30)
    left.set_ylabel("final drop (points)")
    left.axhline(0, color="black", linewidth=0.8)
    left.legend(fontsize=7)
    left.set_title("General ability lost (lower is better)")
    if "stream_acc" in summary:
        right.bar(range(len(runs)), summary["stream_acc"], color=OKABE_ITO[2], label="ACC (final)")
        right.scatter(range(len(runs)), summary["stream_la"], color="black", zorder=3, label="LA (at its step)")
        right.set_xticks(range(len(runs)), labels, rotation=30)
        right.set_ylim(0, 1)
        right.set_ylabel("stream accuracy (fraction)")
        right.legend(fontsize=7)
        right.set_title("Stream tasks learned (higher is better)")
    fig.tight_layout()
    return fig


def inside_task_curves_figure(curves: pd.DataFrame, facts: pd.DataFrame) -> plt.Figure:
    """Each general task's score at optimizer-step resolution (``reporting.inside_task``), a line per
    run; dotted verticals mark the task boundaries, each task named above its span."""
    tasks = sorted(curves["eval_task"].unique())
    fig, axes = _task_grid(len(tasks), 4.6)
    for ax, task in zip(axes.flat, tasks):
        these = curves[curves["eval_task"] == task]
        for i, run in enumerate(these["run"].unique()):
            line = these[these["run"] == run].sort_values("position")
            label = _label(facts, run) if run in facts.index else run
            ax.plot(line["position"], line["value"], marker=".", color=OKABE_ITO[i % len(OKABE_ITO)], label=label)
        names = these.drop_duplicates("step").set_index("step")["trained_task"]
        for step in range(1, int(these["step"].max()) + 1):
            ax.axvline(step, color="grey", linestyle=":", linewidth=1)
            ax.text(step - 0.5, 1.0, names.get(step, ""), transform=ax.get_xaxis_transform(), ha="center", va="bottom")
        ax.set_title(task, pad=14)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("tasks fine-tuned (inner points: optimizer steps / task's steps)")
        ax.set_ylabel(f"{these['metric'].iloc[0]} on the inner items (fraction)")
        ax.grid(alpha=0.3)
    return _finish_grid(fig, axes, len(tasks), "Inside each task: the general score between task boundaries (dotted)")
