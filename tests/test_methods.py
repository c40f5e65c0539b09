"""Each method's mechanism on a tiny model, its hooks, and its state through save and resume."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset
from omegaconf import open_dict
from peft.tuners.lora import LoraLayer

from forgetbench import runner
from forgetbench.assembly import config_hash
from forgetbench.methods.agem import AGEM, project
from forgetbench.methods.base import TaskContext
from forgetbench.methods.ewc import EWC
from forgetbench.methods.ilora import ILoRA
from forgetbench.methods.l2sp import L2SP
from forgetbench.methods.lora import LoRA
from forgetbench.methods.lwf import LwF
from forgetbench.methods.merge import MERGED, Merge, dare, magmax, task_arithmetic, ties, trim
from forgetbench.methods.olora import OLoRA, orthogonality
from forgetbench.methods.peft_adapters import LoRASettings, adapter_name
from forgetbench.methods.replay import Replay
from forgetbench.methods.sdft import SDFT
from forgetbench.results import read_items, read_results
from forgetbench.training import TrainConfig, make_loader, train_on_task
from tests.conftest import SMALL, compose, run_cli
from tests.helpers import Crash, RecordingMethod, crash_after_step_one_then_resume, tiny_model

WORDS = "add one two three four five six seven eight nine red blue green".split()
TWO_TASKS = ["stream.tasks=[translate,count]"]


def _examples(n: int = 16, tag: str = "a") -> Dataset:
    return Dataset.from_list(
        [{"prompt": f"add {WORDS[i % 9 + 1]} {tag}", "response": WORDS[(i + 3) % 9 + 1]} for i in range(n)]
    )


def _ctx(model, tokenizer, examples, step: int = 1) -> TaskContext:
    return TaskContext(model, tokenizer, "t", step, examples, TrainConfig(batch_size=4), seed=step)


def _model(kind: str = "llama"):
    return tiny_model(kind, WORDS + ["a", "b"])


def _nudge(model, amount: float = 0.01) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(amount)


@pytest.mark.parametrize("kind", ["llama", "mt5"])
def test_l2sp_penalty_is_zero_at_the_anchor_and_grows(kind: str) -> None:
    model, _ = _model(kind)
    method = L2SP(strength=1.0)
    model = method.prepare_model(model, ["t"])
    assert float(method.extra_loss(model)) == 0.0
    _nudge(model, 0.01)
    small = float(method.extra_loss(model))
    _nudge(model, 0.01)
    n = sum(p.numel() for p in model.parameters())
    assert small == pytest.approx(0.5 * n * 0.01**2, rel=1e-3)
    assert float(method.extra_loss(model)) == pytest.approx(4 * small, rel=1e-3)


@pytest.mark.parametrize("online", [False, True])
def test_ewc_penalty_is_zero_at_the_anchor_and_grows(online: bool) -> None:
    model, tokenizer = _model()
    method = EWC(strength=1.0, fisher_examples=8, online=online)
    method.prepare_model(model, ["t"])
    assert method.extra_loss(model) is None  # nothing consolidated yet
    method.after_task(_ctx(model, tokenizer, _examples()))
    [(fisher, _)] = method._terms
    assert all((f >= 0).all() for f in fisher.values()) and sum(float(f.sum()) for f in fisher.values()) > 0
    assert float(method.extra_loss(model)) == 0.0
    _nudge(model, 0.01)
    first = float(method.extra_loss(model))
    _nudge(model, 0.01)
    assert first > 0 and float(method.extra_loss(model)) == pytest.approx(4 * first, rel=1e-3)
    method.after_task(_ctx(model, tokenizer, _examples(tag="b"), step=2))
    assert len(method._terms) == (1 if online else 2)


def test_replay_batches_hold_the_configured_fraction() -> None:
    model, tokenizer = _model()
    method = Replay(ratio=0.25, buffer_size=6)
    first = _examples(tag="a")
    assert method.training_examples(_ctx(model, tokenizer, first)) is first  # nothing to replay yet
    method.after_task(_ctx(model, tokenizer, first))
    mixed = method.training_examples(_ctx(model, tokenizer, _examples(n=30, tag="b"), step=2))
    replayed = sum(row["prompt"].endswith(" a") for row in mixed)
    assert len(mixed) == 40 and replayed == 10  # 10 / 40 = 0.25
    assert len(method.state_dict()["buffer"]) == 6


def test_replay_mixes_the_streams_general_text_from_the_first_task() -> None:
    model, tokenizer = _model()
    general = _examples(n=12, tag="g")
    method = Replay(ratio=0.25, buffer_size=6)  # general_data: stream (the default)

    def ctx(examples, step):
        return TaskContext(model, tokenizer, "t", step, examples, TrainConfig(batch_size=4), step, general)

    first = _examples(n=30, tag="a")
    mixed = method.training_examples(ctx(first, 1))
    assert len(mixed) == 40 and sum(row["prompt"].endswith(" g") for row in mixed) == 10  # general only
    method.after_task(ctx(first, 1))
    mixed = method.training_examples(ctx(_examples(n=30, tag="b"), 2))
    assert sum(row["prompt"].endswith(" g") for row in mixed) == 5  # half general, half the buffer
    assert sum(row["prompt"].endswith(" a") for row in mixed) == 5
    off = Replay(ratio=0.25, buffer_size=6, general_data=None)
    assert off.training_examples(ctx(first, 1)) is first


@pytest.mark.parametrize("kind", ["llama", "mt5"])
def test_lora_keeps_the_base_bit_identical(kind: str) -> None:
    model, tokenizer = _model(kind)
    method = LoRA(lora=LoRASettings(r=2, alpha=4))
    model = method.prepare_model(model, ["t"])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = TrainConfig(steps=3, batch_size=4, lr=1e-2)
    train_on_task(model, tokenizer, _examples(), config, seed=0, extra_loss=method.extra_loss)
    after = dict(model.named_parameters())
    base = [n for n in before if "lora_" not in n]
    trained = [n for n in before if "lora_B" in n]
    assert base and trained
    assert all(torch.equal(before[n], after[n]) for n in base)
    assert any(not torch.equal(before[n], after[n]) for n in trained)


def test_olora_penalty_falls_as_subspaces_become_orthogonal() -> None:
    model, _ = _model()
    method = OLoRA(lora=LoRASettings(r=2), strength=1.0)
    model = method.prepare_model(model, ["t1", "t2"])
    layers = [m for m in model.modules() if isinstance(getattr(m, "lora_A", None), torch.nn.ModuleDict)]
    with torch.no_grad():
        for layer in layers:
            a1, a2 = layer.lora_A[adapter_name(1)].weight, layer.lora_A[adapter_name(2)].weight
            a1.zero_()
            a1[0, 0] = a1[1, 1] = 1.0
            a2.copy_(a1)  # the same subspace
    same = float(orthogonality(model, 2))
    with torch.no_grad():
        for layer in layers:
            a2 = layer.lora_A[adapter_name(2)].weight
            a2.zero_()
            a2[0, 2] = a2[1, 3] = 1.0  # orthogonal rows
    assert same > 0 and float(orthogonality(model, 2)) == 0.0
    method.before_task(TaskContext(model, None, "t2", 2, _examples(), TrainConfig(), 2))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(f".{adapter_name(2)}." in n for n in trainable)


def _run(tmp_path, cache_dir, overrides: list[str], name: str) -> pd.DataFrame:
    cfg = compose([f"paths.root_dir={tmp_path}", f"paths.cache_dir={cache_dir}", *SMALL, *TWO_TASKS, *overrides])
    runner.run_experiment(cfg, tmp_path / name)
    return read_results(tmp_path / name)


def test_every_hook_fires_in_order(tmp_path, cache_dir) -> None:
    _run(tmp_path, cache_dir, ["method._target_=tests.helpers.RecordingMethod", "method.name=recording"], "mock")
    expected = ["prepare_model:translate,count", "state_dict"]
    for task in ("translate", "count"):
        expected += [
            f"before_task:{task}",
            f"training_examples:{task}",
            "extra_loss",
            f"after_task:{task}",
            "state_dict",
        ]
    assert RecordingMethod.calls == expected


def _values(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.sort_values(["step", "eval_task"])[["step", "eval_task", "value"]].reset_index(drop=True)


def test_wise_with_alpha_one_equals_full(tmp_path, cache_dir) -> None:
    full = _run(tmp_path, cache_dir, ["method=full"], "full")
    wise = _run(tmp_path, cache_dir, ["method=wise", "method.alpha=1.0"], "wise")
    pd.testing.assert_frame_equal(_values(full), _values(wise))
    partial = _run(tmp_path, cache_dir, ["method=wise", "method.alpha=0.5"], "wise_half")
    assert not _values(partial)["value"].equals(_values(full)["value"])


def test_merge_by_task_arithmetic_at_scale_one_is_full_fine_tuning(tmp_path, cache_dir) -> None:
    """θ0 + Σ τ_i is θ_t up to rounding: every item's log-likelihoods agree closely."""
    full = _run(tmp_path, cache_dir, ["method=full"], "full")
    _run(tmp_path, cache_dir, ["method=merge", "method.operator=task_arithmetic"], "merge")
    logliks = [np.concatenate(read_items(tmp_path / name)["logliks"].to_list()) for name in ("full", "merge")]
    np.testing.assert_allclose(*logliks, atol=1e-4)
    ties = _run(tmp_path, cache_dir, ["method=merge", "method.operator=ties"], "ties")
    assert not _values(ties)["value"].equals(_values(full)["value"])


def test_adapters_keep_the_base_and_score_each_task_with_its_own(tmp_path, cache_dir) -> None:
    rows = _run(tmp_path, cache_dir, ["method=adapters"], "adapters")
    general = rows[rows["eval_kind"] == "general"].pivot_table(index="step", columns="eval_task", values="value")
    assert (general.nunique() == 1).all(), "with general=base, the base model is scored at every step"
    stream = rows[rows["eval_kind"] == "stream"].pivot_table(index="step", columns="eval_task", values="value")
    # count's adapter is untrained at step 1: it is scored on the base, exactly as at step 0
    assert stream.loc[1, "stream_count"] == stream.loc[0, "stream_count"]
    # translate keeps its own adapter: training count's adapter leaves its score untouched
    assert stream.loc[2, "stream_translate"] == stream.loc[1, "stream_translate"]


METHODS = [
    "full",
    "lora",
    "adapters",
    "olora",
    "ewc",
    "l2sp",
    "replay",
    "wise",
    "merge",
    "lwf",
    "agem",
    "ilora",
    "sdft",
]


# every method, and merging LoRA adapters (dare: its masks come from the global RNG, seeded per task)
RESUMED = [*METHODS, "merge method.adapters=true method.operator=dare"]


@pytest.mark.parametrize("method", RESUMED)
def test_resumed_run_equals_uninterrupted(method: str, tmp_path, cache_dir, monkeypatch) -> None:
    name, *knobs = method.split()
    overrides = [f"method={name}", *knobs] + (["method.fisher_examples=16"] if method == "ewc" else [])
    straight = _run(tmp_path, cache_dir, overrides, "straight")
    resumed = crash_after_step_one_then_resume(lambda name: _run(tmp_path, cache_dir, overrides, name), monkeypatch)
    pd.testing.assert_frame_equal(_values(straight), _values(resumed))


def test_every_method_runs_on_an_encoder_decoder_and_the_report_compares_them(tmp_path, cache_dir) -> None:
    methods = METHODS  # one stream task each: every hook runs once (the resume tests run two)
    one_task = ["stream.tasks=[translate]"]
    done = run_cli(["-m", "model=tiny_encdec", f"method={','.join(methods)}", *SMALL, *one_task], tmp_path, cache_dir)
    assert done.returncode == 0, done.stderr[-3000:]
    sweep = tmp_path / "results" / "tiny_world" / "multirun"
    rows = read_results(*sorted(sweep.glob("*/results.parquet")))
    assert set(rows["method"]) == set(methods) and set(rows["architecture"]) == {"encoder-decoder"}
    assert all(set(group["step"]) == {0, 1} for _, group in rows.groupby("method"))
    assert (sweep / "report" / "method_comparison.png").stat().st_size > 10_000
    summary = pd.read_csv(sweep / "report" / "summary.csv")
    assert sorted(summary["method"]) == sorted(methods)


def test_a_methods_new_weights_come_from_the_runs_seed_not_the_process(tmp_path, cache_dir) -> None:
    """A multirun's jobs share one process: a job's LoRA adapters must not depend on the jobs before it."""
    first = _run(tmp_path, cache_dir, ["method=lora"], "first")
    torch.rand(1000)  # what an earlier job in the same process leaves behind
    again = _run(tmp_path, cache_dir, ["method=lora"], "again")
    pd.testing.assert_frame_equal(_values(first), _values(again))


# ---- merging ----


def test_merge_operators_equal_their_formulas_on_hand_made_updates() -> None:
    a = torch.tensor([3.0, -1.0, 0.5, -2.0])
    b = torch.tensor([-1.0, -4.0, 0.25, 2.0])
    assert torch.equal(task_arithmetic([a, b]), a + b)
    assert torch.equal(magmax([a, b]), torch.tensor([3.0, -4.0, 0.5, -2.0]))  # ties of magnitude: the first
    # ties, density 0.5: a keeps 3, -2; b keeps -4, 2; elected signs: +1, -1, 0, 0 → disjoint means
    assert torch.equal(trim(a, 0.5), torch.tensor([3.0, 0.0, 0.0, -2.0]))
    assert torch.equal(ties([a, b], 0.5), torch.tensor([3.0, -4.0, 0.0, 0.0]))
    # density 1: entry 3's signs agree (+), entry 4's cancel (sum 0: nothing elected)
    assert torch.equal(ties([a, b], 1.0), torch.tensor([3.0, -2.5, 0.375, 0.0]))
    # dare: the masks a fixed seed draws, the kept entries rescaled by 1/(1 − p)
    p = 0.5
    draws = torch.Generator().manual_seed(7)
    first = torch.rand(4, generator=draws) >= p
    second = torch.rand(4, generator=draws) >= p
    expected = a * first / (1 - p) + b * second / (1 - p)
    assert torch.allclose(dare([a, b], p, torch.Generator().manual_seed(7)), expected)
    assert torch.equal(dare([a], 0.0, torch.Generator().manual_seed(0)), a)


@pytest.mark.parametrize("operator", ["task_arithmetic", "ties", "dare", "magmax"])
def test_merging_one_task_gives_that_tasks_model(operator: str) -> None:
    model, tokenizer = _model()
    method = Merge(operator=operator, density=1.0, drop=0.0)
    model = method.prepare_model(model, ["t"])
    ctx = _ctx(model, tokenizer, _examples())
    method.before_task(ctx)
    train_on_task(model, tokenizer, ctx.examples, TrainConfig(steps=3, batch_size=4, lr=1e-2), seed=0)
    trained = {n: p.detach().clone() for n, p in model.named_parameters()}
    method.after_task(ctx)
    for name, param in model.named_parameters():
        assert torch.allclose(param, trained[name], atol=1e-6), name


@pytest.mark.parametrize("kind", ["llama", "mt5"])
@pytest.mark.parametrize("operator", ["task_arithmetic", "ties", "dare", "magmax"])
def test_merging_lora_adapters_equals_each_operator_on_the_adapters_updates(operator: str, kind: str) -> None:
    """adapters=true: after each task the merged adapter's update is λ·merge(ΔW_1..ΔW_t) of the task
    adapters' updates (at a rank that keeps it exact), only the task's own adapter trains, and the base
    stays bit-identical. peft merges a single adapter as it is: after one task, λ·ΔW_1 for every operator."""
    model, tokenizer = _model(kind)
    base = {n: p.detach().clone() for n, p in model.named_parameters()}
    method = Merge(operator=operator, adapters=True, scale=0.5, density=0.25, drop=0.5, merged_rank=64)
    model = method.prepare_model(model, ["a", "b"])
    draws = torch.Generator().manual_seed(0)
    for step in (1, 2):
        ctx = _ctx(model, tokenizer, _examples(), step)
        method.before_task(ctx)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all(f".{adapter_name(step)}." in n for n in trainable)
        with torch.no_grad():  # the task's training, as random updates
            for p in trainable.values():
                p.copy_(0.1 * torch.randn(p.shape, generator=draws))
        method.after_task(ctx)
        assert model.base_model.active_adapter == MERGED
        for layer in [m for m in model.modules() if isinstance(m, LoraLayer)]:
            deltas = [layer.get_delta_weight(adapter_name(i)) for i in range(1, step + 1)]
            merged = layer.get_delta_weight(MERGED)
            if step == 1:
                torch.testing.assert_close(merged, 0.5 * deltas[0], atol=1e-5, rtol=1e-4)
            elif operator == "dare":  # each update's entry dropped, or kept and doubled (drop 0.5)
                d1, d2 = deltas
                options = torch.stack([0 * d1, d1, d2, d1 + d2]) * 0.5 * 2
                closest = (options - merged).abs().min(0).values
                assert closest.max() < 1e-5 and 0.1 < (merged.abs() < 1e-6).float().mean() < 0.4
            else:
                formula = {"task_arithmetic": task_arithmetic, "magmax": magmax}.get(operator, lambda v: ties(v, 0.25))
                torch.testing.assert_close(merged, 0.5 * formula(deltas), atol=1e-5, rtol=1e-4)
    for name, param in model.named_parameters():
        if "lora_" not in name:
            assert torch.equal(param, base[name.replace("base_model.model.", "").replace(".base_layer", "")]), name


def test_merges_later_knobs_leave_the_hash_of_earlier_merge_runs_alone() -> None:
    """adapters, lora and merged_rank came after the first merge runs: hashed only when set, so a
    run made before them (its config without them) keeps its hash, and resumes."""
    now = compose(["method=merge"])
    before = copy.deepcopy(now)
    with open_dict(before):
        for knob in ("adapters", "lora", "merged_rank"):
            del before.method[knob]
    assert config_hash(now) == config_hash(before)
    adapters = config_hash(compose(["method=merge", "method.adapters=true"]))
    assert (
        len(
            {
                config_hash(now),
                adapters,
                config_hash(compose(["method=merge", "method.adapters=true", "method.lora.r=4"])),
            }
        )
        == 3
    )


# ---- learning without forgetting ----


def test_lwf_loss_equals_its_hand_computation_on_a_batch() -> None:
    model, tokenizer = _model()
    method = LwF(strength=0.7, temperature=2.0)
    ctx = _ctx(model, tokenizer, _examples())
    method.before_task(ctx)  # the teacher: the model as it is now
    _nudge(model, 0.05)
    batch = next(iter(make_loader(ctx.examples, tokenizer, model, ctx.train_config, 4, seed=0)))
    got = float(method.batch_loss(model, batch).detach())
    with torch.no_grad():
        student, teacher = model(**batch).logits, method._teacher(**batch).logits
    total, count = 0.0, 0
    for row in range(batch["labels"].shape[0]):
        for i in range(batch["labels"].shape[1] - 1):
            if batch["labels"][row, i + 1] == -100:
                continue
            p = torch.softmax(teacher[row, i].double() / 2.0, -1)
            q = torch.softmax(student[row, i].double() / 2.0, -1)
            total += float((p * (p.log() - q.log())).sum())
            count += 1
    assert count > 0 and got == pytest.approx(0.7 * 4.0 * total / count, rel=1e-4)
    method.after_task(ctx)
    assert method.batch_loss(model, batch) is None  # no teacher between tasks


def test_lwf_with_strength_zero_trains_exactly_as_full() -> None:
    weights = []
    for method in (None, LwF(strength=0.0)):
        model, tokenizer = _model()
        ctx = _ctx(model, tokenizer, _examples())
        hook = None
        if method is not None:
            method.before_task(ctx)
            hook = method.batch_loss
        train_on_task(model, tokenizer, ctx.examples, TrainConfig(steps=3, batch_size=4), seed=0, batch_loss=hook)
        weights.append({n: p.detach().clone() for n, p in model.named_parameters()})
    assert all(torch.equal(weights[0][n], weights[1][n]) for n in weights[0])


def test_lwf_resumed_inside_a_task_distils_from_the_same_teacher(tmp_path, cache_dir, monkeypatch) -> None:
    """A crash right after a mid-task checkpoint of the second task: the resumed task's teacher is the
    model before that task (kept in the checkpoint), not the weights it resumed from."""
    overrides = ["method=lwf", "train.checkpoint_every_minutes=1e-9"]
    straight = _run(tmp_path, cache_dir, overrides, "straight")
    save = runner.save_checkpoint

    def crash_inside_task_two(run_dir, step, weights, optimizer, method, task=None, config_hash=None):
        save(run_dir, step, weights, optimizer, method, task, config_hash)
        if task is not None and step == 1 and task["step"] == 4:
            assert method["teacher"] is not None
            raise Crash

    monkeypatch.setattr(runner, "save_checkpoint", crash_inside_task_two)
    with pytest.raises(Crash):
        _run(tmp_path, cache_dir, overrides, "crashed")
    monkeypatch.setattr(runner, "save_checkpoint", save)
    pd.testing.assert_frame_equal(_values(straight), _values(_run(tmp_path, cache_dir, overrides, "crashed")))
    logliks = [np.concatenate(read_items(tmp_path / name)["logliks"].to_list()) for name in ("straight", "crashed")]
    np.testing.assert_allclose(*logliks, rtol=0, atol=1e-6)


# ---- A-GEM ----


def test_agem_projection_removes_the_conflict_and_leaves_an_agreeing_gradient() -> None:
    reference = torch.tensor([1.0, 2.0, -1.0])
    conflicting = torch.tensor([-3.0, 0.5, 2.0])  # dot = -4
    projected = project(conflicting, reference)
    assert float(torch.dot(projected, reference)) == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(projected, conflicting + 4 / 6 * reference)
    agreeing = torch.tensor([1.0, 0.0, 0.5])
    assert project(agreeing, reference) is agreeing


def test_agem_leaves_every_step_with_no_conflict_against_the_memory() -> None:
    model, tokenizer = _model()
    method = AGEM(memory_per_task=8, memory_batch=8)
    first = _ctx(model, tokenizer, _examples(tag="a"), step=1)
    method.before_task(first)
    method.after_task(first)  # the memory: 8 of task 1's examples
    second = _ctx(model, tokenizer, _examples(tag="b"), step=2)
    method.before_task(second)
    params = [p for p in model.parameters() if p.requires_grad]
    for seed in range(3):  # a random gradient, conflicting or not
        generator = torch.Generator().manual_seed(seed)
        for p in params:
            p.grad = torch.randn(p.shape, generator=generator)
        before = torch.cat([p.grad.flatten() for p in params])
        reference = method.memory_gradient(model, params, update=seed + 1)  # the draw the hook makes next
        method.before_update(model)
        after = torch.cat([p.grad.flatten() for p in params])
        assert float(torch.dot(after, reference)) >= -1e-4 * float(reference.norm() * before.norm())
        if float(torch.dot(before, reference)) >= 0:
            assert torch.equal(after, before)
        else:
            assert not torch.equal(after, before)


# ---- I-LoRA ----


def test_ilora_slow_adapter_is_the_moving_average_of_the_fast_one_and_is_evaluated() -> None:
    model, tokenizer = _model()
    method = ILoRA(ema=0.9, consistency=0.5)
    model = method.prepare_model(model, ["t"])
    pairs = method._pairs(model)
    assert pairs and all(torch.equal(slow, fast) for slow, fast in pairs)  # both start alike
    ctx = _ctx(model, tokenizer, _examples())
    batch = next(iter(make_loader(ctx.examples, tokenizer, model, ctx.train_config, 4, seed=0)))
    assert float(method.batch_loss(model, batch).detach()) == 0.0  # same weights, same hidden states
    expected = [slow.detach().clone() for slow, _ in pairs]

    def record_then_average(m) -> None:  # the EMA by hand, from each step's fast weights
        for i, (_, fast) in enumerate(pairs):
            expected[i] = 0.9 * expected[i] + 0.1 * fast.detach()
        method.after_update(m)

    config = TrainConfig(steps=4, batch_size=4, lr=1e-2)
    train_on_task(
        model, tokenizer, ctx.examples, config, seed=0, batch_loss=method.batch_loss, after_update=record_then_average
    )
    for (slow, fast), want in zip(pairs, expected, strict=True):
        assert torch.allclose(slow, want, atol=1e-6)
        assert not torch.equal(slow, fast) and not slow.requires_grad and fast.requires_grad
    with method.evaluating(model, "any"):
        assert model.base_model.active_adapter == "slow"
    assert model.base_model.active_adapter == "fast"


# ---- self-distillation fine-tuning ----


def test_sdft_trains_on_the_models_own_rewrites_cached_through_a_resume(monkeypatch) -> None:
    model, tokenizer = _model()
    method = SDFT(keep="all", max_new_tokens=4)
    ctx = _ctx(model, tokenizer, _examples(6))
    rows = method.training_examples(ctx).to_list()
    for row, original in zip(rows, ctx.examples.to_list(), strict=True):
        prompt = method.template.format(prompt=original["prompt"], response=original["response"])
        ids = tokenizer(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        own = tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).split("\n")[0].strip()
        assert row["prompt"] == original["prompt"] and row["response"] == (own or original["response"])
    # cached: a resumed task (its state loaded) trains on the same rows without generating again
    state = method.state_dict()
    resumed = SDFT(keep="all", max_new_tokens=4)
    resumed.load_state_dict(state)
    monkeypatch.setattr("forgetbench.methods.sdft.generate_greedily", lambda *a, **k: pytest.fail("regenerated"))
    assert resumed.training_examples(ctx).to_list() == rows
    # keep=containing: a rewrite that lost the reference answer gives way to the reference
    monkeypatch.setattr(
        "forgetbench.methods.sdft.generate_greedily",
        lambda m, t, prompts, *a: ["it is " + prompts[0][:3]] * len(prompts),
    )
    kept = SDFT(keep="containing").rewrite(ctx)
    assert [r["response"] for r in kept] == ctx.examples["response"]
