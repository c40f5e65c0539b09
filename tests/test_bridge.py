"""The lm-eval bridge scores exactly what the model's own log-likelihoods say."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.task_configs import local_task_config, write_task_yaml
from forgetbench.jsonl import write_jsonl
from forgetbench.models import LoadedModel
from tests.helpers import tiny_model

WORDS = "red blue green cat dog fish one two three four".split()


def _items(n: int = 12) -> list[dict]:
    rng = random.Random(0)
    items = []
    for _ in range(n):
        question = "question : " + " ".join(rng.choices(WORDS, k=4)) + " ? answer :"
        items.append({"question": question, "choices": rng.sample(WORDS, 4), "answer": rng.randrange(4)})
    return items


@torch.no_grad()
def _direct_logliks(model, tokenizer, question: str, choice: str) -> float:
    """Sum of log p(choice tokens | question), computed here without lm-eval."""
    context = tokenizer(question, add_special_tokens=False)["input_ids"]
    target = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
    if model.config.is_encoder_decoder:
        logits = model(input_ids=torch.tensor([context]), labels=torch.tensor([target])).logits[0]
        logprobs = logits.log_softmax(-1)
        return float(sum(logprobs[i, t] for i, t in enumerate(target)))
    logits = model(input_ids=torch.tensor([context + target])).logits[0]
    logprobs = logits.log_softmax(-1)
    return float(sum(logprobs[len(context) + i - 1, t] for i, t in enumerate(target)))


@pytest.mark.parametrize("kind", ["llama", "mt5"])
def test_bridge_accuracy_equals_direct_scoring(kind: str, tmp_path) -> None:
    items = _items()
    data = tmp_path / "probe.jsonl"
    write_jsonl(data, items)
    write_task_yaml(local_task_config("probe_mc", data, "multiple_choice"), tmp_path / "tasks")
    model, tokenizer = tiny_model(kind, WORDS + ["question", ":", "?", "answer"])
    model.eval()

    suite = EvalSuite(name="probe", tasks=["probe_mc"], include_path=[str(tmp_path / "tasks")], batch_size=4)
    evaluation = LmEvalBridge(suite, []).evaluate(LoadedModel("probe", model, tokenizer))
    assert model.training, "the bridge must leave the model in train mode"

    model.eval()  # mT5 has dropout: score deterministically, as lm-eval did
    direct = [[_direct_logliks(model, tokenizer, it["question"], c) for c in it["choices"]] for it in items]
    expected_acc = sum(max(range(4), key=row.__getitem__) == it["answer"] for row, it in zip(direct, items)) / len(
        items
    )
    [score] = [s for s in evaluation.scores if s.metric == "acc"]
    assert score.eval_task == "probe_mc" and score.n == len(items)
    assert score.value == pytest.approx(expected_acc)
    got = evaluation.items.sort_values("doc_id")
    np.testing.assert_allclose(np.array(got["logliks"].tolist()), np.array(direct), atol=1e-4)


def test_unknown_eval_task_names_close_matches(tmp_path) -> None:
    from forgetbench.errors import ForgetbenchError

    suite = EvalSuite(name="bad", tasks=["hellaswagg"])
    with pytest.raises(ForgetbenchError, match=r"'hellaswagg' is not known to lm-eval.*hellaswag"):
        LmEvalBridge(suite, [])
