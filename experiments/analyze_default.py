"""When and why the default forgets, over seeds: evaluation inside each task, then `forgetbench analyze`.

    python experiments/analyze_default.py [--seeds 5] [--every 20] [--inside-limit null] [--keep DIR] [overrides ...]

Runs ``python -m forgetbench seed=S eval.every_steps=EVERY eval.inside_task_limit=null keep_checkpoint=all``
for each seed (the tiny-world default: 3 tasks of 200 optimizer steps; inner evaluations score every
item of each general task, as the boundary ones do), then ``forgetbench analyze`` on each run
(recovery probe, where, drift at their defaults), and prints one set of tables, mean ± sd over seeds:
  - when: the share of each task's drop of the mean general score already there after k optimizer
    steps of that task (k = every, 2·every, ...);
  - recovery: per dropped task, its reference, final and post-probe scores, the control (the base after
    the same probe), the recovered share, and on how many seeds it read as spurious;
  - where: per module group, its relative weight change and the share of the loss restoring it gives back;
  - drift: per layer, linear CKA with the base after the last task;
  - cost: seconds per run (training, evaluations inside the tasks), per analysis.
About 40 s a seed on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forgetbench.reporting.inside_task import inside_task_curves  # noqa: E402
from forgetbench.reporting.load import load_runs  # noqa: E402

RUN = "tiny_decoder-full-seed{seed}"


def forgetbench(args: list[str]) -> tuple[str, float]:
    """Run ``python -m forgetbench ARGS`` offline; its stderr and seconds."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "forgetbench", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"forgetbench {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return done.stderr, time.perf_counter() - start


def mean_sd(values) -> str:
    """Mean ± sd of the finite values (NaN: a seed with nothing to measure), with their count if some were not."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return "–"
    text = f"{finite.mean():.2f} ± {finite.std(ddof=1) if len(finite) > 1 else 0:.2f}"
    return text if len(finite) == len(values) else f"{text} (n={len(finite)})"


def when_table(run_dirs: list[Path]) -> pd.DataFrame:
    """Per task of the stream: the drop of the mean general score (over the general tasks, on the items the
    inner evaluations score) across the task, then the share of it already there after k optimizer steps
    (seeds on which the mean general score did not drop have no share)."""
    runs = load_runs(run_dirs)
    curves = inside_task_curves(runs.inside, runs.rows, runs.items)
    general = curves.groupby(["run", "step", "trained_task", "inner_step", "position"], as_index=False)["value"].mean()
    cells: dict[tuple[str, str], list[float]] = {}
    for (run, step), group in general[general["step"] > 0].groupby(["run", "step"]):
        previous = general[(general["run"] == run) & (general["step"] == step - 1)].sort_values("position")
        before, group = previous["value"].iloc[-1], group.sort_values("position")
        drop = before - group["value"].iloc[-1]
        task = f"{step} {group['trained_task'].iloc[0]}"
        cells.setdefault((task, "drop (points)"), []).append(100 * drop)
        for _, point in group.iterrows():
            share = (before - point["value"]) / drop if drop > 0 else np.nan
            cells.setdefault((task, f"share after {int(point['inner_step'])}"), []).append(share)
    table = pd.DataFrame([{"task": t, "row": r, "value": mean_sd(v)} for (t, r), v in cells.items()])
    return table.pivot(index="row", columns="task", values="value").reindex(list(dict.fromkeys(r for _, r in cells)))


def aggregate(frames: list[pd.DataFrame], by: str, columns: list[str]) -> pd.DataFrame:
    """Mean ± sd over seeds of ``columns``, per value of ``by``."""
    merged = pd.concat(frames)
    return merged.groupby(by, sort=False)[columns].agg(mean_sd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--every", type=int, default=20, help="eval.every_steps")
    parser.add_argument("--inside-limit", default="null", help="eval.inside_task_limit (default: every item)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary one)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="forgetbench-analyze-") as tmp:
        root = args.keep or Path(tmp)
        run_dirs, costs, recovery, where, drift = [], [], [], [], []
        for seed in range(args.seeds):
            inner = [f"eval.every_steps={args.every}", f"eval.inside_task_limit={args.inside_limit}"]
            overrides = [f"seed={seed}", *inner, "keep_checkpoint=all", *args.overrides]
            _, run_seconds = forgetbench([f"paths.root_dir={root}", *overrides])
            run_dir = root / "results" / "tiny_world" / RUN.format(seed=seed)
            log = (run_dir / "__main__.log").read_text()
            _, analyze_seconds = forgetbench(["analyze", str(run_dir)])
            inside = [float(s) for s in re.findall(r"evaluations inside the task took ([\d.]+)s", log)]
            training = [
                float(s) for s in re.findall(r"evaluations inside the task took [\d.]+s, training ([\d.]+)s", log)
            ]
            costs.append(
                {
                    "run s": run_seconds,
                    "training s": sum(training),
                    "inner eval s": sum(inside),
                    "analyze s": analyze_seconds,
                }
            )
            folder = run_dir / "report" / "analysis"
            recovery.append(pd.read_csv(folder / "recovery.csv"))
            where.append(pd.read_csv(folder / "where.csv"))
            drift.append(pd.read_csv(folder / "drift.csv"))
            run_dirs.append(run_dir)
            print(f"seed {seed}: run {run_seconds:.0f}s, analyze {analyze_seconds:.0f}s", flush=True)
        when = when_table(run_dirs)
    pd.set_option("display.width", 200)
    n = args.seeds
    print(f"\nWhen (share of each task's drop of the mean general score reached after k of its steps; {n} seeds)")
    print(when.to_string())
    merged = pd.concat(recovery)
    spurious = merged.groupby("eval_task", sort=False)["reads as"].agg(lambda r: f"{(r == 'spurious').sum()}/{len(r)}")
    columns = ["reference", "final", "after probe", "base after probe", "recovered share"]
    table = aggregate(recovery, "eval_task", columns).join(spurious.rename("spurious on"))
    print(f"\nRecovery probe (mean ± sd over the seeds on which the task dropped; {n} seeds)")
    print(table.to_string())
    print(f"\nWhere (mean ± sd over {n} seeds)")
    print(aggregate(where, "group", ["rel. change", "share of loss restored"]).to_string())
    last = [d[d["step"] == d["step"].max()] for d in drift]
    print(f"\nDrift: linear CKA with the base after the last task (mean ± sd over {n} seeds)")
    print(aggregate(last, "layer", ["cka"]).to_string())
    print(f"\nCost (seconds per seed, mean ± sd over {n} seeds)")
    print(pd.DataFrame(costs).agg(mean_sd).to_string())


if __name__ == "__main__":
    main()
