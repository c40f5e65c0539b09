"""Choose every method's learning rate and main knob by one search on the stream's validation items.

    python experiments/tune_methods.py [--methods full lora ...] [--jobs 2] [--write] [overrides ...]

The same search for every method, at the same training budget (the default's steps per task),
seed 0, with the stream tasks' validation items scored instead of their test items
(``stream.held_out=validation``):
  1. the learning rate over LRS, the method's knob at its config default; while the best is the
     largest (smallest) tried, the next larger (smaller) one on LADDER, 1e-5 to 3e-2;
  2. at the chosen learning rate, the knob's other values in KNOBS[method] (``full`` has none).
The criterion is the stream's final average accuracy on the validation items,
ACC = mean over stream tasks of acc after the last step (Lopez-Paz & Ranzato 2017):
what a user tuning a method for its stream would maximise. The general suite, where
forgetting is measured, plays no part in the choice. Ties go to the smaller lr and to the
knob's default.

Prints one table (every run: method, lr, knob, validation ACC, and beside it LA and the general
suite's mean drop, which show each method's learning-forgetting trade-off across the grid). ``--write`` writes
the chosen values to ``conf/experiment/tiny_world_methods/<method>.yaml``, which
``experiments/sweep_methods.sh`` runs over seeds. About 40 minutes for the 13 methods on 2 cores with ``--jobs 2``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forgetbench.metrics import score_matrix, stream_order  # noqa: E402
from forgetbench.results import GENERAL, read_results  # noqa: E402

LADDER = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2]  # the learning rates a search may reach
LRS = LADDER[2:6]  # tried for every method; the search goes on along LADDER while the best is at an edge
# each method's main knob: (config key, its config default, the other values tried); adapter
# methods keep alpha = 2·r
KNOBS: dict[str, tuple[str, object, list]] = {
    "full": ("", None, []),
    "lora": ("method.lora.r", 8, [2, 32]),
    "adapters": ("method.lora.r", 8, [2, 32]),
    "olora": ("method.strength", 0.5, [0.1, 2.0]),
    "replay": ("method.ratio", 0.2, [0.1, 0.4]),
    "ewc": ("method.strength", 100.0, [10.0, 1000.0]),
    "l2sp": ("method.strength", 0.01, [0.001, 0.1]),
    "wise": ("method.alpha", 0.5, [0.3, 0.7]),
    "merge": ("method.operator", "ties", ["task_arithmetic", "dare", "magmax"]),
    "lwf": ("method.strength", 1.0, [0.3, 3.0]),
    "agem": ("method.memory_per_task", 100, [30, 300]),
    "ilora": ("method.consistency", 1.0, [0.0, 0.1]),
    "sdft": ("method.keep", "containing", ["all"]),
}
CONF_OUT = ROOT / "conf" / "experiment" / "tiny_world_methods"


def knob_overrides(method: str, value) -> list[str]:
    key = KNOBS[method][0]
    if value is None:
        return []
    if key == "method.lora.r":
        return [f"{key}={value}", f"method.lora.alpha={2 * value}"]
    return [f"{key}={value}"]


def validation_run(root: Path, cache: Path, method: str, lr: float, knob, overrides: list[str], threads: int) -> dict:
    """One run on the validation items: its final average stream accuracy (``acc``, the criterion),
    and, beside it but never used for the choice, the stream's learning accuracy (``la``: each
    task's validation accuracy at its own step) and the general suite's mean drop in points."""
    name = f"{method}-lr{lr:g}-{knob}"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "forgetbench", f"method={method}", f"train.lr={lr}", "stream.held_out=validation"]
    command += [f"paths.root_dir={root}", f"paths.cache_dir={cache}", f"run_name={name}", "experiment_name=tune"]
    subprocess.run(
        command + knob_overrides(method, knob) + overrides, cwd=ROOT, check=True, capture_output=True, env=env
    )
    rows = read_results(root / "results" / "tune" / name)
    stream = score_matrix(rows, "acc", "stream")[stream_order(rows)]
    general = score_matrix(rows, "acc", GENERAL)
    last = stream.index.max()
    return {
        "acc": float(stream.loc[last].mean()),
        "la": float(sum(stream.iloc[step, i] for i, step in enumerate(range(1, last + 1))) / last),
        "general drop": float(100 * (general.loc[0] - general.loc[last]).mean()),
    }


def search(method: str, run) -> list[dict]:
    """The two stages of the search for one method; each row one run."""
    key, default, others = KNOBS[method]
    name = key.split(".")[-1]
    knob = f"{name}={default}" if key else ""
    rows = [{"method": method, "lr": lr, "knob": knob, "value": default, **run(method, lr, None)} for lr in LRS]
    best = max(rows, key=lambda r: (r["acc"], -r["lr"]))
    while (beyond := _beyond_edge(best["lr"], [r["lr"] for r in rows])) is not None:
        rows.append({"method": method, "lr": beyond, "knob": knob, "value": default, **run(method, beyond, None)})
        best = max(rows, key=lambda r: (r["acc"], -r["lr"]))
    n_lr = len(rows)
    for value in others:
        rows.append(
            {
                "method": method,
                "lr": best["lr"],
                "knob": f"{name}={value}",
                "value": value,
                **run(method, best["lr"], value),
            }
        )
    at_best_lr = [best] + rows[n_lr:]
    chosen = max(at_best_lr, key=lambda r: (r["acc"], -_distance(r["value"], default)))
    chosen["chosen"] = True
    return rows


def _distance(value, default) -> float:
    """How far a knob's value is from its default (ties on the criterion go to the nearer): numbers by
    difference, a choice (merge's operator) 0 for the default and 1 otherwise."""
    if isinstance(value, str) or isinstance(default, str):
        return float(value != default)
    return abs(float(value or 0) - float(default or 0))


def _beyond_edge(best: float, tried: list[float]) -> float | None:
    """The next learning rate along LADDER past the tried ones, when the best is the largest or the
    smallest tried (the optimum may lie outside); None when it is inside, or the ladder ends."""
    index = LADDER.index(best)
    if best == max(tried) and index + 1 < len(LADDER):
        return LADDER[index + 1]
    if best == min(tried) and index > 0:
        return LADDER[index - 1]
    return None


def write_config(method: str, lr: float, value, acc: float) -> None:
    header = [
        "# @package _global_",
        f"# {method} on the tiny world with the learning rate and knob chosen by experiments/tune_methods.py",
        f"# (validation ACC {acc:.3f}, seed 0); written by `python experiments/tune_methods.py --write`.",
        f"#   python -m forgetbench experiment=tiny_world_methods/{method}",
        "defaults:",
        f"  - override /method: {method}",
    ]
    body = OmegaConf.from_dotlist(
        ["experiment_name=tiny_world_methods", f"train.lr={lr:g}", *knob_overrides(method, value)]
    )
    CONF_OUT.mkdir(exist_ok=True)
    (CONF_OUT / f"{method}.yaml").write_text("\n".join(header) + "\n" + OmegaConf.to_yaml(body))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=list(KNOBS), help=f"among {list(KNOBS)}")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (one CPU thread each when > 1)")
    parser.add_argument("--write", action="store_true", help="write the chosen values to conf/experiment/")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides passed to every run")
    args = parser.parse_args()
    unknown = sorted(set(args.methods) - set(KNOBS))
    if unknown:
        parser.error(f"--methods {unknown} unknown; valid: {list(KNOBS)}")
    folder = Path(tempfile.mkdtemp(prefix="forgetbench-tune-"))
    threads = 1 if args.jobs > 1 else 2

    def run(method, lr, knob):
        return validation_run(folder, folder / "cache", method, lr, knob, args.overrides, threads)

    subprocess.run(  # the world and base model once, before runs share the cache
        [
            sys.executable,
            "-m",
            "forgetbench",
            f"paths.root_dir={folder / 'warm'}",
            f"paths.cache_dir={folder / 'cache'}",
            "train.steps=1",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda m: search(m, run), args.methods))
    table = pd.DataFrame([row for rows in results for row in rows]).drop(columns="value", errors="ignore")
    table["chosen"] = table.get("chosen", False).fillna(False).map({True: "<-", False: ""})
    print(f"validation ACC (final average stream accuracy), seed 0; overrides: {args.overrides or 'none'}")
    table["lr"] = table["lr"].map("{:g}".format)
    print(table.round(3).to_string(index=False))
    if args.write:
        for rows in results:
            chosen = next(r for r in rows if r.get("chosen"))
            value = None if chosen["value"] == KNOBS[chosen["method"]][1] else chosen["value"]
            write_config(chosen["method"], chosen["lr"], value, chosen["acc"])
        print(f"written: {CONF_OUT.relative_to(ROOT)}/<method>.yaml")


if __name__ == "__main__":
    main()
