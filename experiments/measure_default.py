"""Benchmark: the default experiment from scratch, over several seeds; prints times and forgetting.

    python experiments/measure_default.py [--seeds 5] [--jobs 1] [--cached-runs 3] [--keep DIR] [overrides ...]

Runs ``python -m forgetbench seed=0`` in a fresh temporary root (world generation
and base-model pretraining included: the cold time), again ``--cached-runs`` times with a
fresh results folder and the same cache (the cached time: a 2-core machine's timings vary by a
few seconds, so it is timed more than once), then seeds 1..N-1 from the cache
(``--jobs 2`` runs two at a time with one CPU thread each). Prints the times against the
issue's limits (cold ≤ 120 s, cached ≤ 30 s) and one table: per seed and as mean ± sd and
minimum over seeds, each general task's base and final score and drop, and each stream task's
gain at its own step and at the end; and whether the targets the tests rely on hold for every seed.
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

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forgetbench.metrics import score_matrix, stream_order  # noqa: E402
from forgetbench.results import GENERAL, read_results  # noqa: E402

CHANCE = 0.25  # every tiny-world task has 4 options


def timed_run(root: Path, cache: Path, overrides: list[str], threads: int | None = None) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    command = [sys.executable, "-m", "forgetbench", f"paths.root_dir={root}", f"paths.cache_dir={cache}", *overrides]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def seed_figures(rows: pd.DataFrame) -> dict[str, float]:
    """One run's numbers: general base/final/drop per task, stream gain at its step and at the end."""
    general = score_matrix(rows, "acc", GENERAL)
    stream = score_matrix(rows, "acc", "stream")[stream_order(rows)]
    last = general.index.max()
    figures = {}
    for task in general.columns:
        name = task.removeprefix("tiny_world_")
        figures[f"{name} base"] = general.loc[0, task]
        figures[f"{name} final"] = general.loc[last, task]
        figures[f"{name} drop (points)"] = 100 * (general.loc[0, task] - general.loc[last, task])
    for step, task in enumerate(stream.columns, start=1):
        name = task.removeprefix("stream_")
        figures[f"{name} gain at its step"] = stream.loc[step, task] - stream.loc[0, task]
        figures[f"{name} gain at the end"] = stream.loc[last, task] - stream.loc[0, task]
    return figures


def targets(table: pd.DataFrame) -> list[tuple[str, bool]]:
    """The default's stated targets, each checked on every seed (a column per seed)."""
    low = table.min(axis=1)
    stream_steps = [i for i in table.index if i.endswith("gain at its step")]
    stream_ends = [i for i in table.index if i.endswith("gain at the end")]
    bases = [i for i in table.index if i.endswith(" base")]
    return [
        ("base >= 0.6 on every general task", all(low[i] >= 0.6 for i in bases)),
        ("knowledge drop >= 15 points", low["knowledge drop (points)"] >= 15),
        (f"knowledge final >= chance + 0.15 ({CHANCE + 0.15:.2f})", low["knowledge final"] >= CHANCE + 0.15),
        ("every stream task learned at its step (gain >= 0.5)", all(low[i] >= 0.5 for i in stream_steps)),
        ("every stream task ends above its start", all(low[i] > 0 for i in stream_ends)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1")
    parser.add_argument("--jobs", type=int, default=1, help="cached seed runs at a time (one thread each when > 1)")
    parser.add_argument("--cached-runs", type=int, default=3, help="times to time the cached run of seed 0")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to every run")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="forgetbench-bench-"))
    cache = folder / "cache"
    cold = timed_run(folder / "cold", cache, ["seed=0", *args.overrides])
    cached = [timed_run(folder / f"cached{i}", cache, ["seed=0", *args.overrides]) for i in range(args.cached_runs)]
    threads = 1 if args.jobs > 1 else None
    with ThreadPoolExecutor(args.jobs) as pool:
        list(
            pool.map(
                lambda s: timed_run(folder / "seeds", cache, [f"seed={s}", *args.overrides], threads),
                range(1, args.seeds),
            )
        )
    runs = [folder / "cold" / "results"] + sorted((folder / "seeds" / "results").glob("*/*/"))
    table = pd.DataFrame({int(read_results(r)["seed"].iloc[0]): seed_figures(read_results(r)) for r in runs})
    table = table[sorted(table.columns)]
    summary = pd.DataFrame({"mean": table.mean(axis=1), "sd": table.std(axis=1), "min": table.min(axis=1)})

    cold_verdict = "within" if cold <= 120 else "OVER"
    print(f"cold run (world + pretraining + stream), seed 0: {cold:.1f} s ({cold_verdict} 120 s)")
    times, verdict = ", ".join(f"{t:.1f}" for t in cached), "within" if max(cached) <= 30 else "OVER"
    spread = f"median {np.median(cached):.1f}, max {max(cached):.1f}"
    print(f"cached runs (base model cached), seed 0: {times} s; {spread} ({verdict} 30 s)")
    print(f"overrides: {args.overrides or 'none (the default)'}; seeds 0..{args.seeds - 1}")
    print(pd.concat([table.add_prefix("seed "), summary], axis=1).round(3).to_string())
    for name, holds in targets(table):
        print(f"{'holds' if holds else 'FAILS'} for every seed: {name}")


if __name__ == "__main__":
    main()
