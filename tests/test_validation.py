"""Every bad value stops in setup with one line naming the field, the value and what is valid."""

from __future__ import annotations

import json

import pytest

from forgetbench.assembly import build
from forgetbench.errors import ForgetbenchError
from forgetbench.runner import Recipe
from forgetbench.streams.local import local_stream_task
from tests.conftest import SMALL, compose, run_cli
from tests.test_configs import EXPERIMENTS

# (overrides, the config group built, what the one line must say): one or more bad values of every
# kind of field: numbers out of range, wrong types, unknown enum values, nested nodes
BAD_FIELDS = [
    (["train.lr=-1e-3"], "train", "train.lr=-0.001 is not valid: input should be greater than 0"),
    (["train.batch_size=0"], "train", "train.batch_size=0 is not valid: input should be greater than or equal to 1"),
    (["train.steps=0"], "train", "train.steps=0 is not valid"),  # a run that would train nothing
    (["train.epochs=0"], "train", "train.epochs=0 is not valid"),
    (["train.steps=ten"], "train", "train.steps='ten' is not valid: input should be a valid integer"),
    (
        ["train.schedule=linear"],
        "train",
        "train.schedule='linear' is not valid: input should be 'constant' or 'cosine'",
    ),
    (["train.autocast=fp8"], "train", "train.autocast='fp8' is not valid"),
    (["train.max_grad_norm=-1"], "train", "train.max_grad_norm=-1 is not valid"),
    (
        ["train.loss_on_prompt=maybe"],
        "train",
        "train.loss_on_prompt='maybe' is not valid: input should be a valid boolean",
    ),
    (["model.hidden_size=0"], "model", "model.hidden_size=0 is not valid"),
    (["model.hidden_size=30"], "model", "model.hidden_size=30 is not valid: it must be a multiple of num_heads=4"),
    (["model.architecture=transformer"], "model", "model.architecture='transformer' is not valid"),
    (["model.pretrain.lr=0"], "model", "model.pretrain.lr=0 is not valid"),
    (["model=bloomz_1b1", "model.dtype=float8"], "model", "model.dtype='float8' is not valid"),
    (["model=bloomz_1b1", "model.train_batch_size=0"], "model", "model.train_batch_size=0 is not valid"),
    (
        ["world.qa_fraction=1.5"],
        "stream",
        "world.qa_fraction=1.5 is not valid: input should be less than or equal to 1",
    ),
    (["world.n_people=0"], "model", "world.n_people=0 is not valid"),
    (["+model.input_eos=true"], "model", "model.input_eos=True is not valid: only an encoder-decoder's input"),
    (["stream.max_train_examples=0"], "stream", "stream.max_train_examples=0 is not valid"),
    (["stream.order=count"], "stream", "stream.order='count' is not valid: input should be a valid list"),
    (["eval.limit=0"], "eval", "eval.limit=0 is not valid"),
    (["eval.batch_size=-8"], "eval", "eval.batch_size=-8 is not valid"),
    (["eval.num_fewshot=-1"], "eval", "eval.num_fewshot=-1 is not valid"),
    (
        ["method=ewc", "method.device=gpu"],
        "method",
        "method.device='gpu' is not valid: input should be 'model' or 'cpu'",
    ),
    (["method=ewc", "method.fisher_examples=0"], "method", "method.fisher_examples=0 is not valid"),
    (["method=ewc", "method.decay=1.5"], "method", "method.decay=1.5 is not valid"),
    (["method=replay", "method.ratio=1.0"], "method", "method.ratio=1.0 is not valid: input should be less than 1"),
    (["method=replay", "method.buffer_size=-1"], "method", "method.buffer_size=-1 is not valid"),
    (["method=l2sp", "method.strength=-1"], "method", "method.strength=-1 is not valid"),
    (["method=wise", "method.alpha=2"], "method", "method.alpha=2 is not valid"),
    (["method=adapters", "method.general=newest"], "method", "method.general='newest' is not valid"),
    (["method=lora", "method.lora.r=0"], "method", "method.lora.r=0 is not valid"),
    (["method=lora", "method.lora.dropout=1.0"], "method", "method.lora.dropout=1.0 is not valid"),
]


@pytest.mark.parametrize(("overrides", "group", "message"), BAD_FIELDS, ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_field_is_named_with_its_value(overrides: list[str], group: str, message: str) -> None:
    cfg = compose(overrides)
    with pytest.raises(ForgetbenchError) as raised:
        build(cfg[group], group)
    assert message in str(raised.value) and "\n" not in str(raised.value)


@pytest.mark.parametrize(("key", "value"), [("seed", "abc"), ("seed", 1.5), ("keep_checkpoint", "maybe")])
def test_a_bad_top_level_value_is_named(key: str, value, tmp_path) -> None:
    cfg = compose([f"{key}={value}"])
    with pytest.raises(ForgetbenchError, match=rf"^{key}={value!r} is not valid: input should be a valid"):
        Recipe(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("seed", [-1, 4_000_001, 4294967296])
def test_a_seed_out_of_range_is_named_before_numpy_sees_it(seed: int, tmp_path) -> None:
    with pytest.raises(
        ForgetbenchError, match=rf"^seed={seed} is not valid: input should be (greater|less) than or equal"
    ):
        Recipe(compose([f"seed={seed}"]), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("experiment", ["", *EXPERIMENTS])
def test_every_experiment_passes_validation_without_loading_a_model(experiment: str, tmp_path) -> None:
    cfg = compose([f"experiment={experiment}"] if experiment else [])
    Recipe(cfg, tmp_path / "run")
    for group in ("train", "method", "model"):  # built, not loaded: no weights are read
        build(cfg[group], group)


ROWS = [{"prompt": f"p{i}", "response": f"r{i}"} for i in range(50)]
QUESTIONS = [{"question": f"q{i}", "choices": ["a", "b"], "answer": 0} for i in range(50)]


@pytest.mark.parametrize(
    ("split", "rows", "row", "field"),
    [
        ("train", [*ROWS[:30], {"prompt": "p"}, *ROWS[30:]], 31, "response"),  # left out of one row
        ("train", [*ROWS[:7], {"prompt": None, "response": "r"}, *ROWS[7:]], 8, "prompt"),  # null in one row
        ("test", [*ROWS[:40], {"prompt": "p", "response": None}], 41, "response"),
        ("test", [*QUESTIONS[:12], {"question": "q", "choices": None, "answer": 1}, *QUESTIONS[12:]], 13, "choices"),
    ],
)
def test_a_row_of_many_without_a_field_is_named(tmp_path, split: str, rows: list[dict], row: int, field: str) -> None:
    files = {"train": ROWS, "test": ROWS, split: rows}
    for name, content in files.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in content))
    with pytest.raises(ForgetbenchError) as raised:
        local_stream_task("mine", tmp_path / "train.jsonl", tmp_path / "test.jsonl", None)
    assert f"{split} file" in str(raised.value) and str(tmp_path / f"{split}.jsonl") in str(raised.value)
    assert f"row {row} has no {field!r} (missing or null)" in str(raised.value)


def _nothing_written(root) -> bool:
    names = {"results.parquet", "status.json", "checkpoint"}
    return not any(p.name in names for p in root.rglob("*")) if root.exists() else True


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lr=-1e-3"], "train.lr=-0.001 is not valid"),
        (["seed=abc"], "seed='abc' is not valid"),
        (["stream.tasks=[]"], "stream.tasks=[] leaves no task to train on"),
        (["paths.results_dir=/dev/null/results"], "paths.results_dir='/dev/null/results' cannot be created"),
        (["paths.hub_mirror=/no/such/mirror"], "paths.hub_mirror='/no/such/mirror' is not a folder"),
        (["train.nope=1"], "train.nope is not a config key; 'train' has: _target_, autocast, batch_size"),
        (["-m", "model=tiny_decoder,tiny_nope"], "model=tiny_nope is not an option of the config group 'model'"),
    ],
    ids=["range", "type", "empty-stream", "unwritable-results", "missing-mirror", "unknown-key", "unknown-option"],
)
def test_the_cli_stops_bad_input_in_one_line_writing_nothing(overrides, message, tmp_path, cache_dir) -> None:
    done = run_cli([*SMALL, *overrides], tmp_path, cache_dir)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "HYDRA_FULL_ERROR" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("forgetbench: error:")]
    assert message in line
    assert _nothing_written(tmp_path) and not list(tmp_path.glob("results/*/*/"))


def test_a_local_eval_task_row_without_a_field_is_named_at_setup(tmp_path) -> None:
    from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
    from forgetbench.evaluation.suite import EvalSuite
    from forgetbench.evaluation.task_configs import local_task_config, write_task_yaml
    from forgetbench.jsonl import write_jsonl

    data = tmp_path / "mine.jsonl"
    write_jsonl(data, [*QUESTIONS[:20], {"question": "q", "choices": ["a", "b"], "answer": None}, *QUESTIONS[20:]])
    write_task_yaml(local_task_config("mine_mc", data, "multiple_choice"), tmp_path / "tasks")
    (tmp_path / "tasks" / "mine_group.yaml").write_text("group: mine_group\ntask: [mine_mc]\n")
    for name in ("mine_mc", "mine_group"):  # a task, and a group holding it (as MMLU holds its subjects)
        suite = EvalSuite(name="mine", tasks=[name], include_path=[str(tmp_path / "tasks")])
        missing = rf"eval task '{name}': row 21 of .* has no 'answer' \(missing or null\)"
        with pytest.raises(ForgetbenchError, match=missing):
            LmEvalBridge(suite, []).check_data()
    write_jsonl(data, QUESTIONS)
    LmEvalBridge(suite, []).check_data()  # complete rows pass
