"""Benchmark: run the default experiment from scratch and print its time and forgetting.

    python experiments/measure_default.py [--keep DIR] [-- extra overrides]

Runs ``python -m forgetbench`` in a fresh temporary root (so world generation and
base-model pretraining are included), then runs it again with a fresh results
folder but the same cache (the second-run time: base model cached). Prints
wall times, the knowledge score at step 0 and at the end, and the drop.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forgetbench.metrics import forgetting_table, score_matrix  # noqa: E402
from forgetbench.results import read_results  # noqa: E402


def timed_run(root: Path, cache: Path, overrides: list[str]) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-m", "forgetbench", f"paths.root_dir={root}", f"paths.cache_dir={cache}", *overrides]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to both runs")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="forgetbench-bench-"))
    cache = folder / "cache"
    cold = timed_run(folder / "cold", cache, args.overrides)
    warm = timed_run(folder / "warm", cache, args.overrides)
    rows = read_results(folder / "cold" / "results")
    table = forgetting_table(rows)
    stream = score_matrix(rows, "acc", "stream")
    print(f"wall time, first run (world + pretraining + stream): {cold:.1f} s")
    print(f"wall time, second run (base model cached):          {warm:.1f} s")
    for task, row in table.iterrows():
        print(
            f"{task:26s} base {row.start:.3f}  final {row.final:.3f}  drop {100 * row['drop']:.1f} points "
            f"({row.drop_pct:.1f}%)  FG {row.fg:.1f}"
        )
    print("stream accuracy matrix (row: after step, column: task):")
    print(stream.round(3).to_string())


if __name__ == "__main__":
    main()
