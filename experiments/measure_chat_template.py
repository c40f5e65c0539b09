"""Benchmark: how much of a chat model's measured forgetting is format? SmolLM2 with and without its template.

    python experiments/measure_chat_template.py [--keep DIR] [overrides ...]

Runs ``python -m forgetbench experiment=smollm2_chat`` three times (the same stream, steps and
items; seed 0), the real CLI each time:

- template: fine-tuned and evaluated through SmolLM2's own chat template (``model.chat_template=auto``);
- plain: fine-tuned and evaluated on plain text (``model.chat_template=none``), as forgetbench did
  before chat templates;
- plain, read through template: the plain-text fine-tune, evaluated through the template
  (``eval.apply_chat_template=true``): what plain-text fine-tuning did to the chat format.

Prints one table, a row per run and measure: before the stream, after it, and the change with its
95% paired bootstrap interval over items (resampling the same items at both points): MMLU cloze acc
(114 items, 2 per subject), the word perplexity of 40 real texts (MMLU questions with their right
answers; the change as a ratio) and turn_end (does the model end its turn right after a complete
answer: 100 items). Also each run's wall time. Intervals that contain zero (or 1 for a ratio) mean
no change measured at this size.
"""

from __future__ import annotations

import argparse
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

from forgetbench.evaluation.mmlu_offline import round_robin, shipped_items  # noqa: E402
from forgetbench.reporting.bootstrap import bootstrap_intervals  # noqa: E402
from forgetbench.results import read_items  # noqa: E402

ARMS = {
    "template": ["model.chat_template=auto"],
    "plain": ["model.chat_template=none"],
    "plain, read through template": ["model.chat_template=none", "eval.apply_chat_template=true"],
}
CLOZE = "mmlu_offline_cloze"
TEXT = "mmlu_offline_text"


def run_arm(root: Path, cache: Path, overrides: list[str], extra: list[str]) -> tuple[Path, float]:
    command = [sys.executable, "-m", "forgetbench", "experiment=smollm2_chat", f"paths.root_dir={root}"]
    command += [f"paths.cache_dir={cache}", *overrides, *extra]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    [run_dir] = [p.parent for p in (root / "results").rglob("results.parquet")]
    return run_dir, seconds


def pooled_cloze(items: pd.DataFrame) -> pd.DataFrame:
    """The cloze group's subject tasks as one task (doc ids made unique per subject)."""
    cloze = items[items["eval_task"].str.startswith(f"{CLOZE}_")].copy()
    cloze["doc_id"] = cloze["eval_task"] + ":" + cloze["doc_id"].astype(str)
    cloze["eval_task"] = CLOZE
    return cloze


def acc_change(items: pd.DataFrame, task: str) -> tuple[float, float, float, float, float]:
    """(before, after, change, change low, change high) of acc: the report's paired bootstrap."""
    intervals = bootstrap_intervals(items.assign(run="r"))
    rows = intervals[intervals["eval_task"] == task].sort_values("step")
    first, last = rows.iloc[0], rows.iloc[-1]
    # the report's drop is start - step; the change is its negative
    return first["score"], last["score"], -last["drop"], -last["drop_high"], -last["drop_low"]


def perplexity_change(
    items: pd.DataFrame, draws: int = 1000, seed: int = 0
) -> tuple[float, float, float, float, float]:
    """Word perplexity before and after, and their ratio with a paired bootstrap interval over texts."""
    text = items[items["eval_task"] == TEXT]
    texts = round_robin(shipped_items())
    words = {
        i: len(re.split(r"\s+", f"{t['question'].strip()} {t['choices'][t['answer']]}")) for i, t in enumerate(texts)
    }
    steps = sorted(text["step"].unique())
    matrix = text.pivot_table(index="doc_id", columns="step", values="loglik", aggfunc="first").dropna()
    counts = np.array([words[d] for d in matrix.index], dtype=float)
    ll = matrix[[steps[0], steps[-1]]].to_numpy()
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(ll), size=(draws, len(ll)))
    ppl = np.exp(-ll[picks].sum(axis=1) / counts[picks].sum(axis=1)[:, None])  # draws × 2
    before, after = np.exp(-ll.sum(axis=0) / counts.sum())
    low, high = np.percentile(ppl[:, 1] / ppl[:, 0], [2.5, 97.5])
    return before, after, after / before, low, high


def table(run_dir: Path, label: str, seconds: float) -> list[dict]:
    items = read_items(run_dir)
    items["loglik"] = items["logliks"].map(lambda v: v[0] if len(v) else np.nan)
    rows = []
    b, a, c, lo, hi = acc_change(pooled_cloze(items), CLOZE)
    rows.append(
        {"run": label, "measure": "MMLU cloze acc (114)", "before": b, "after": a, "change": c, "low": lo, "high": hi}
    )
    b, a, c, lo, hi = acc_change(items, "turn_end")
    rows.append(
        {"run": label, "measure": "turn_end acc (100)", "before": b, "after": a, "change": c, "low": lo, "high": hi}
    )
    b, a, c, lo, hi = perplexity_change(items)
    rows.append(
        {
            "run": label,
            "measure": "word perplexity (40 texts), after/before",
            "before": b,
            "after": a,
            "change": c,
            "low": lo,
            "high": hi,
        }
    )
    for row in rows:
        row["seconds"] = seconds
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder (default: a temporary one)")
    parser.add_argument("overrides", nargs="*", help="extra overrides for every run (e.g. train.steps=10)")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="measure-chat-"))
    cache = base / "cache"
    rows = []
    for label, overrides in ARMS.items():
        root = base / label.replace(", ", "-").replace(" ", "_")
        run_dir, seconds = run_arm(root, cache, overrides, args.overrides)
        print(f"{label}: {seconds:.0f} s ({run_dir})", flush=True)
        rows += table(run_dir, label, seconds)
    frame = pd.DataFrame(rows)
    print()
    print("| run | measure | before | after | change (95% CI) |")
    print("|---|---|---|---|---|")
    for r in frame.itertuples():
        ratio = "after/before" in r.measure
        change = (
            f"×{r.change:.3f} [{r.low:.3f}, {r.high:.3f}]"
            if ratio
            else f"{r.change:+.3f} [{r.low:+.3f}, {r.high:+.3f}]"
        )
        print(f"| {r.run} | {r.measure} | {r.before:.3f} | {r.after:.3f} | {change} |")
    print(
        f"\nruns in {base}; seconds per run: "
        + ", ".join(f"{k} {v:.0f}" for k, v in frame.groupby("run", sort=False)["seconds"].first().items())
    )


if __name__ == "__main__":
    main()
