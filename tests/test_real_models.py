"""Hub model configs run the same code path on tiny random-init models of the real classes."""

from __future__ import annotations

import pytest

from forgetbench.reporting.report import write_report
from forgetbench.results import read_results
from forgetbench.runner import run_experiment
from forgetbench.tiny.files import materialize_world
from forgetbench.tiny.world import WorldSpec
from tests.conftest import compose
from tests.helpers import save_tiny_model

WORLD = WorldSpec(n_people=24, n_eval=16, n_stream_train=64, n_stream_eval=12, n_routine_docs=40, n_reading_docs=40)
# (the world of debug=smoke)


@pytest.mark.parametrize(
    ("config", "kind", "class_name", "architecture"),
    [
        ("bloomz_1b1", "bloom", "BloomForCausalLM", "decoder"),
        ("mt0_small", "mt5", "MT5ForConditionalGeneration", "encoder-decoder"),
    ],
)
def test_hub_model_config_runs_on_a_local_stand_in(config, kind, class_name, architecture, tmp_path, cache_dir):
    texts = materialize_world(WORLD, cache_dir).all_texts()  # the stand-in's vocabulary covers the world
    model_dir = save_tiny_model(kind, texts, tmp_path / f"{kind}-stand-in")
    assert class_name in (model_dir / "config.json").read_text()
    cfg = compose(
        [
            f"model={config}",
            f"model.path={model_dir}",
            "model.dtype=float32",
            f"paths.root_dir={tmp_path}",
            f"paths.cache_dir={cache_dir}",
            "debug=smoke",
        ]
    )
    assert WorldSpec(**{k: v for k, v in cfg.world.items() if k != "_target_"}) == WORLD
    run_dir = tmp_path / "run"
    run_experiment(cfg, run_dir)
    report = write_report([run_dir], run_dir / "report")

    rows = read_results(run_dir)
    assert set(rows["step"]) == {0, 1, 2, 3}
    assert set(rows["architecture"]) == {architecture}
    assert set(rows["model"]) == {cfg.model.name}
    assert report.exists()
