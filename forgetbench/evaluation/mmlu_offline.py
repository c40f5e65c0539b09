"""MMLU offline: a stratified subset of MMLU's test set shipped in the package, as lm-eval tasks.

The items (``data/mmlu_offline/test.jsonl``: 20 per subject, 1,140 in all; written by
``experiments/ship_mmlu_subset.py``, whose source and license sit beside them) are scored in
lm-eval's two forms, grouped by lm-eval's four categories as its ``mmlu`` group is:

- ``mmlu_offline_letters``: lm-eval's ``mmlu`` prompt (the options in the prompt, a letter as the
  answer). On a small model it measures letter preference: SmolLM2-135M answers "A" on ~99% of items;
- ``mmlu_offline_cloze``: lm-eval's ``mmlu_continuation`` form (the four answer texts scored after
  "Answer:"), ``acc`` and ``acc_norm``: what a small model needs;
- ``mmlu_offline_text``: the perplexity of each question followed by its right answer, read as
  plain text (lm-eval's ``loglikelihood_rolling``: word and byte perplexity, bits per byte): real
  English across 57 subjects, on which even a model at chance on the questions is above its floor.

lm-eval reads a local file only by an absolute path (relative ones are taken from the working
directory), so the ``eval=mmlu_offline`` factory writes the per-subject files and task YAMLs into
the cache once per shipped data (atomically: parallel jobs share it) and returns an ordinary
:class:`~forgetbench.evaluation.suite.EvalSuite` with that folder on its include path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import yaml
from filelock import FileLock

from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.task_configs import TASKS_DIR
from forgetbench.jsonl import read_jsonl, write_jsonl

DATA_DIR = Path(__file__).resolve().parent / "data" / "mmlu_offline"
DATA_FILE = "test.jsonl"
FORMS = ("letters", "cloze")
CATEGORIES = ("stem", "humanities", "social_sciences", "other")
# lm-eval's tasks/mmlu/_generate_configs.py: each subject's category
SUBJECT_CATEGORIES = {
    "abstract_algebra": "stem",
    "anatomy": "stem",
    "astronomy": "stem",
    "business_ethics": "other",
    "clinical_knowledge": "other",
    "college_biology": "stem",
    "college_chemistry": "stem",
    "college_computer_science": "stem",
    "college_mathematics": "stem",
    "college_medicine": "other",
    "college_physics": "stem",
    "computer_security": "stem",
    "conceptual_physics": "stem",
    "econometrics": "social_sciences",
    "electrical_engineering": "stem",
    "elementary_mathematics": "stem",
    "formal_logic": "humanities",
    "global_facts": "other",
    "high_school_biology": "stem",
    "high_school_chemistry": "stem",
    "high_school_computer_science": "stem",
    "high_school_european_history": "humanities",
    "high_school_geography": "social_sciences",
    "high_school_government_and_politics": "social_sciences",
    "high_school_macroeconomics": "social_sciences",
    "high_school_mathematics": "stem",
    "high_school_microeconomics": "social_sciences",
    "high_school_physics": "stem",
    "high_school_psychology": "social_sciences",
    "high_school_statistics": "stem",
    "high_school_us_history": "humanities",
    "high_school_world_history": "humanities",
    "human_aging": "other",
    "human_sexuality": "social_sciences",
    "international_law": "humanities",
    "jurisprudence": "humanities",
    "logical_fallacies": "humanities",
    "machine_learning": "stem",
    "management": "other",
    "marketing": "other",
    "medical_genetics": "other",
    "miscellaneous": "other",
    "moral_disputes": "humanities",
    "moral_scenarios": "humanities",
    "nutrition": "other",
    "philosophy": "humanities",
    "prehistory": "humanities",
    "professional_accounting": "other",
    "professional_law": "humanities",
    "professional_medicine": "other",
    "professional_psychology": "social_sciences",
    "public_relations": "social_sciences",
    "security_studies": "social_sciences",
    "sociology": "social_sciences",
    "us_foreign_policy": "social_sciences",
    "virology": "other",
    "world_religions": "humanities",
}


def shipped_items() -> list[dict]:
    """The shipped items: subject, category, question, choices (4), answer (index)."""
    return read_jsonl(DATA_DIR / DATA_FILE)


def round_robin(items: list[dict]) -> list[dict]:
    """The items one subject after another in turn (the first of each subject, then the second, ...):
    any first N of them spread over the subjects, as lm-eval's ``limit`` takes the first N."""
    by_subject: dict[str, list[dict]] = {}
    for item in items:
        by_subject.setdefault(item["subject"], []).append(item)
    rounds = max(len(rows) for rows in by_subject.values())
    return [rows[i] for i in range(rounds) for _, rows in sorted(by_subject.items()) if i < len(rows)]


def turn_end_rows(end: str) -> list[dict]:
    """Rows of task ``turn_end`` (``eval.turn_end``): each shipped question as the prompt, "The answer
    is <right choice>." as the response, ``end`` (the model's end-of-turn token) as what should follow;
    spread over the subjects."""
    return [
        {
            "prompt": item["question"].strip(),
            "response": f"The answer is {item['choices'][item['answer']].strip().rstrip('.')}.",
            "end": end,
        }
        for item in round_robin(shipped_items())
    ]


def task_name(form: str, part: str | None = None) -> str:
    """``mmlu_offline_<form>``, or its task or group for ``part`` (a subject or a category)."""
    return f"mmlu_offline_{form}" + (f"_{part}" if part else "")


def write_tasks(cache_dir: str | Path) -> Path:
    """The task folder for the shipped items (written on first use), keyed by their content and
    the templates'."""
    data = (DATA_DIR / DATA_FILE).read_bytes()
    templates = b"".join((TASKS_DIR / f"_mmlu_offline_{form}.yaml").read_bytes() for form in FORMS)
    key = hashlib.sha256(data + templates + str(TASKS_DIR).encode()).hexdigest()[:12]
    folder = Path(cache_dir) / "tasks" / f"mmlu_offline-{key}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(folder.with_name(f".{folder.name}.lock")):
        if not folder.is_dir():
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
            try:
                _write_tasks_into(tmp, folder)
                os.replace(tmp, folder)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _write_tasks_into(tmp: Path, final: Path) -> None:
    """Per-subject data files and task YAMLs (naming files by their final path), category groups,
    one group per form, and the text task."""
    items = shipped_items()
    subjects = sorted({item["subject"] for item in items})
    for subject in subjects:
        write_jsonl(tmp / f"{subject}.jsonl", [item for item in items if item["subject"] == subject])
    write_jsonl(tmp / "all.jsonl", round_robin(items))
    for form in FORMS:
        metrics = ["acc", "acc_norm"] if form == "cloze" else ["acc"]
        aggregate = [{"metric": m, "weight_by_size": True} for m in metrics]
        for subject in subjects:
            _dump(
                tmp,
                {
                    "task": task_name(form, subject),
                    "task_alias": subject,
                    "include": str(TASKS_DIR / f"_mmlu_offline_{form}.yaml"),
                    "dataset_kwargs": {"data_files": {"test": str(final / f"{subject}.jsonl")}},
                    "description": _description(form, subject),
                },
            )
        for category in CATEGORIES:
            members = [task_name(form, s) for s in subjects if SUBJECT_CATEGORIES[s] == category]
            _dump(tmp, _group(task_name(form, category), members, aggregate, alias=category))
        _dump(tmp, _group(task_name(form), [task_name(form, c) for c in CATEGORIES], aggregate))
    _dump(
        tmp,
        {
            "task": task_name("text"),
            "include": str(TASKS_DIR / "_mmlu_offline_text.yaml"),
            "dataset_kwargs": {"data_files": {"test": str(final / "all.jsonl")}},
        },
    )


def _description(form: str, subject: str) -> str:
    what = "multiple choice questions" if form == "letters" else "questions"
    return f"The following are {what} (with answers) about {subject.replace('_', ' ')}.\n\n"


def _group(name: str, members: list[str], aggregate: list[dict], alias: str | None = None) -> dict:
    group = {"group": name, "task": members, "aggregate_metric_list": aggregate, "metadata": {"version": 1.0}}
    return group | ({"group_alias": alias} if alias else {})


def _dump(folder: Path, config: dict) -> None:
    name = config.get("task") if isinstance(config.get("task"), str) else config["group"]
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def mmlu_offline_suite(cache_dir: str, **fields) -> EvalSuite:
    """An :class:`EvalSuite` (``fields``: its fields) with the shipped MMLU tasks on its include path."""
    folder = write_tasks(cache_dir)
    fields["include_path"] = [*(fields.get("include_path") or []), str(folder)]
    return EvalSuite(**fields)
