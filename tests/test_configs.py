"""Every config option composes, resolves, and names a class that exists."""

from __future__ import annotations

import importlib

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF_DIR.iterdir())
    if group.is_dir() and group.name not in ("experiment", "hydra")
    for option in sorted(group.glob("*.yaml"))
]


def _target_exists(target: str) -> bool:
    module, _, name = target.rpartition(".")
    return hasattr(importlib.import_module(module), name)


def _targets(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [t for v in node.values() for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes(experiment: str) -> None:
    cfg = compose([f"experiment={experiment}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert resolved["experiment_name"] == experiment
    assert all(_target_exists(t) for t in _targets(resolved))


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS)
def test_every_option_composes(group: str, option: str) -> None:
    cfg = compose([f"{group}={option}"])
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert all(_target_exists(t) for t in _targets(resolved))


def test_config_groups_map_to_modules() -> None:
    """model/stream/method/train/eval options each name a forgetbench class."""
    for group in ("model", "stream", "method", "train", "eval"):
        for option in (CONF_DIR / group).glob("*.yaml"):
            target = OmegaConf.load(option)["_target_"]
            assert target.startswith("forgetbench."), (option, target)


def test_default_is_the_tiny_world() -> None:
    cfg = compose([])
    assert cfg.model.name == "tiny_decoder"
    assert cfg.stream.name == "tiny_world"
    assert cfg.method.name == "full"
    assert list(cfg.eval.tasks) == ["tiny_world_knowledge", "tiny_world_continuation", "tiny_world_reading"]


@pytest.mark.parametrize("experiment", ["", *EXPERIMENTS])
def test_debug_smoke_shrinks_any_experiment(experiment: str) -> None:
    """`debug=smoke` composes after the experiment and leaves a run of a few steps, items and rows, on the CPU."""
    from hydra.utils import instantiate

    cfg = compose([f"experiment={experiment}"] * bool(experiment) + ["debug=smoke"])
    assert cfg.device == "cpu" and cfg.eval.limit == 16
    train = instantiate(cfg.train)
    assert train.total_steps(100_000) == 8 and train.batch_size * train.grad_accum == 8
    stream = instantiate(cfg.stream)  # builds the stream's object without loading any data
    assert stream.max_train_examples == 64
