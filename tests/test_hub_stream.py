"""The Hub stream's code path on a local folder laid out like the Hub dataset."""

from __future__ import annotations

import pytest

from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.task_configs import stream_task_config
from forgetbench.jsonl import write_jsonl
from forgetbench.stream_records import Scoring
from forgetbench.streams.hub import HubStream

# GEM/wiki_auto_asset_turk's columns, a few hand-written rows
ROWS = [
    {
        "source": f"The committee , which was formed in {1900 + i} , met often .",
        "target": f"The committee met often since {1900 + i} .",
        "gem_id": f"w{i}",
    }
    for i in range(10)
]


def _stream(folder, cache, **task) -> HubStream:
    spec = {
        "name": "wiki_auto",
        "path": str(folder),
        "prompt": "Simplify: {source}\nSimplified:",
        "response": "{target}",
        "test_split": "validation",
        "n_train": 6,
        "n_test": 3,
        **task,
    }
    return HubStream(name="luo2023", tasks=[spec], cache_dir=str(cache))


def test_hub_stream_reads_a_local_copy(tmp_path) -> None:
    write_jsonl(tmp_path / "data" / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "data" / "validation.jsonl", ROWS[:4])
    [task] = _stream(tmp_path / "data", tmp_path / "cache").load()
    assert len(task.train) == 6
    assert task.train[0]["prompt"].startswith("Simplify: The committee")
    assert task.train[0]["response"].startswith("The committee met often since")
    assert task.scoring == Scoring("generation", ("rouge_l", "exact_match"), max_new_tokens=64)
    config = stream_task_config(task)  # evaluation's lm-eval task over the held-out rows
    assert config["task"] == "stream_wiki_auto" and config["include"].endswith("_generation.yaml")
    assert [m["metric"] for m in config["metric_list"]] == ["rouge_l", "exact_match"]
    [scored] = HubStream(
        name="s",
        tasks=_stream(tmp_path / "data", tmp_path / "c").tasks,
        cache_dir=str(tmp_path),
        eval_kind="loglikelihood",
    ).load()
    assert scored.scoring == Scoring("loglikelihood")


def test_one_split_gives_disjoint_train_and_test(tmp_path) -> None:
    write_jsonl(tmp_path / "data" / "train.jsonl", ROWS)
    [task] = _stream(tmp_path / "data", tmp_path / "cache", test_split="train", n_train=None).load()
    test_prompts = {line for line in open(task.test_file)}
    assert len(task.train) == 7 and len(test_prompts) == 3
    assert not {r["prompt"] for r in task.train} & {__import__("json").loads(x)["prompt"] for x in test_prompts}


def test_template_naming_a_missing_column(tmp_path) -> None:
    write_jsonl(tmp_path / "data" / "train.jsonl", ROWS)
    write_jsonl(tmp_path / "data" / "validation.jsonl", ROWS[:4])
    with pytest.raises(ForgetbenchError, match=r"template names column 'document'.*columns: \["):
        _stream(tmp_path / "data", tmp_path / "cache", prompt="{document}").load()


def test_generation_scores() -> None:
    from forgetbench.evaluation.generation_metrics import constraint_met, score_generation

    assert constraint_met("Police arrest men", "start", "police") and not constraint_met("a police b", "end", "police")
    assert constraint_met("a police b", "contain", "police")
    doc = {"response": "police arrest five men", "constraint_kind": "end", "constraint_word": "men"}
    scores = score_generation(doc, ["police arrest five men\n"])
    assert scores == {"rouge_l": 1.0, "exact_match": 1.0, "constraint_met": 1.0}
    partial = score_generation({"response": "the cat sat"}, ["the dog sat"])
    assert partial["rouge_l"] == pytest.approx(2 / 3) and partial["exact_match"] == 0.0
