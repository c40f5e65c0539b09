"""The tiny size ladder: three sizes of each architecture, shipped, knowing their world, run as one multirun.

The bars are docs/tiny-world.md's (experiments/measure_ladder.py, "The two axes offline"); the base models are
the same on every seed and machine (their weights ship in the package), so their general scores are
asserted with a small margin below what they measured; the smoke-sized multirun checks the
plumbing: six runs, their parameter counts, and a size figure of two lines of three points.
"""

from __future__ import annotations

import copy

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from forgetbench.assembly import build, config_hash
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.reporting.figures import fg_by_size
from forgetbench.tiny.model import SHIPPED_DIR
from tests.conftest import compose, run_cli

LADDER = {
    "decoder": ["tiny_decoder_small", "tiny_decoder", "tiny_decoder_large"],
    "encoder-decoder": ["tiny_encdec_small", "tiny_encdec", "tiny_encdec_large"],
}
MODELS = [name for names in LADDER.values() for name in names]
# each base's general scores as measured (docs/tiny-world.md, "The two axes offline"; the base is the same on every
# seed and machine), less 0.03 for another CPU's rounding in evaluation
MEASURED = {
    "tiny_decoder_small": {"knowledge": 0.786, "continuation": 0.820, "reading": 0.885},
    "tiny_decoder": {"knowledge": 0.893, "continuation": 0.835, "reading": 0.985},
    "tiny_decoder_large": {"knowledge": 0.886, "continuation": 0.960, "reading": 0.975},
    "tiny_encdec_small": {"knowledge": 0.800, "continuation": 0.990, "reading": 1.000},
    "tiny_encdec": {"knowledge": 0.921, "continuation": 0.995, "reading": 1.000},
    "tiny_encdec_large": {"knowledge": 0.979, "continuation": 0.995, "reading": 1.000},
}


@pytest.mark.parametrize("name", MODELS)
def test_each_ladder_base_is_shipped_current_and_knows_its_world(name, cache_dir) -> None:
    """The shipped copy is the one the config's cache key names (a stale copy fails here: rerun
    experiments/ship_tiny_base.py), it is copied rather than pretrained, and it meets its bar."""
    cfg = compose([f"model={name}", f"paths.cache_dir={cache_dir}"])
    model = build(cfg.model, "model")
    shipped = SHIPPED_DIR / f"{model.name}-{model.cache_key()}"
    assert (shipped / "model.safetensors").is_file(), (
        f"{shipped.name} is not shipped: run experiments/ship_tiny_base.py"
    )
    assert model.resolve_path() == str(cache_dir / "models" / shipped.name)  # copied, not pretrained
    copied = cache_dir / "models" / shipped.name / "model.safetensors"
    assert copied.read_bytes() == (shipped / "model.safetensors").read_bytes()
    scores = LmEvalBridge(build(cfg.eval, "eval"), []).evaluate(model.load(torch.device("cpu"))).scores
    acc = {r.eval_task.removeprefix("tiny_world_"): r.value for r in scores if r.metric == "acc"}
    for task, measured in MEASURED[name].items():
        assert acc[task] >= 0.6, f"{name} must know its world: {task} {acc[task]:.3f} (chance 0.25)"
        assert acc[task] >= measured - 0.03, f"{name}: {task} {acc[task]:.3f}, measured {measured}"
    if name == "tiny_encdec":  # the encoder-decoder knows its world as the default decoder does (0.893)
        assert acc["knowledge"] >= 0.8


def test_the_ladder_multirun_draws_both_axes(tmp_path, cache_dir) -> None:
    """`-m experiment=tiny_world_ladder`, smoke-sized (a small world, 4 pretraining steps of 8 a model):
    six runs with their parameter counts, and a report whose size figure has 2 lines × 3 points."""
    # six runs one after another: 69 s alone, but past run_cli's default 600 s once, beside the other
    # pytest worker's heaviest files (every job's log showed it progressing, none hung)
    done = run_cli(
        ["-m", "experiment=tiny_world_ladder", "debug=smoke", "model.pretrain.steps=4", "model.pretrain.batch_size=8"],
        tmp_path,
        cache_dir,
        timeout=1500,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = tmp_path / "results" / "tiny_world_ladder" / "multirun" / "report"
    summary = pd.read_csv(report / "summary.csv", index_col=0)
    assert sorted(summary["model"]) == sorted(MODELS)
    for arch, names in LADDER.items():
        sizes = summary.set_index("model").loc[names]
        assert (sizes["architecture"] == arch).all()
        assert sizes["n_params"].is_monotonic_increasing and sizes["n_params"].is_unique
    points = pd.read_csv(report / "size_summary.csv")
    assert set(points["category"]) == {"knowledge", "reasoning", "reading"}
    figure = fg_by_size(points)
    for ax in figure.axes:
        lines = [c for c in ax.containers if len(c.lines[0].get_xdata()) == 3]
        assert len(lines) == 2, "one line of three sizes per architecture in every panel"
    for name in ("fg_by_size", "curves_by_architecture"):
        assert (report / f"{name}.png").stat().st_size > 10_000
    assert "Forgetting against model size" in (report / "report.md").read_text()


def test_input_eos_closes_only_an_encoder_decoders_input_and_is_hashed_only_when_set(cache_dir) -> None:
    """model.input_eos=true (the encoder-decoders' default): the tokenizer ends each input with </s>
    where special tokens are asked for (training's encoder inputs, lm-eval's seq2seq contexts), never
    in a continuation; without it the base model is another one (its own cache key), and a run made
    before the knob existed (input_eos absent: false) keeps its hash."""
    plain, closed = (
        build(compose(["model=tiny_encdec", f"paths.cache_dir={cache_dir}", *o]).model, "model")
        for o in (["model.input_eos=false"], [])
    )
    text = "instruction : reverse the words : cat dog"
    words = plain.load_tokenizer()(text)["input_ids"]
    tokenizer = closed.load_tokenizer()
    assert tokenizer(text)["input_ids"] == [*words, tokenizer.eos_token_id]
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == words
    assert plain.cache_key() != closed.cache_key()
    unclosed = compose(["model=tiny_encdec", "model.input_eos=false"])
    before = copy.deepcopy(unclosed)
    with open_dict(before):
        del before.model.input_eos
    assert config_hash(unclosed) == config_hash(before) != config_hash(compose(["model=tiny_encdec"]))
