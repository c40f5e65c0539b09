"""Shared test helpers: offline environment, a small world, and the real CLI in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
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


PATCHED_CLI = """
import errno, runpy
from unittest import mock

def patched(*args, **kwargs):
    {action}

with mock.patch("{target}", patched):
    runpy.run_module("forgetbench", run_name="__main__")  # python -m forgetbench, with the same argv
"""


def run_cli_patched(args: list[str], root: Path, cache: Path, target: str, action: str) -> subprocess.CompletedProcess:
    """``python -m forgetbench ARGS`` with ``target`` replaced by a function whose body is ``action``
    (its arguments: ``args``, ``kwargs``): a writer that fails as on a full disk, a crash after a step."""
    script = root / "patched_cli.py"
    root.mkdir(parents=True, exist_ok=True)
    script.write_text(PATCHED_CLI.format(target=target, action=action))
    command = _command(args, root, cache)
    return subprocess.run([command[0], str(script), *command[3:]], cwd=ROOT, capture_output=True, text=True)


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


def group_option(group: str, option: str):
    """One option of a config group as composed, its own ``defaults:`` applied (``model``, ``tiny_decoder_large``)."""
    return compose([f"{group}={option}"])[group]


INSIDE_TASK_2 = re.compile(r"\[step 2/3 count\] step (1\d|2\d)/40")  # well inside the second of 40-step tasks


def wait_inside_task_2(process: subprocess.Popen, logs: Callable[[], list[Path]]) -> Path:
    """Wait until a run's log (the first of ``logs()``) shows training well inside its second task;
    returns that log. Fails if the run ends first (it could then not be stopped there)."""
    deadline = time.time() + 300
    found: list[Path] = []
    while time.time() < deadline and process.poll() is None:
        found = [log for log in logs() if log.exists()]
        if found and INSIDE_TASK_2.search(found[0].read_text()):
            break
        time.sleep(0.02)
    assert process.poll() is None and found, "the run ended before it could be stopped"
    return found[0]


def running_processes() -> list[tuple[int, int, bytes]]:
    """(pid, parent pid, command line) of every process this user can see."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit():
                parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                found.append((int(proc.name), parent, (proc / "cmdline").read_bytes()))
        except (OSError, ValueError, IndexError):
            continue
    return found
