"""The fast engine gives lm-eval's HF backend's answers: the same chosen item, the same generated
text, on single- and multi-token choices, 0-shot and few-shot, for decoder-only and
encoder-decoder models; and the same answers whatever its token budget."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset

from forgetbench.assembly import build
from forgetbench.evaluation.fast_engine import FastLM
from forgetbench.evaluation.hf_engine import QuietHFLM
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.evaluation.shared_context import group_by_context
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.evaluation.task_configs import local_task_config, write_task_yaml
from forgetbench.jsonl import write_jsonl
from forgetbench.models import LoadedModel
from tests.conftest import compose
from tests.helpers import continuations_padded_per_batch, tiny_model

TIE = 1e-4  # items whose two best choices lie closer than this may differ; they are counted
WORDS = "red blue green cat dog fish one two three four big small old new".split()
LETTERS = ["A", "B", "C", "D"]
PROMPT_WORDS = ["question", ":", "?", "answer", ".", *LETTERS]


def _rows(n: int, letters: bool, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [" ".join(rng.choices(WORDS, k=rng.randint(1, 3))) for _ in range(4)]
        question = "question : " + " ".join(rng.choices(WORDS, k=rng.randint(2, 12))) + " ?"
        if letters:  # the options in the prompt, a one-token letter as the answer (MMLU's shape)
            question += " " + " ".join(f"{x} . {w}" for x, w in zip(LETTERS, words, strict=True))
        rows.append({"question": question + " answer :", "choices": LETTERS if letters else words, "answer": 1})
    return rows


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory):
    """Two local tasks: letters (one-token choices) and words (multi-token choices)."""
    folder = tmp_path_factory.mktemp("fast-engine-tasks")
    for name, letters in (("letters", True), ("words", False)):
        write_jsonl(folder / f"{name}.jsonl", _rows(24, letters, seed=len(name)))
        write_task_yaml(local_task_config(name, folder / f"{name}.jsonl", "multiple_choice"), folder / "tasks")
    return folder / "tasks"


def _random_model(kind: str):
    model, tokenizer = tiny_model(kind, WORDS + PROMPT_WORDS, width=64)
    return LoadedModel(kind, model.eval(), tokenizer)


@pytest.fixture(scope="module")
def tiny_world_models(cache_dir):
    """The pretrained tiny-world decoder and encoder-decoder (their distributions are peaked)."""
    cache = cache_dir
    loaded = {}
    for arch in ("decoder", "encdec"):
        cfg = compose([f"model=tiny_{arch}", f"paths.cache_dir={cache}"])
        loaded[arch] = build(cfg.model, "model").load(torch.device("cpu"))
    return loaded


def _suite(task_folder, engine: str, shots: int, budget: int = 16384) -> EvalSuite:
    tasks = [{"task": "letters", "num_fewshot": shots}, {"task": "words", "num_fewshot": shots}]
    return EvalSuite("probe", tasks, include_path=[str(task_folder)], batch_size=8, engine=engine, token_budget=budget)


def _items(suite: EvalSuite, loaded: LoadedModel) -> pd.DataFrame:
    bridge = LmEvalBridge(suite, [])
    bridge.evaluate(loaded)  # the first evaluation builds; the second is what later steps run
    return bridge.evaluate(loaded).items.sort_values(["eval_task", "doc_id"], ignore_index=True)


def _assert_same_choices(fast: pd.DataFrame, reference: pd.DataFrame) -> int:
    """Every item chooses as lm-eval does, except near-ties (returned as a count, and reported)."""
    assert fast[["eval_task", "doc_id"]].equals(reference[["eval_task", "doc_id"]])
    logliks = np.array(reference["logliks"].tolist())
    top_two = np.sort(logliks, axis=1)[:, -2:]
    ties = (top_two[:, 1] - top_two[:, 0]) < TIE
    differ = (fast["pred"] != reference["pred"]).to_numpy()
    assert not (differ & ~ties).any(), fast[differ & ~ties]
    np.testing.assert_allclose(np.array(fast["logliks"].tolist()), logliks, rtol=1e-5, atol=1e-4)
    if ties.any():
        print(f"{ties.sum()} near-tie items (top two within {TIE}); {(differ & ties).sum()} of them differ")
    return int((differ & ties).sum())


@pytest.mark.parametrize("shots", [0, 2])
@pytest.mark.parametrize("kind", ["bloom", "llama", "mt5", "tiny_decoder", "tiny_encdec"])
def test_fast_engine_chooses_what_lm_eval_chooses(kind, shots, task_folder, tiny_world_models, request) -> None:
    if kind.startswith("tiny_"):
        loaded = tiny_world_models[kind.removeprefix("tiny_")]
    else:
        loaded = _random_model(kind)
    reference = _items(_suite(task_folder, "lm_eval", shots), loaded)
    fast = _items(_suite(task_folder, "fast", shots), loaded)
    differing_ties = _assert_same_choices(fast, reference)
    if differing_ties == 0:
        assert fast["correct"].mean() == reference["correct"].mean()


@pytest.mark.parametrize("arch", ["decoder", "encdec"])
def test_tiny_world_suite_scores_the_same_under_both_engines(arch, tiny_world_models, cache_dir) -> None:
    cfg = compose([f"model=tiny_{arch}", f"paths.cache_dir={cache_dir}", "eval.limit=40"])
    suite = build(cfg.eval, "eval")
    loaded = tiny_world_models[arch]
    scores = {}
    for engine in ("lm_eval", "fast"):
        suite.engine = engine
        bridge = LmEvalBridge(suite, [])
        bridge.evaluate(loaded)
        evaluation = bridge.evaluate(loaded)
        items = evaluation.items.sort_values(["eval_task", "doc_id"], ignore_index=True)
        scores[engine] = ({(s.eval_task, s.metric): s.value for s in evaluation.scores}, items)
    assert _assert_same_choices(scores["fast"][1], scores["lm_eval"][1]) == 0
    assert scores["fast"][0] == pytest.approx(scores["lm_eval"][0], abs=1e-12)


def _generation_requests(loaded: LoadedModel, n: int = 12):
    from lm_eval.api.instance import Instance

    rng = random.Random(0)
    vocabulary = sorted(w for w in loaded.tokenizer.get_vocab() if w.isalpha() and w.islower())
    kwargs = {"until": ["\n", "."], "max_gen_toks": 6, "do_sample": False}
    prompts = [" ".join(rng.choices(vocabulary, k=rng.randint(2, 14))) for _ in range(n)]
    return [Instance("generate_until", {}, (p, dict(kwargs)), i) for i, p in enumerate(prompts)]


def _lm(engine: str, loaded: LoadedModel, budget: int = 16384):
    backend = "seq2seq" if loaded.model.config.is_encoder_decoder else "causal"
    kwargs = {"pretrained": loaded.model, "tokenizer": loaded.tokenizer, "backend": backend, "batch_size": 4}
    lm = FastLM(token_budget=budget, **kwargs) if engine == "fast" else QuietHFLM(**kwargs)
    lm.progress_bars = False
    return lm


@pytest.mark.parametrize("kind", ["bloom", "llama", "mt5", "tiny_decoder", "tiny_encdec"])
def test_fast_engine_generates_what_lm_eval_generates(kind, tiny_world_models) -> None:
    loaded = tiny_world_models[kind.removeprefix("tiny_")] if kind.startswith("tiny_") else _random_model(kind)
    requests = _generation_requests(loaded)
    reference = _lm("lm_eval", loaded).generate_until(requests)
    if loaded.model.config.is_encoder_decoder:
        # lm-eval's seq2seq generation passes max_length = the batch's padded context length +
        # max_gen_toks, which for an encoder-decoder bounds the decoder alone: it may write more than
        # max_gen_toks tokens (a model that restates its prompt does). The fast engine writes at most
        # max_gen_toks, as the task asks; on those tokens the two agree. A text of exactly max_gen_toks
        # words is compared as decoded too: lm-eval's may have ended on a </s> one token past the budget,
        # whose decoding leaves a trailing space the fast engine's (stopped at the budget) does not have.
        budget = requests[0].args[1]["max_gen_toks"]
        tokenizer = loaded.tokenizer
        tokens = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in reference]
        reference = [tokenizer.decode(t[:budget]) if len(t) >= budget else r for t, r in zip(tokens, reference)]
    assert _lm("fast", loaded).generate_until(requests) == reference
    if kind.startswith("tiny_"):  # a trained model says something (a random mT5 mostly pads)
        assert sum(bool(text.strip()) for text in reference) >= len(reference) // 2


@pytest.mark.parametrize("kind", ["bloom", "llama", "mt5"])
def test_rolling_log_likelihoods_equal_lm_eval(kind) -> None:
    """Perplexity tasks (``loglikelihood_rolling``): lm-eval's windows, scored by the engine."""
    from lm_eval.api.instance import Instance

    loaded = _random_model(kind)
    rng = random.Random(1)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(3, 40))) for _ in range(6)]
    requests = [Instance("loglikelihood_rolling", {}, (text,), i) for i, text in enumerate(texts)]
    reference = _lm("lm_eval", loaded).loglikelihood_rolling(requests, disable_tqdm=True)
    # sums of ~40 tokens: float32 summation order differs between CPUs (2.4e-4 on -1,000 seen), so relative
    np.testing.assert_allclose(_lm("fast", loaded).loglikelihood_rolling(requests), reference, rtol=1e-5, atol=1e-4)
    # every window shares one context (the prefix token): a budget smaller than the group splits it
    small = _lm("fast", loaded, budget=60)
    np.testing.assert_allclose(small.loglikelihood_rolling(requests), reference, rtol=1e-5, atol=1e-4)
    if kind == "llama":
        group = group_by_context([([1], [5] * n) for n in (3, 40, 12, 25, 7, 30)])[0]
        parts = small.scorer._fitting(group)
        assert len(parts) > 1 and all(p.cost() <= 60 or len(p.rows) == 1 for p in parts)
        assert sorted(r for p in parts for r in p.rows) == list(range(6))


@pytest.mark.parametrize("kind", ["llama", "mt5", "tiny_decoder"])
def test_results_do_not_depend_on_the_token_budget(kind, task_folder, tiny_world_models) -> None:
    loaded = tiny_world_models["decoder"] if kind == "tiny_decoder" else _random_model(kind)
    choices, texts = [], []
    for budget in (48, 400, 100_000):  # one context per batch, a few, everything at once
        items = _items(_suite(task_folder, "fast", 2, budget), loaded)
        choices.append(items["pred"].tolist())
        texts.append(_lm("fast", loaded, budget).generate_until(_generation_requests(loaded)))
    assert choices[0] == choices[1] == choices[2]
    assert texts[0] == texts[1] == texts[2]


@pytest.mark.parametrize("kind", ["bloom", "llama", "mt5"])
def test_continuations_are_batched_by_their_own_length(kind) -> None:
    """Answers of 1 to 30 words after contexts of mixed length: the log-likelihoods are lm-eval's,
    and each pass runs at most 1.2 positions per real token, where padding each continuation to
    the longest of its context batch (the batching before) ran more than twice the real ones."""
    from lm_eval.api.instance import Instance

    loaded = _random_model(kind)
    rng = random.Random(3)
    requests = []
    for _context in range(12):
        context = " ".join(rng.choices(WORDS, k=rng.randint(2, 20)))
        for _ in range(4):
            answer = " " + " ".join(rng.choices(WORDS, k=rng.choice([1, 1, 2, 3, 5, 8, 30])))
            requests.append(Instance("loglikelihood", {}, (context, answer), len(requests)))
    reference = _lm("lm_eval", loaded).loglikelihood(requests)
    lm = _lm("fast", loaded)
    scores = lm.loglikelihood(requests)
    np.testing.assert_allclose([s for s, _ in scores], [s for s, _ in reference], rtol=1e-5, atol=1e-4)
    assert [g for _, g in scores] == [g for _, g in reference]
    counts = lm.scorer.positions
    assert counts.continuation_run <= 1.2 * counts.continuation_real
    assert counts.context_run <= 1.2 * counts.context_real
    assert continuations_padded_per_batch(lm) > 2 * counts.continuation_real


def test_sampling_tasks_are_refused_with_the_way_out() -> None:
    from lm_eval.api.instance import Instance

    from forgetbench.errors import ForgetbenchError

    loaded = _random_model("llama")
    request = Instance("generate_until", {}, ("red cat", {"until": ["\n"], "do_sample": True}), 0)
    with pytest.raises(ForgetbenchError, match="eval.engine=lm_eval"):
        _lm("fast", loaded).generate_until([request])


def test_out_of_memory_halves_the_budget_and_scores_every_item(task_folder, monkeypatch) -> None:
    """An out-of-memory error on a batch of several contexts halves the token budget and scores
    the batch in halves; the answers are those of an unhindered run."""
    loaded = _random_model("llama")
    expected = _items(_suite(task_folder, "fast", 0), loaded)
    bridge = LmEvalBridge(_suite(task_folder, "fast", 0), [])
    bridge.evaluate(loaded)
    scorer = bridge._lm.scorer
    causal, failures = scorer._causal, []

    def out_of_memory_once(batch):
        if len(batch) > 1 and not failures:
            failures.append(len(batch))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return causal(batch)

    monkeypatch.setattr(scorer, "_causal", out_of_memory_once)
    items = bridge.evaluate(loaded).items.sort_values(["eval_task", "doc_id"], ignore_index=True)
    assert failures and scorer.token_budget == 16384 // 2
    assert items["pred"].tolist() == expected["pred"].tolist()
    np.testing.assert_allclose(
        np.array(items["logliks"].tolist()), np.array(expected["logliks"].tolist()), rtol=1e-5, atol=1e-5
    )


def test_shared_prefix_fraction_counts_the_prefix_tree() -> None:
    from experiments.eval_speed import shared_prefix_fraction  # the benchmark's measure

    # tokens 3 + 3 + 1 = 7; the tree shares [1, 2] of the second context: 2 / 7
    assert shared_prefix_fraction([[1, 2, 3], [1, 2, 4], [5], [1, 2, 3]]) == pytest.approx(2 / 7)
    assert shared_prefix_fraction([[1], [2]]) == 0.0


def test_the_engine_is_in_the_config_hash_and_the_token_budget_is_not() -> None:
    """Rows record which engine scored them (through the config hash); the budget changes no result."""
    from forgetbench.assembly import config_hash

    fast = config_hash(compose(["eval.engine=fast"]))
    assert config_hash(compose(["eval.engine=lm_eval"])) != fast
    assert config_hash(compose(["eval.token_budget=512"])) == fast


@pytest.mark.parametrize("input_eos", [True, False])
def test_an_encoder_decoder_trains_on_the_encoder_input_lm_eval_scores(input_eos: bool) -> None:
    """Fine-tuning feeds the encoder what lm-eval (and the fast engine) feed it when scoring: with the
    tokenizer's own special tokens, so a T5/mT0 tokenizer's closing </s> is there in both, and a
    tokenizer that adds none (the tiny world's word tokenizer) adds none in either."""
    from tokenizers.processors import TemplateProcessing

    from forgetbench.training import TrainConfig, tokenize_pairs

    model, tokenizer = tiny_model("mt5", WORDS + PROMPT_WORDS)
    if input_eos:  # as T5TokenizerFast does
        eos = tokenizer.eos_token_id
        tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
            single="$A </s>", special_tokens=[("</s>", eos)]
        )
    loaded = LoadedModel("mt5", model.eval(), tokenizer)
    rows = [{"prompt": "question : red cat ? answer :", "response": "big dog"}]
    trained = tokenize_pairs(Dataset.from_list(rows), tokenizer, True, TrainConfig(steps=1, max_length=64))[0]
    for engine in ("lm-eval", "fast"):
        context, continuation = _lm(engine, loaded)._encode_pair(rows[0]["prompt"], " " + rows[0]["response"])
        assert trained["input_ids"] == context, engine
        assert trained["labels"] == [*continuation, tokenizer.eos_token_id], engine
    assert (trained["input_ids"][-1] == tokenizer.eos_token_id) == input_eos
