"""The lm-eval bridge scores exactly what the model's own log-likelihoods say."""

from __future__ import annotations

import random

import numpy as np
import pytest

from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.task_configs import local_task_config, write_task_yaml
from forgetbench.jsonl import write_jsonl
from forgetbench.models import LoadedModel
from tests.helpers import direct_logliks, tiny_model

WORDS = "red blue green cat dog fish one two three four".split()


def _items(n: int = 12) -> list[dict]:
    rng = random.Random(0)
    items = []
    for _ in range(n):
        question = "question : " + " ".join(rng.choices(WORDS, k=4)) + " ? answer :"
        items.append({"question": question, "choices": rng.sample(WORDS, 4), "answer": rng.randrange(4)})
    return items


@pytest.mark.parametrize("engine", ["fast", "lm_eval"])
@pytest.mark.parametrize("kind", ["llama", "mt5"])
def test_bridge_accuracy_equals_direct_scoring(kind: str, engine: str, tmp_path) -> None:
    items = _items()
    data = tmp_path / "probe.jsonl"
    write_jsonl(data, items)
    write_task_yaml(local_task_config("probe_mc", data, "multiple_choice"), tmp_path / "tasks")
    model, tokenizer = tiny_model(kind, WORDS + ["question", ":", "?", "answer"])
    suite = EvalSuite("probe", ["probe_mc"], include_path=[str(tmp_path / "tasks")], batch_size=4, engine=engine)
    bridge = LmEvalBridge(suite, [])
    bridge.evaluate(LoadedModel("probe", model, tokenizer))  # the first call builds the engine
    model.train()  # as after a training step; mT5 has dropout, so scoring in train mode would differ
    evaluation = bridge.evaluate(LoadedModel("probe", model, tokenizer))
    assert model.training, "the bridge must leave the model in train mode"

    model.eval()
    direct = [[direct_logliks(model, tokenizer, it["question"], c) for c in it["choices"]] for it in items]
    expected_acc = sum(max(range(4), key=row.__getitem__) == it["answer"] for row, it in zip(direct, items)) / len(
        items
    )
    [score] = [s for s in evaluation.scores if s.metric == "acc"]
    assert score.eval_task == "probe_mc" and score.n == len(items)
    assert score.value == pytest.approx(expected_acc)
    got = evaluation.items.sort_values("doc_id")
    np.testing.assert_allclose(np.array(got["logliks"].tolist()), np.array(direct), rtol=1e-5, atol=1e-4)


def test_unknown_eval_task_names_close_matches(tmp_path) -> None:
    from forgetbench.errors import ForgetbenchError

    suite = EvalSuite(name="bad", tasks=["hellaswagg"])
    with pytest.raises(ForgetbenchError, match=r"'hellaswagg' is not known to lm-eval.*hellaswag"):
        LmEvalBridge(suite, [])


def test_groups_are_reported_with_their_tasks_like_mmlu_categories(tmp_path) -> None:
    """A group (as mmlu and mmlu_stem are) gives a row of its own, over all its tasks' items."""
    tasks = tmp_path / "tasks"
    for name, n in (("probe_a", 12), ("probe_b", 8)):
        write_jsonl(tmp_path / f"{name}.jsonl", _items(n))
        write_task_yaml(local_task_config(name, tmp_path / f"{name}.jsonl", "multiple_choice"), tasks)
    (tasks / "probe_group.yaml").write_text(
        "group: probe_group\ntask: [probe_a, probe_b]\n"
        "aggregate_metric_list:\n  - metric: acc\n    weight_by_size: true\n"
    )
    model, tokenizer = tiny_model("llama", WORDS + ["question", ":", "?", "answer"])
    suite = EvalSuite(name="probe", tasks=["probe_group"], include_path=[str(tasks)], batch_size=4)
    scores = {
        s.eval_task: s
        for s in LmEvalBridge(suite, []).evaluate(LoadedModel("p", model, tokenizer)).scores
        if s.metric == "acc"
    }
    assert set(scores) == {"probe_group", "probe_a", "probe_b"}
    assert (scores["probe_a"].n, scores["probe_b"].n, scores["probe_group"].n) == (12, 8, 20)
    weighted = (12 * scores["probe_a"].value + 8 * scores["probe_b"].value) / 20
    assert scores["probe_group"].value == pytest.approx(weighted)


def test_race_middle_definition_loads_and_scores_local_rows(tmp_path) -> None:
    """The shipped RACE-middle task, pointed at fixture rows in the Hub dataset's own layout."""
    from forgetbench.evaluation.task_configs import TASKS_DIR

    rows = [
        {
            "example_id": f"m{i}",
            "article": "tom has a red cat . the cat is old .",
            "question": "what color is the cat ?",
            "options": ["red", "blue", "green", "one"],
            "answer": "ABCD"[i % 4],
        }
        for i in range(8)
    ]
    write_jsonl(tmp_path / "middle.jsonl", rows)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "race_middle_fixture.yaml").write_text(
        f"task: race_middle_fixture\ninclude: {TASKS_DIR / 'race_middle.yaml'}\ndataset_path: json\n"
        f"dataset_name: null\ndataset_kwargs:\n  data_files:\n    test: {tmp_path / 'middle.jsonl'}\n"
    )
    model, tokenizer = tiny_model(
        "llama",
        "tom has a red cat . the is old what color ? blue green one".split() + ["Article:", "Question:", "Answer:"],
    )
    suite = EvalSuite(name="r", tasks=["race_middle_fixture"], include_path=[str(tasks)], batch_size=4)
    evaluation = LmEvalBridge(suite, []).evaluate(LoadedModel("r", model, tokenizer))
    [score] = [s for s in evaluation.scores if s.metric == "acc"]
    assert score.n == 8
    assert evaluation.items["target"].tolist() == [str(i % 4) for i in range(8)]
    assert all(len(lls) == 4 for lls in evaluation.items["logliks"])
