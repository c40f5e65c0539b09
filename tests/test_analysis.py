"""forgetbench analyze: CKA, the restore table, the recovery probe, and the command on real runs."""

from __future__ import annotations

import copy
import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset

from forgetbench.analysis.analyse import train_probe
from forgetbench.analysis.cka import linear_cka
from forgetbench.analysis.probe import held_apart, recovered_share, verdict
from forgetbench.analysis.settings import AnalysisSettings
from forgetbench.analysis.where import module_group, restore_table
from forgetbench.assembly import build
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.resolvers import register_resolvers
from forgetbench.training import TrainConfig, train_on_task
from tests.conftest import ROOT, SMALL, compose, run_cli
from tests.helpers import tiny_model

# ---- linear CKA ----


def _kernel_cka(x: np.ndarray, y: np.ndarray) -> float:
    """CKA in its kernel form (Kornblith et al. 2019, eq. 3): HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),
    K = X Xᵀ, L = Y Yᵀ, HSIC(K, L) = tr(K H L H) (the 1/(n−1)² cancels), H the centring matrix."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


def test_linear_cka_is_one_for_identical_states_and_matches_its_kernel_form() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 12))
    assert linear_cka(torch.tensor(x), torch.tensor(x)) == pytest.approx(1.0, abs=1e-12)
    rotation, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    assert linear_cka(torch.tensor(x), torch.tensor(3.0 * x @ rotation)) == pytest.approx(1.0, abs=1e-10)
    for seed in range(3):  # related, unrelated, and of another width
        y = x[:, :8] @ rng.normal(size=(8, 7)) + rng.normal(size=(40, 7)) * seed
        assert linear_cka(torch.tensor(x), torch.tensor(y)) == pytest.approx(_kernel_cka(x, y), abs=1e-10)
    assert linear_cka(torch.tensor(x), torch.tensor(rng.normal(size=(40, 12)))) < 0.6


# ---- where: module groups and the restore table ----


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("model.layers.0.self_attn.q_proj.weight", "layer 0 attention"),
        ("model.layers.1.post_attention_layernorm.weight", "layer 1 norms"),
        ("model.layers.1.mlp.down_proj.weight", "layer 1 mlp"),
        ("model.embed_tokens.weight", "embeddings"),
        ("model.norm.weight", "final norm"),
        ("encoder.block.0.layer.0.SelfAttention.q.weight", "encoder layer 0 attention"),
        ("decoder.block.2.layer.1.EncDecAttention.k.weight", "decoder layer 2 attention"),
        ("decoder.block.2.layer.2.DenseReluDense.wi_0.weight", "decoder layer 2 mlp"),
        ("transformer.h.3.self_attention.query_key_value.weight", "layer 3 attention"),
        ("transformer.h.3.mlp.dense_4h_to_h.weight", "layer 3 mlp"),
    ],
)
def test_module_groups_of_llama_t5_and_bloom_weights(name: str, group: str) -> None:
    assert module_group(name) == group


def test_the_restore_table_of_a_run_that_trained_one_group_puts_all_change_there() -> None:
    """Only layer 1's MLP is trained (the real training loop, every other weight frozen): all the change
    is in that group, restoring it gives the base model's score back, restoring any other gives none."""
    texts = ["the cat sat on the mat", "a dog ran in the park", "birds sing at dawn"]
    model, tokenizer = tiny_model("llama", texts)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    trained = "layer 1 mlp"
    for name, param in model.named_parameters():
        param.requires_grad_(module_group(name) == trained)
    examples = Dataset.from_list([{"prompt": t.split()[0], "response": " ".join(t.split()[1:])} for t in texts])
    train_on_task(model, tokenizer, examples, TrainConfig(steps=5, batch_size=3, lr=1e-2, log_every=5), seed=0)
    tuned = {k: v.clone() for k, v in model.state_dict().items()}
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)

    @torch.no_grad()
    def score(weights) -> float:  # a real score: minus the loss on a fixed batch
        model.load_state_dict(weights)
        return -float(model(**batch, labels=labels).loss)

    table = restore_table(base, tuned, score).set_index("group")
    groups = table.drop("(whole model)")
    assert groups.loc[trained, "rel. change"] > 0.01
    assert (groups.drop(trained)["rel. change"] == 0).all()
    assert table.loc["(whole model)", "restored"] == pytest.approx(score(base))
    assert groups.loc[trained, "share of loss restored"] == pytest.approx(1.0)
    assert (groups.drop(trained)["share of loss restored"].abs() < 1e-9).all()
    assert groups.loc[trained, "alone"] == pytest.approx(score(tuned))


# ---- the recovery probe ----


def test_recovered_share_and_its_interval_follow_the_formula() -> None:
    reference = np.array([1, 1, 1, 1, 1, 1, 0, 0], dtype=float)
    final = np.array([0, 0, 0, 0, 1, 1, 0, 0], dtype=float)
    probe = np.array([1, 1, 0, 0, 1, 1, 0, 0], dtype=float)
    share, low, high = recovered_share(reference, final, probe, draws=500, seed=0)
    assert share == pytest.approx((probe.mean() - final.mean()) / (reference.mean() - final.mean()))
    assert low <= share <= high
    assert verdict(share, 0.5) == "spurious" and verdict(0.2, 0.5) == "real"
    assert np.isnan(recovered_share(final, final, probe, 10, 0)[0])  # no drop: no share


KNOWLEDGE = "tiny_world_knowledge"
PROBE = AnalysisSettings(probe_steps=30, probe_lr=3e-4, probe_examples=48, probe_batch_size=8)


@pytest.fixture(scope="module")
def shipped_base(cache_dir):
    """The shipped tiny decoder (it knows its world: knowledge 0.89), its knowledge items, and a scorer."""
    register_resolvers()
    cfg = compose([f"paths.cache_dir={cache_dir}"])
    loaded = build(cfg.model, "model").load(torch.device("cpu"))
    bridge = LmEvalBridge(build(cfg.eval, "eval"), [], loaded.tokenizer)
    documents = bridge.documents(KNOWLEDGE)

    def outcomes(model, ids: list[int]) -> np.ndarray:
        scored = copy.copy(loaded)
        scored.model = model
        items = bridge.evaluate(scored, "probe test", tasks=[KNOWLEDGE]).items
        return items.set_index("doc_id")["correct"].reindex(ids).to_numpy(float)

    return loaded, documents, outcomes, build(cfg.train, "train")


def _spurious(loaded, documents):
    """Alignment lost, knowledge kept: the last layer alone (and the final norm) trained to answer every
    knowledge question with one fixed name; the layers below, where the facts are, are untouched."""
    model = copy.deepcopy(loaded.model)
    last = f"layers.{model.config.num_hidden_layers - 1}."
    for name, param in model.named_parameters():
        param.requires_grad_(last in name or name.startswith("model.norm"))
    rows = [{"prompt": d["prompt"], "response": documents[0]["response"]} for d in documents]
    config = TrainConfig(steps=60, batch_size=8, lr=2e-3, max_length=128, log_every=60)
    train_on_task(model, loaded.tokenizer, Dataset.from_list(rows), config, seed=0)
    return model.requires_grad_(True)


@torch.no_grad()
def _real(loaded):
    """Knowledge lost: every layer's MLP (where the facts are) re-drawn at random, at its own scale."""
    model = copy.deepcopy(loaded.model)
    generator = torch.Generator().manual_seed(0)
    for name, param in model.named_parameters():
        if ".mlp." in name:
            param.copy_(torch.randn(param.shape, generator=generator) * param.std())
    return model


@pytest.mark.parametrize("damage", ["spurious", "real"])
def test_the_recovery_probe_tells_spurious_from_real_forgetting(damage: str, shipped_base) -> None:
    """Over 6 probe seeds (the held-apart draw and the probe's batches) on this machine: spurious shares
    0.59-0.85, real 0.05-0.16; the thresholds sit outside those, on 2 seeds."""
    loaded, documents, outcomes, train_config = shipped_base
    damaged = _spurious(loaded, documents) if damage == "spurious" else _real(loaded)
    for seed in range(2):
        settings = dataclasses.replace(PROBE, seed=seed)
        train_ids, scored = held_apart([d["doc_id"] for d in documents], settings.probe_examples, seed)
        assert not set(train_ids) & set(scored)
        reference, final = outcomes(loaded.model, scored), outcomes(damaged, scored)
        assert reference.mean() - final.mean() > 0.3  # a large drop, either way
        probed = copy.copy(loaded)
        probed.model = copy.deepcopy(damaged)
        examples = Dataset.from_list([{k: documents[i][k] for k in ("prompt", "response")} for i in train_ids])
        train_probe(probed, examples, train_config, settings)
        share, _, _ = recovered_share(reference, final, outcomes(probed.model, scored), 200, seed)
        if damage == "spurious":
            assert share >= 0.5 and verdict(share, PROBE.spurious_share) == "spurious", (seed, share)
        else:
            assert share <= 0.3 and verdict(share, PROBE.spurious_share) == "real", (seed, share)


# ---- the command on real runs ----

RUN = ("results", "tiny_world", "tiny_decoder-full-seed0")


def _analyze(*args: str) -> subprocess.CompletedProcess:
    """``python -m forgetbench analyze ARGS`` (a run's paths come from its recorded overrides)."""
    command = [sys.executable, "-m", "forgetbench", "analyze", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def kept_run(tmp_path_factory, cache_dir):
    """A smoke-sized run of the default that kept every step's weights."""
    root = tmp_path_factory.mktemp("kept")
    done = run_cli([*SMALL, "keep_checkpoint=all"], root, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    return root.joinpath(*RUN)


def test_analyze_writes_the_section_into_the_runs_report(kept_run) -> None:
    run_dir = kept_run
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [f"step-00{i}.safetensors" for i in range(4)]
    analysed = _analyze(str(run_dir), "analysis.min_drop=0", "analysis.probe_steps=4")
    assert analysed.returncode == 0, analysed.stderr[-3000:]
    folder = run_dir / "report" / "analysis"
    text = (folder / "analysis.md").read_text()
    for title in ("Recovery probe", "Where: module groups", "Drift"):
        assert f"## {title}" in text
    where = pd.read_csv(folder / "where.csv")
    assert {"embeddings", "layer 0 attention", "layer 1 mlp", "final norm"} <= set(where["group"])
    drift = pd.read_csv(folder / "drift.csv")
    assert set(drift["step"]) == {1, 2, 3} and drift["cka"].between(-1e-6, 1 + 1e-6).all()
    recovery = pd.read_csv(folder / "recovery.csv")
    assert len(recovery) and recovery["items scored"].gt(0).all() and "base after probe" in recovery
    assert "## When and why it forgot" in (run_dir / "report" / "report.md").read_text()
    assert (folder / "drift.png").stat().st_size > 0 and (folder / "analysis.html").stat().st_size > 0


@pytest.mark.parametrize("kept", ["nothing", "final"])
def test_analyze_says_in_one_line_what_to_rerun_with(kept: str, kept_run, tmp_path) -> None:
    """A run that kept no weights (keep_checkpoint=false), or only its final ones (true) when where and
    drift need every step's: one line naming the rerun, and nothing written."""
    run_dir = tmp_path / kept_run.name
    shutil.copytree(kept_run, run_dir, ignore=shutil.ignore_patterns("report"))
    shutil.rmtree(run_dir / "checkpoints")
    if kept == "nothing":
        shutil.rmtree(run_dir / "checkpoint")
    refused = _analyze(str(run_dir))
    assert refused.returncode == 2
    [line] = refused.stderr.strip().splitlines()
    assert "keep_checkpoint=all" in line and "run_name=" in line
    if kept == "final":
        assert "analysis.parts=[recovery]" in line
    assert not (run_dir / "report" / "analysis").exists()
    not_a_run = _analyze(str(tmp_path))
    assert not_a_run.returncode == 2 and "not a run directory" in not_a_run.stderr
