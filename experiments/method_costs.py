"""What each method costs while it trains, measured: peak memory and seconds per optimizer step. One table.

    python experiments/method_costs.py                    # the tiny world's decoder (0.84M), on this machine
    python experiments/method_costs.py --width 768 --layers 12   # a 113M-parameter Llama (SmolLM2's size): GPU

Each method runs the default stream (3 tasks) with its tuned config (conf/experiment/tiny_world_methods/),
seed 0, in a process of its own (a CPU's resident set cannot be shared fairly between jobs), and
``merge`` runs twice: on the full weights (tuned) and on per-task LoRA adapters (``method.adapters=true``).
Each task's log line ``step k/N: S optimizer steps in Xs (Y s/step), peak memory Z MiB (...)`` is read
(forgetbench/runner.py, forgetbench/memory.py) and the table gives, per method:

- peak MiB: the largest of the tasks' peaks. On a GPU the CUDA allocator's peak (weights, gradients,
  optimizer states, activations, every copy a method keeps on the GPU); on a CPU the process's peak
  resident set, libraries included;
- vs full: the difference from ``full``'s peak;
- s/step: training seconds per optimizer step, the mean over tasks 2..N (task 1 pays for warm-up);
  evaluation is not counted. sdft's rewriting and ewc's Fisher pass happen outside the steps and
  are in ``task s`` (the whole stream step: the method's work around training, the training, and the
  evaluation after it).

With ``--width``/``--layers`` the tiny world's decoder is built wider and deeper (random init, its
pretraining cut to one step): memory and time depend on the shapes, not on what the weights know.
Writes ``<out>/method_costs.md`` (the table) and keeps each run's log under ``<out>``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from forgetbench.reporting.render import markdown_table  # without tabulate (the GPU machine lacks it)

ROOT = Path(__file__).resolve().parents[1]
METHODS = "full lora adapters olora replay ewc l2sp wise merge lwf agem ilora sdft".split()
LINE = re.compile(
    r"step (\d+)/\d+: (\d+) optimizer steps in ([\d.]+)s \(([\d.]+) s/step\), peak memory ([\d,]+) MiB \(([^)]+)\)"
)
TASK_DONE = re.compile(r"step (\d+)/\d+ done in ([\d.]+)s")


def runs(args) -> list[tuple[str, list[str]]]:
    """(label, overrides) per job: every tuned method, and merge of LoRA adapters."""
    jobs = [(m, [f"experiment=tiny_world_methods/{m}"]) for m in args.methods]
    if "merge" in args.methods:
        jobs.append(("merge (adapters)", ["experiment=tiny_world_methods/merge", "method.adapters=true"]))
    return jobs


def shape_overrides(args) -> list[str]:
    common = [f"train.steps={args.steps}", f"eval.limit={args.eval_limit}"]
    common.append(f"stream.max_train_examples={args.examples}")
    if args.width is None:
        return common
    heads = max(1, args.width // 64)
    return common + [
        f"model.hidden_size={args.width}",
        f"model.num_layers={args.layers}",
        f"model.num_heads={heads}",
        f"model.ffn_size={4 * args.width}",
        "model.pretrain.steps=1",
        "model.pretrain.warmup_steps=0",
    ]


def run_one(label: str, overrides: list[str], args) -> Path:
    name = "cost-" + re.sub(r"\W+", "_", label).strip("_")
    command = [
        sys.executable,
        "-m",
        "forgetbench",
        *overrides,
        *shape_overrides(args),
        f"paths.root_dir={args.out}",
        *([f"paths.cache_dir={args.cache_dir}"] if args.cache_dir else []),
        "experiment_name=method_costs",
        f"run_name={name}",
        f"device={args.device}",
        "seed=0",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=os.environ | {"PYTHONUNBUFFERED": "1"})
    log = args.out / "results" / "method_costs" / name / "__main__.log"
    print(f"{label}: exit {done.returncode} in {time.perf_counter() - start:.0f}s", flush=True)
    if done.returncode != 0:
        print(done.stderr[-2000:], flush=True)
    return log


def read_costs(label: str, log: Path) -> dict:
    text = log.read_text() if log.exists() else ""
    tasks = [m.groups() for m in LINE.finditer(text)]
    whole = {int(s): float(t) for s, t in TASK_DONE.findall(text)}
    if not tasks:
        return {"method": label}
    later = [float(t[3]) for t in tasks if int(t[0]) > 1] or [float(t[3]) for t in tasks]
    return {
        "method": label,
        "peak MiB": max(int(t[4].replace(",", "")) for t in tasks),
        "s/step": sum(later) / len(later),
        "task s": sum(whole.values()) / max(len(whole), 1),
        "kind": tasks[0][5],
    }


def table(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows).set_index("method")
    if "full" in frame.index and "peak MiB" in frame:
        frame.insert(1, "vs full", frame["peak MiB"] - frame.loc["full", "peak MiB"])
        frame.insert(3, "time vs full", frame["s/step"] / frame.loc["full", "s/step"])
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=METHODS)
    parser.add_argument("--width", type=int, default=None, help="hidden size of a wider tiny decoder (random init)")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps per task")
    parser.add_argument("--eval-limit", type=int, default=32, help="items per eval task")
    parser.add_argument("--examples", type=int, default=256, help="training rows per task")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "method_costs")
    parser.add_argument("--cache-dir", type=Path, default=None, help="default: the project's cache")
    args = parser.parse_args()
    # one step of full first, unrecorded: the world and the model land in the cache, so no measured
    # process pays for building them (on a CPU that would inflate its resident set)
    run_one("warm-up", ["experiment=tiny_world_methods/full", "train.steps=1"], args)
    rows = []
    for label, overrides in runs(args):
        rows.append(read_costs(label, run_one(label, overrides, args)))
        frame = table(rows)
        (args.out / "method_costs.md").write_text(markdown_table(frame.round(3)) + "\n")
    print(markdown_table(table(rows).round(3)))


if __name__ == "__main__":
    main()
