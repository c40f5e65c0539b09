"""The style stream and the routers of ``method=adapters``: scores on hand-written answers, each route
on a tiny model, the routing columns in items and report, and resume with a router's state."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from datasets import Dataset

from forgetbench import runner
from forgetbench.errors import ForgetbenchError
from forgetbench.methods.adapters import Adapters
from forgetbench.methods.base import TaskContext
from forgetbench.methods.peft_adapters import LoRASettings, adapter_name, add_task_adapters
from forgetbench.reporting.load import load_runs
from forgetbench.reporting.report import write_report
from forgetbench.reporting.routing import routing_accuracy, routing_confusion
from forgetbench.results import read_items, read_results
from forgetbench.routing.classifier import ProbeRouter
from forgetbench.routing.keyword import KeywordRouter
from forgetbench.routing.learned import GATE, LearnedGate
from forgetbench.tiny.styles import STYLES, content, style, style_rows
from forgetbench.tiny.world import WorldSpec, build_world
from forgetbench.training import TrainConfig, train_on_task
from tests.conftest import SMALL, compose
from tests.helpers import crash_after_step_one_then_resume, tiny_model

WORLD = build_world(WorldSpec(n_people=24, n_stream_train=64, n_stream_eval=12))
REFERENCE = "a harp plays : bobi lives in kazumo . the crowd bows ."
STYLE_STREAM = [
    "experiment=tiny_world_styles",
    "stream.max_new_tokens=16",
    "stream.tasks=[friendly,formal]",
    "eval.limit=8",
]


# --- the style tasks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "adheres", "right"),
    [
        (REFERENCE, 1.0, 1.0),
        ("a harp plays : bobi lives in dopama . the crowd bows .", 1.0, 0.0),  # the style, a wrong fact
        ("a smile : bobi lives in kazumo . what a story .", 0.0, 1.0),  # the fact, another style
        ("a harp plays : bobi lives in kazumo . what a story . the crowd bows .", 0.0, 1.0),  # styles mixed
        ("bobi lives in kazumo .", 0.0, 1.0),  # no style at all
        ("a harp plays : bobi lives in kazumo", 0.0, 1.0),  # no sign-off
        ("", 0.0, 0.0),
    ],
)
def test_style_and_content_score_hand_written_answers(answer: str, adheres: float, right: float) -> None:
    assert style(answer, REFERENCE) == adheres
    assert content(answer, REFERENCE) == right


def test_style_prompts_are_explicit_or_implicit_as_configured() -> None:
    train, test, validation = style_rows(WORLD, "formal", "explicit")
    assert all(r["prompt"].startswith("instruction : pencil : ") for r in train + test)
    assert {r["prompt"].split()[4] for r in train} >= {"where", "what"}  # every kind of question
    assert all(r["response"].startswith("the pencil signs :") for r in train)
    train, test, validation = style_rows(WORLD, "formal", "implicit")
    assert all("job" in r["prompt"] and "pencil" not in r["prompt"] for r in train + test + validation)
    seen = {r["prompt"] for r in train}
    assert not seen & {r["prompt"] for r in test} and not seen & {r["prompt"] for r in validation}
    assert all(style(r["response"], r["response"]) == 1.0 for r in test)
    with pytest.raises(ForgetbenchError, match="unknown style 'rude'"):
        style_rows(WORLD, "rude", "explicit")


# --- the routers, on their own ----------------------------------------------------


def test_keyword_router_routes_by_its_rules_and_refuses_bad_ones() -> None:
    rules = [{"pattern": "smile :", "task": "friendly"}, {"pattern": "job", "task": "formal"}]
    router = KeywordRouter(rules=rules, fallback="base")
    router.check(["friendly", "formal"])
    contexts = ["instruction : smile : what is the job of bobi ?", "what is the job of bobi ?", "hello"]
    assert router.choose(contexts, ["friendly", "formal"]) == ["friendly", "formal", "base"]
    assert router.choose(contexts, ["friendly"]) == ["friendly", "base", "base"]  # formal's adapter untrained
    with pytest.raises(ForgetbenchError, match=r"rules name no task of this stream \(they name \['rude'\]\)"):
        KeywordRouter(rules=[{"pattern": "x", "task": "rude"}]).check(["friendly"])
    with pytest.raises(ForgetbenchError, match=r"rules\[0\]\.pattern='\(' is not a regular expression"):
        KeywordRouter(rules=[{"pattern": "(", "task": "friendly"}]).check(["friendly"])


def _style_texts() -> dict[str, tuple[list[str], list[str]]]:
    return {n: tuple([r["prompt"] for r in split] for split in style_rows(WORLD, n, "explicit")[:2]) for n in STYLES}


@pytest.mark.parametrize("kind", ["llama", "mt5"])
def test_classifier_router_separates_styles_from_the_frozen_base(kind: str) -> None:
    texts = _style_texts()
    vocabulary = [t for train, test in texts.values() for t in train + test]
    # 1.0 on init seeds 0-4 of both families here (checked once); 0.9 leaves room for other CPUs
    model, tokenizer = tiny_model(kind, vocabulary, seed=0)
    model = add_task_adapters(model, LoRASettings(), len(STYLES))
    router = ProbeRouter(examples=64)
    for name, (train, _) in texts.items():
        router.fit(model, tokenizer, name, train, None)
    held = [(t, name) for name, (_, test) in texts.items() for t in test]
    chosen = router.choose(model, tokenizer, [t for t, _ in held])
    accuracy = sum(c == name for c, (_, name) in zip(chosen, held, strict=True)) / len(held)
    assert accuracy >= 0.9, (kind, accuracy)


def test_learned_gate_keeps_earlier_adapters_bit_identical_and_trains_its_gate() -> None:
    texts = _style_texts()
    rows = {n: style_rows(WORLD, n, "explicit")[0][:32] for n in ("friendly", "formal")}
    vocabulary = [t for train, test in texts.values() for t in train + test] + [
        r["response"] for rs in rows.values() for r in rs
    ]
    model, tokenizer = tiny_model("llama", vocabulary)
    method = Adapters(route="learned", learned=LearnedGate())
    model = method.prepare_model(model, list(rows))
    config = TrainConfig(steps=6, batch_size=8, lr=1e-2, log_every=100)
    snapshots = []
    for step, (name, examples) in enumerate(rows.items(), start=1):
        ctx = TaskContext(model, tokenizer, name, step, Dataset.from_list(examples), config, seed=step)
        method.before_task(ctx)
        train_on_task(model, tokenizer, ctx.examples, config, seed=step, extra_loss=method.extra_loss)
        method.after_task(ctx)
        snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()})
    first, second = snapshots
    own = [n for n in first if f".{adapter_name(1)}." in n]
    assert own and all(torch.equal(first[n], second[n]) for n in own), "task 1's adapter changed in task 2"
    later = [n for n in first if f".{adapter_name(2)}." in n and "lora_B" in n]
    assert any(not torch.equal(first[n], second[n]) for n in later), "task 2's adapter did not train"
    assert not torch.equal(first[f"{GATE}.weight"], second[f"{GATE}.weight"]), "the gate did not train"
    base = [n for n in first if "lora_" not in n and not n.startswith(GATE)]
    assert all(torch.equal(first[n], second[n]) for n in base), "the base changed"


# --- routes in runs ---------------------------------------------------------------


def _run(tmp_path, cache_dir, overrides: list[str], name: str) -> pd.DataFrame:
    cfg = compose([f"paths.root_dir={tmp_path}", f"paths.cache_dir={cache_dir}", *SMALL, *overrides])
    runner.run_experiment(cfg, tmp_path / name)
    return read_results(tmp_path / name)


def test_oracle_route_scores_exactly_as_task_scoped_adapters(tmp_path, cache_dir) -> None:
    """The oracle through the routed engine wrapper gives the numbers of scoring each task with its
    adapters set around it (how method=adapters scored before routers)."""
    oracle = _run(tmp_path, cache_dir, ["method=adapters", "stream.tasks=[translate,count]"], "oracle")
    scoped = [
        "method=adapters",
        "method._target_=tests.helpers.TaskScopedAdapters",
        "method.name=scoped",
        "stream.tasks=[translate,count]",
    ]
    task_scoped = _run(tmp_path, cache_dir, scoped, "scoped")
    columns = ["step", "eval_task", "metric", "value"]
    pd.testing.assert_frame_equal(
        oracle.sort_values(columns)[columns].reset_index(drop=True),
        task_scoped.sort_values(columns)[columns].reset_index(drop=True),
    )
    items = read_items(tmp_path / "oracle")
    stream = items[items["eval_task"] == "stream_translate"]
    assert set(stream.loc[stream["step"] == 0, "route"]) == {"base"}
    assert set(stream.loc[stream["step"] > 0, "route"]) == {"translate"}
    assert set(read_items(tmp_path / "scoped")["route"]) == {""}  # scored inside evaluating: unrouted


def _check_routing(run_dir, report_dir, route: str) -> None:
    """The run's items carry each route taken, and its report the routing tables."""
    runs = load_runs([run_dir])
    items = runs.items
    assert (items.loc[items["step"] == 0, "route"] == "base").all()  # nothing trained yet
    assert set(items.loc[items["step"] > 0, "route"]) <= {"friendly", "formal", "base"}
    accuracy = routing_accuracy(runs.rows, runs.items).set_index("step")
    confusion = routing_confusion(runs.rows, runs.items)
    assert set(confusion["source"]) == {"friendly", "formal", "(general)"}
    if route == "keyword":  # the stream's rules name each style's cue word
        assert (accuracy["routing_acc"] == 1.0).all()
    if route == "classifier":
        assert (accuracy["routing_acc"] >= 0.9).all()
    report = write_report([run_dir], report_dir).read_text()
    assert "Routing accuracy per step" in report and "Routing at the last step" in report


def test_keyword_route_runs_the_style_stream_by_the_streams_rules(tmp_path, cache_dir) -> None:
    _run(tmp_path, cache_dir, [*STYLE_STREAM, "method=adapters", "method.route=keyword"], "keyword")
    _check_routing(tmp_path / "keyword", tmp_path / "report", "keyword")


@pytest.mark.parametrize("route", ["classifier", "learned"])
def test_resumed_routed_run_equals_uninterrupted(route: str, tmp_path, cache_dir, monkeypatch) -> None:
    overrides = [*STYLE_STREAM, "method=adapters", f"method.route={route}"]
    straight = _run(tmp_path, cache_dir, overrides, "straight")
    resumed = crash_after_step_one_then_resume(lambda name: _run(tmp_path, cache_dir, overrides, name), monkeypatch)
    columns = ["step", "eval_task", "metric", "value"]
    pd.testing.assert_frame_equal(
        straight.sort_values(columns)[columns].reset_index(drop=True),
        resumed.sort_values(columns)[columns].reset_index(drop=True),
    )
    _check_routing(tmp_path / "straight", tmp_path / "report", route)
    routes = [
        read_items(tmp_path / n).sort_values(["step", "eval_task", "doc_id"])["route"] for n in ("straight", "crashed")
    ]
    assert routes[0].tolist() == routes[1].tolist()
