"""Every config option composes, resolves, and names a class that exists."""

from __future__ import annotations

import importlib

import pytest
from omegaconf import OmegaConf

from tests.conftest import CONF_DIR, compose, group_option

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))
GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(CONF_DIR.iterdir())
    if group.is_dir() and group.name not in ("experiment", "hydra", "shared")  # shared: blocks other options include
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
            target = group_option(group, option.stem)["_target_"]
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


@pytest.mark.parametrize("launcher", ["local", "slurm"])
def test_launchers_compose_to_their_plugin(launcher: str) -> None:
    """hydra/launcher=local|slurm compose onto hydra-submitit-launcher's schema and name our plug-in."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra_plugins.hydra_submitit_launcher import submitit_launcher

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose(config_name="config", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    node = cfg.hydra.launcher
    plugin = getattr(submitit_launcher, f"{launcher.capitalize()}Launcher")
    module, _, name = node._target_.rpartition(".")
    assert module.startswith("hydra_plugins.")  # Hydra instantiates launchers from there only
    # compared by name: Hydra's plug-in scan loads these modules afresh, so the class objects differ
    ancestry = {f"{c.__module__}.{c.__qualname__}" for c in getattr(importlib.import_module(module), name).__mro__}
    assert f"{plugin.__module__}.{plugin.__qualname__}" in ancestry
    assert node.timeout_min > 0 and "submitit_folder" in node
    if launcher == "slurm":
        assert {"partition", "account", "gpus_per_node", "cpus_per_task", "mem_gb", "array_parallelism"} <= set(node)
        assert "additional_parameters" in node and node.max_num_timeout >= 1


TUNED = sorted(p.stem for p in (CONF_DIR / "experiment" / "tiny_world_methods").glob("*.yaml"))


@pytest.mark.parametrize("method", TUNED)
def test_each_tuned_method_config_selects_its_method_and_lr(method: str) -> None:
    """experiments/tune_methods.py --write: the method, its chosen lr, results apart from the default's."""
    cfg = compose([f"experiment=tiny_world_methods/{method}"])
    assert cfg.method.name == method
    assert cfg.experiment_name == "tiny_world_methods"
    assert isinstance(cfg.train.lr, float) and cfg.train.lr > 0
