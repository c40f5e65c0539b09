"""Benchmark: the tiny size ladder (3 sizes × 2 architectures) over several seeds; prints its times and one table.

    python experiments/measure_ladder.py [--seeds 5] [--jobs 2] [--keep DIR] [overrides ...]
    python experiments/measure_ladder.py --keep DIR --table-only     # the table of the runs kept in DIR again

Runs ``python -m forgetbench -m experiment=tiny_world_ladder seed=0`` in a fresh folder from an empty
cache (the world generated, the six shipped base models copied in: the cold time), again with a fresh
results folder and the same cache (the cached time, against the issue's 15 minutes), then seeds
1..N-1 (``--jobs 2``: two seeds' multiruns at a time, one CPU thread each). Prints one table, a row per
model: parameters; each general task's base score, its final score and final drop over the seeds (mean
± sd); FG and the final drop per category as the report computes them (mean over seeds, 95% bootstrap
over seeds and items); each stream task's gain at its own step (mean [min] over seeds); and whether
every base knows its world (each general task ≥ 0.6, tiny_encdec's knowledge ≥ 0.8) and learns every
stream task at its step (gain ≥ 0.5) on every seed. The report over every run is written to DIR/report.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from measure_default import seed_figures  # noqa: E402

from forgetbench.reporting.report import write_report  # noqa: E402
from forgetbench.results import read_results  # noqa: E402

EXPERIMENT = "tiny_world_ladder"
BARS = {"base": 0.6, "tiny_encdec knowledge": 0.8, "stream gain": 0.5}


def timed_ladder(root: Path, cache: Path, overrides: list[str], threads: int | None = None) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, "-m", "forgetbench", "-m", f"experiment={EXPERIMENT}"]
    command += [f"paths.root_dir={root}", f"paths.cache_dir={cache}", *overrides]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def per_seed(result_roots: list[Path]) -> pd.DataFrame:
    """A row per (model, seed): the run's figures (measure_default.seed_figures) and its facts."""
    records = []
    for run in sorted(r.parent for root in result_roots for r in root.rglob("results.parquet")):
        if run.name == "report":
            continue
        rows = read_results(run)
        first = rows.iloc[0]
        facts = {"model": first["model"], "architecture": first["architecture"], "n_params": first["n_params"]}
        records.append({**facts, "seed": int(first["seed"]), **seed_figures(rows)})
    return pd.DataFrame(records)


def ladder_table(seeds: pd.DataFrame, sizes: pd.DataFrame) -> pd.DataFrame:
    """A row per model: each general task's base, final (mean ± sd) and final drop in points (mean ± sd
    over seeds); FG and the report's drop per category with their 95% intervals; each stream task's gain
    at its own step, mean [min] over seeds."""
    table = seeds.groupby(["architecture", "n_params", "model"]).agg(seeds=("seed", "nunique")).reset_index()
    table = table.set_index("model")
    grouped = seeds.groupby("model")  # every column below is a Series indexed by model: aligned, not positional

    def spread(column: str, digits: int) -> pd.Series:
        mean, sd = grouped[column].mean(), grouped[column].std().fillna(0)
        return pd.Series({m: f"{mean[m]:.{digits}f} ± {sd[m]:.{digits}f}" for m in mean.index})

    for task in ("knowledge", "continuation", "reading"):
        table[f"{task} base"] = grouped[f"{task} base"].first().round(3)
        table[f"{task} final"] = spread(f"{task} final", 3)
        table[f"{task} final drop"] = spread(f"{task} drop (points)", 1)
    for point in sizes.itertuples():
        for name in ("fg", "drop"):
            value, low, high = getattr(point, name), getattr(point, f"{name}_low"), getattr(point, f"{name}_high")
            table.loc[point.model, f"{name} {point.category}"] = f"{value:.1f} [{low:.1f}, {high:.1f}]"
    for gain in [c for c in seeds.columns if c.endswith("gain at its step")]:
        mean, low = grouped[gain].mean(), grouped[gain].min()
        table[gain] = pd.Series({m: f"{mean[m]:+.2f} [{low[m]:+.2f}]" for m in mean.index})
    return table.reset_index().sort_values(["architecture", "n_params"])


def bars_hold(seeds: pd.DataFrame) -> list[tuple[str, bool]]:
    bases = [c for c in seeds.columns if c.endswith(" base")]
    gains = [c for c in seeds.columns if c.endswith("gain at its step")]
    encdec = seeds[seeds["model"] == "tiny_encdec"]
    return [
        (f"every base >= {BARS['base']} on every general task", bool((seeds[bases] >= BARS["base"]).all().all())),
        (
            f"tiny_encdec's knowledge >= {BARS['tiny_encdec knowledge']}",
            bool((encdec["knowledge base"] >= BARS["tiny_encdec knowledge"]).all()),
        ),
        (
            f"every stream task learned at its step (gain >= {BARS['stream gain']}) by every model on every seed",
            bool((seeds[gains] >= BARS["stream gain"]).all().all()),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--jobs", type=int, default=1, help="seeds' multiruns at a time (one thread each when > 1)")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    parser.add_argument("--table-only", action="store_true", help="no runs: the table of those kept in --keep DIR")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to every run")
    args = parser.parse_args()
    if args.table_only and not args.keep:
        parser.error("--table-only needs --keep DIR, the folder of an earlier measurement")
    folder = args.keep or Path(tempfile.mkdtemp(prefix="forgetbench-ladder-"))
    if not args.table_only:
        run_ladders(folder, args.seeds, args.jobs, args.overrides)
    roots = [folder / "cold" / "results", *(folder / f"seed{s}" / "results" for s in range(1, args.seeds))]
    if missing := [str(root) for root in roots if not any(root.rglob("results.parquet"))]:
        parser.error(f"no runs in {', '.join(missing)}: measure first (without --table-only), or give --seeds as kept")
    write_report(roots, folder / "report")
    seeds = per_seed(roots)
    sizes = pd.read_csv(folder / "report" / "size_summary.csv")
    print(f"overrides: {args.overrides or 'none'}; seeds 0..{args.seeds - 1}; runs in {folder}")
    with pd.option_context("display.width", 400, "display.max_columns", 40):
        print(ladder_table(seeds, sizes).to_string(index=False))
    for name, holds in bars_hold(seeds):
        print(f"{'holds' if holds else 'FAILS'}: {name}")


def run_ladders(folder: Path, seeds: int, jobs: int, overrides: list[str]) -> None:
    """Seed 0 cold and again cached (timed, printed), then seeds 1..N-1, ``jobs`` at a time."""
    cache = folder / "cache"
    cold = timed_ladder(folder / "cold", cache, ["seed=0", *overrides])
    print(f"cold ladder run (world + six shipped bases copied + 6 runs), seed 0: {cold:.1f} s", flush=True)
    cached = timed_ladder(folder / "cached", cache, ["seed=0", *overrides])
    verdict = "within" if cached <= 900 else "OVER"
    print(f"cached ladder run (6 runs one after another), seed 0: {cached:.1f} s ({verdict} 900 s)", flush=True)
    threads = 1 if jobs > 1 else None
    with ThreadPoolExecutor(jobs) as pool:
        seed_roots = [folder / f"seed{s}" for s in range(1, seeds)]
        seed_overrides = [[f"seed={s}", *overrides] for s in range(1, seeds)]
        list(pool.map(lambda a: timed_ladder(a[0], cache, a[1], threads), zip(seed_roots, seed_overrides)))


if __name__ == "__main__":
    main()
