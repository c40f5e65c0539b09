"""The OmegaConf resolvers forgetbench's configs use; registered in every process that reads them
(the CLI, and each job a launcher starts in a process of its own)."""

from __future__ import annotations

from omegaconf import OmegaConf

from forgetbench.hashing import stable_hash


def register_resolvers() -> None:
    # names multirun job folders (conf/hydra/default.yaml): override lists are too long for a folder name
    OmegaConf.register_new_resolver("forgetbench_hash", lambda text: stable_hash(text, 8), replace=True)
    # a method's name with a variant that is not its default (adapters-classifier; adapters for the oracle)
    OmegaConf.register_new_resolver("forgetbench_variant", _variant, replace=True)


def _variant(name: str, variant: str, default: str) -> str:
    return name if variant == default else f"{name}-{variant}"
