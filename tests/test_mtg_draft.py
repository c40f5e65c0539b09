"""The mtg_draft experiment: a 17lands-style draft log through stream=files, data-check, and a run offline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from forgetbench.data.file_task import FileTask
from tests.conftest import ROOT, SMALL, run_cli
from tests.helpers import save_tiny_model

DRAFTS = ROOT / "tests/assets/mtg_draft/draft_data_public.SYN.PremierDraft.csv"
GENERAL = [
    {"question": "two plus two is", "choices": ["four", "five", "six"], "answer": 0},
    {"question": "the sky is", "choices": ["green", "blue", "loud"], "answer": 1},
    {"question": "ice is", "choices": ["hot", "cold", "sweet"], "answer": 1},
    {"question": "a cat says", "choices": ["moo", "meow", "quack"], "answer": 1},
]
GENERAL_TASK = (
    "eval.files=[{name: general, files: FILE, prompt: '{{question}}', response: '{{choices[answer]}}', "
    "scoring: multiple_choice, choices: choices}]"
)


def _draft_task() -> FileTask:
    spec = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/experiment/mtg_draft.yaml").stream.tasks[0])
    return FileTask(**{**spec, "files": str(DRAFTS), "max_tokens": None})


@pytest.fixture(scope="module")
def draft_model(tmp_path_factory):
    """A random-init 2-layer Llama whose word vocabulary covers the rendered picks and the general items."""
    prepared = _draft_task().prepare(None)
    texts = [f"{r['prompt']} {r['response']}" for r in prepared.train]
    texts += [f"{r['question']} {' '.join(r['choices'])}" for r in prepared.held_out]
    texts += [f"{g['question']} {' '.join(g['choices'])}" for g in GENERAL]
    return save_tiny_model("llama", texts, tmp_path_factory.mktemp("model") / "tiny-llama", width=64)


def _data_check(args: list[str], cache, console_script: bool = False) -> subprocess.CompletedProcess:
    """``python -m forgetbench data-check ARGS``, or the console script's ``forgetbench data-check ARGS``."""
    program = (
        [str(Path(sys.executable).parent / "forgetbench"), "data-check"]
        if console_script
        else [sys.executable, "-m", "forgetbench", "data-check"]
    )
    command = [*program, f"paths.cache_dir={cache}", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_data_check_shows_what_the_model_will_see(cache_dir):
    args = ["experiment=mtg_draft", "model=tiny_decoder", "eval=tiny_world", *SMALL]
    done = _data_check(args, cache_dir, console_script=True)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    # 336 picks: 24 forced last picks dropped, a tenth of the rest held out, smoke's cap on training rows
    assert "stream task draft_picks: 64 rows to train on, 31 held out (scored as multiple_choice)" in out
    assert "dropped by filters: one_choice 24, drop_duplicates 0, max_tokens 0, max_train_examples 217" in out
    assert "chance accuracy on the held-out rows (1 / choices, mean): 0." in out
    assert "tokens per example (prompt + response + EOS, 64 train rows): p50 " in out and ", max " in out
    assert out.count("  example ") == 3
    assert "In the pack: " in out and "Your pick:" in out and "\n    | " in out


def test_data_check_names_a_bad_row_and_exits_2(tmp_path, cache_dir):
    table = pd.read_csv(DRAFTS)
    table.loc[6, "pick"] = None
    table.to_csv(tmp_path / "drafts.csv", index=False)
    overrides = ["experiment=mtg_draft", "model=tiny_decoder", "eval=tiny_world", f"drafts={tmp_path / 'drafts.csv'}"]
    done = _data_check([*overrides, *SMALL], cache_dir)
    assert done.returncode == 2
    line = done.stderr.strip().splitlines()[-1]
    assert line == (
        f"error: task 'draft_picks': '{tmp_path / 'drafts.csv'}' row 7, column 'pick': "
        "has no value in column 'pick', which the task 'draft_picks' response template uses"
    )
    # a run stops with the same line before writing anything
    run = run_cli([*overrides, *SMALL], tmp_path, cache_dir)
    assert run.returncode == 2 and "row 7, column 'pick'" in run.stderr
    assert not list((tmp_path / "results").rglob("*seed0*"))  # no run directory, no rows


def test_mtg_draft_learns_picks_and_reports_them_beside_the_general_suite(tmp_path, cache_dir, draft_model):
    general = tmp_path / "general.jsonl"
    general.write_text("".join(f"{pd.Series(g).to_json()}\n" for g in GENERAL))
    done = run_cli(
        [
            "experiment=mtg_draft",
            f"model.path={draft_model}",
            "model.name=tiny-llama",
            "model.dtype=float32",
            "device=cpu",
            "eval=tiny_world",
            "eval.tasks=[]",
            GENERAL_TASK.replace("FILE", str(general)),
            "train.epochs=null",
            "+train.steps=60",
            "train.batch_size=16",
            "train.effective_batch_size=null",
            "train.lr=3e-3",
            "train.autocast=null",
            "stream.tasks.0.max_tokens=null",
        ],
        tmp_path,
        cache_dir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    # lm-eval's bootstrap pool forks workers that inherit the stop handlers; its teardown signals them
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    run_dir = tmp_path / "results/mtg_draft/tiny-llama-full-seed0"
    rows = pd.read_parquet(run_dir / "results.parquet")
    picks = rows[rows["eval_task"] == "stream_draft_picks"].pivot_table(index="step", columns="metric", values="value")
    chance = picks.loc[1, "chance"]
    assert 0.1 < chance < 0.3  # packs of 2..15 cards
    assert picks.loc[1, "acc"] > chance + 0.25, picks  # learned the drafter's preference
    assert set(rows.loc[rows["eval_kind"] == "general", "eval_task"]) == {"general"}
    report = (run_dir / "report/report.md").read_text()
    assert "## Forgetting per eval task" in report and "| general |" in report
    assert "## Learning per stream task" in report and "| stream_draft_picks |" in report
