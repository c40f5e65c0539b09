"""Reading lm-eval's output dicts into score rows and item rows (the shapes ``simple_evaluate`` returns)."""

from __future__ import annotations

from forgetbench.evaluation.lm_eval_output import item_rows, task_scores

OUT = {
    "results": {
        "mmlu": {"alias": "mmlu", "acc,none": 0.5, "acc_stderr,none": 0.1},
        "mmlu_stem": {"alias": " - stem", "acc,none": 0.25, "acc_stderr,none": "N/A"},
        "headlines": {"alias": "headlines", "rouge_l,none": 0.4, "sample_len": 2},
    },
    "n-samples": {"mmlu_stem": {"original": 4, "effective": 4}, "headlines": {"original": 2, "effective": 2}},
    "group_subtasks": {"mmlu": ["mmlu_stem"]},
    "samples": {
        "mmlu_stem": [
            {"doc_id": 0, "target": 2, "filtered_resps": [[-3.0, False], [-2.0, False], [-1.0, True]], "acc": 1.0},
            {"doc_id": 1, "target": 0, "filtered_resps": [[-1.0, False], [-0.5, True]], "acc": 0.0},
        ],
        "headlines": [{"doc_id": 0, "target": "a headline", "filtered_resps": ["a headline"], "exact_match": 1.0}],
    },
}


def test_scores_name_each_metric_count_a_groups_items_and_skip_non_numbers() -> None:
    rows = {(r.eval_task, r.metric): r for r in task_scores(OUT, seconds=1.5, stream_task="")}
    assert set(rows) == {("mmlu", "acc"), ("mmlu_stem", "acc"), ("headlines", "rouge_l")}
    assert rows["mmlu", "acc"].n == 4  # a group counts its subtasks' items
    assert rows["mmlu", "acc"].stderr == 0.1 and rows["mmlu_stem", "acc"].stderr is None  # "N/A": no stderr
    assert rows["headlines", "rouge_l"].value == 0.4 and rows["headlines", "rouge_l"].seconds == 1.5


def test_items_record_the_winning_choice_or_the_generated_outcome() -> None:
    items = item_rows(OUT).set_index(["eval_task", "doc_id"])
    assert items.loc[("mmlu_stem", 0), "pred"] == 2 and items.loc[("mmlu_stem", 0), "correct"] == 1.0
    assert items.loc[("mmlu_stem", 1), "logliks"] == [-1.0, -0.5] and items.loc[("mmlu_stem", 1), "pred"] == 1
    generated = items.loc[("headlines", 0)]
    assert generated["pred"] == -1 and generated["logliks"] == [] and generated["correct"] == 1.0
    assert generated["target"] == "a headline"
    assert not items["correct"].isna().any()
