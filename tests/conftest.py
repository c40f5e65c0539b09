"""Shared test helpers: offline environment, a small world, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "conf"

# `debug=smoke` shrinks the world, training and evaluation (conf/debug/smoke.yaml); the tiny base model
# is shrunk here, so that a whole run takes seconds (targets are checked separately, at default
# sizes, in test_default_experiment.py).
SMALL_MODEL = [
    "model.hidden_size=32",
    "model.ffn_size=64",
    "model.num_layers=2",
    "model.num_heads=2",
    "model.pretrain.steps=20",
]
SMALL = ["debug=smoke", *SMALL_MODEL]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """One cache for the session: generated worlds and pretrained tiny models are reused."""
    return tmp_path_factory.mktemp("cache")


def _command(args: list[str], root: Path, cache: Path) -> list[str]:
    flags = [a for a in args if a.startswith("-")]  # Hydra wants flags (-m) before the overrides
    overrides = [a for a in args if not a.startswith("-")]
    return [
        sys.executable,
        "-m",
        "forgetbench",
        *flags,
        f"paths.root_dir={root}",
        f"paths.cache_dir={cache}",
        *overrides,
    ]


def run_cli(args: list[str], root: Path, cache: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m forgetbench ARGS`` with results under ``root`` and the shared cache."""
    return subprocess.run(_command(args, root, cache), cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def start_cli(args: list[str], root: Path, cache: Path, stderr: Path | None = None) -> subprocess.Popen:
    """``python -m forgetbench ARGS`` in the background; its stderr goes to the file ``stderr`` (or nowhere)."""
    target = stderr.open("w") if stderr else subprocess.DEVNULL
    return subprocess.Popen(_command(args, root, cache), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=target)


def compose(overrides: list[str]):
    """The real config, composed as the CLI would (without Hydra's runtime node)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name="config", overrides=overrides)
