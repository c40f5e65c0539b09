"""A finished run's models, rebuilt from its config and its kept weights files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from forgetbench.checkpoint import load_weights
from forgetbench.methods.base import Method
from forgetbench.models import LoadedModel

Weights = dict[str, torch.Tensor]


class RunModels:
    """Each model is a fresh copy of the run's base model, wrapped as the run's method wrapped it (a
    LoRA adapter), a kept weights file loaded into it, then merged into plain weights (peft's
    ``merge_and_unload``): what the run evaluated, as one ordinary model, every weight trainable.

    Args:
        load_base: loads the run's base model (``model`` config group's ``load``) on a device.
        new_method: builds the run's method afresh (its ``prepare_model`` wraps the base).
        stream_names: the run's stream tasks (per-task adapters are named after them).
    """

    def __init__(
        self, load_base: Callable[[], LoadedModel], new_method: Callable[[], Method], stream_names: list[str]
    ) -> None:
        self.load_base, self.new_method, self.stream_names = load_base, new_method, stream_names

    def load(self, path: Path) -> LoadedModel:
        loaded = self.load_base()
        model = self.new_method().prepare_model(loaded.model, self.stream_names)
        load_weights(path, model)
        loaded.model = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
        loaded.model.requires_grad_(True)  # the probe trains every weight of the merged model (peft froze the base's)
        return loaded

    def weights(self, path: Path) -> Weights:
        return {name: tensor.detach().clone() for name, tensor in self.load(path).model.state_dict().items()}
