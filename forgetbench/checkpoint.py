"""The run checkpoint: everything needed to continue after the last completed step.

Kept in ``<run_dir>/checkpoint`` (only the latest, by default): the weights
(safetensors), the optimizer, the method's state and every RNG state; a mid-task
checkpoint (on a stop signal, or every ``train.checkpoint_every_minutes``) also
keeps the progress inside the task (optimizer steps done, schedule, optimizer). It is
written to a fresh folder and swapped in, so a crash leaves the previous
checkpoint whole. The LR schedule restarts with every task, so there is no
scheduler state to keep between steps.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_model, save_file

from forgetbench.errors import ForgetbenchError, RunDirectoryTaken

CHECKPOINT_DIR = "checkpoint"
STEP_WEIGHTS_DIR = "checkpoints"  # keep_checkpoint=all: every step's weights, step-NNN.safetensors
STEP_FILE = "step.json"
# what a damaged checkpoint raises: a truncated zip (RuntimeError) or pickle, a bad safetensors
# header, a missing file, a missing key
CHECKPOINT_ERRORS = (RuntimeError, pickle.UnpicklingError, EOFError, SafetensorError, OSError, KeyError)


@dataclass
class Checkpoint:
    step: int  # last completed step: 0 = the step-0 evaluation
    optimizer: dict | None
    method: dict[str, Any]
    task: dict | None = None  # a mid-task checkpoint: the progress inside step + 1 (training.TaskProgress)


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    optimizer_state: dict | None,
    method_state: dict,
    task: dict | None = None,
    config_hash: str | None = None,
) -> None:
    """Keep everything needed to continue after step ``step`` (or, with ``task``, inside step + 1),
    marked with the run's ``config_hash`` (a checkpoint is never resumed under another config).

    ``weights`` is the whole model's state dict and ``optimizer_state`` the optimizer's (whole
    states: under FSDP gathered first, see ``forgetbench.distributed``)."""
    final = run_dir / CHECKPOINT_DIR
    tmp, old = run_dir / f".{CHECKPOINT_DIR}.tmp", run_dir / f".{CHECKPOINT_DIR}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    state = {
        "step": step,
        "optimizer": optimizer_state,
        "method": method_state,
        "task": task,
        "rng": rng_state(),
        "config_hash": config_hash,
    }
    try:
        save_file(_one_name_per_tensor(weights), str(tmp / "model.safetensors"))
        torch.save(state, tmp / "state.pt")
        # the step alone, readable without loading the states (for the message of a stopped run)
        (tmp / STEP_FILE).write_text(json.dumps({"step": step, "inside_task": task is not None}))
    except BaseException:  # a full disk, a stop: the half-written copy goes, the last whole checkpoint stays
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # swap: the old checkpoint stays readable (as .old) until the new one is in place
    if final.exists():
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _one_name_per_tensor(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict with tied weights (one tensor under two names, e.g. embeddings and output
    layer) kept once, as safetensors requires; ``load_model`` fills the other name back in."""
    kept, seen = {}, set()
    for name, tensor in weights.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            kept[name] = tensor.contiguous()
    return kept


def load_checkpoint(run_dir: Path, model: torch.nn.Module, config_hash: str | None = None) -> Checkpoint | None:
    """Restore weights and RNG states in place; None when the run has no checkpoint. A checkpoint
    written under another ``config_hash`` is refused (its rows may be gone: a run directory emptied
    while its run was still writing)."""
    folder = run_dir / CHECKPOINT_DIR
    if not (folder / "state.pt").exists():
        folder = run_dir / f".{CHECKPOINT_DIR}.old"  # a crash during the swap
        if not (folder / "state.pt").exists():
            return None
    try:
        state = torch.load(folder / "state.pt", weights_only=False)
        if config_hash and state.get("config_hash") not in (None, config_hash):
            raise RunDirectoryTaken(
                f"{folder} was written by a run of another config (hash {state['config_hash']}, now {config_hash}); "
                "remove it, or set run_name=... for a new run"
            )
        load_model(model, str(folder / "model.safetensors"), device=str(next(model.parameters()).device))
        set_rng_state(state["rng"])
        return Checkpoint(state["step"], state["optimizer"], state["method"], state.get("task"))
    except CHECKPOINT_ERRORS as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ForgetbenchError(
            f"{folder} is unreadable ({reason}); remove it to rerun from step 0 (the rows come out the same), "
            "or set run_name=... for a new run"
        ) from err


def checkpoint_step(run_dir: Path) -> int | None:
    """The stream step a rerun continues after (the last checkpoint's), without loading it: -1 when the
    run has no checkpoint (a rerun starts at step 0); None when that is unknown (a checkpoint written
    before its step was kept beside it, or one being swapped in)."""
    folders = [run_dir / CHECKPOINT_DIR, run_dir / f".{CHECKPOINT_DIR}.old"]
    if not any((folder / "state.pt").exists() for folder in folders):
        return -1
    for folder in folders:
        try:
            return int(json.loads((folder / STEP_FILE).read_text())["step"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def step_weights_path(run_dir: Path, step: int) -> Path:
    return run_dir / STEP_WEIGHTS_DIR / f"step-{step:03d}.safetensors"


def keep_step_weights(run_dir: Path, step: int) -> None:
    """Keep a copy of the checkpoint's weights as those after ``step`` (``keep_checkpoint=all``);
    copied whole, then renamed into place."""
    path = step_weights_path(run_dir, step)
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.copyfile(run_dir / CHECKPOINT_DIR / "model.safetensors", tmp)
    os.replace(tmp, path)


def load_weights(path: Path, model: torch.nn.Module) -> None:
    """Load a weights file of this module (a checkpoint's, or a step's) into ``model`` in place."""
    load_model(model, str(path), device=str(next(model.parameters()).device))


def remove_checkpoint(run_dir: Path) -> None:
    shutil.rmtree(run_dir / CHECKPOINT_DIR, ignore_errors=True)
