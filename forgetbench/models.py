"""Load the model under study, from the Hub or a local directory, the same way for every size.

The ``model`` config group instantiates :class:`PretrainedModel` (Hub IDs and
local paths) or :class:`forgetbench.tiny.model.TinyWorldModel` (the offline
default, built and cached, then loaded through this same code).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from forgetbench.errors import ForgetbenchError
from forgetbench.hardware import default_device
from forgetbench.hub_mirror import local_copy
from forgetbench.validation import Positive, check_fields

log = logging.getLogger(__name__)

DTYPES = {"auto": "auto", "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class LoadedModel:
    """A model ready to train and evaluate, with the facts the results table records."""

    name: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase

    @property
    def architecture(self) -> str:
        return "encoder-decoder" if self.model.config.is_encoder_decoder else "decoder"

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


@dataclass
class PretrainedModel:
    """A model given by Hub ID or local directory.

    Attributes:
        name: short name used in run names and tables (e.g. bloomz-1b1).
        path: Hub model ID (e.g. bigscience/bloomz-1b1) or a local directory.
        dtype: weight dtype: auto, float32, bfloat16 or float16.
        attn_implementation: eager, sdpa or flash_attention_2; null lets transformers pick.
        gradient_checkpointing: trade compute for activation memory when training.
        train_batch_size: examples per forward pass that fit one 80 GB GPU at 512 tokens (see
            experiments/memory_budget.py); train configs with an effective batch read it and
            accumulate gradients up to that batch. Not used by loading.
        mirror: a folder of local Hub copies (see :mod:`forgetbench.hub_mirror`); ``path`` is
            read from ``<mirror>/<path>`` when it is there.
    """

    name: str
    path: str
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = None
    gradient_checkpointing: bool = False
    train_batch_size: Positive = 8
    mirror: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)

    def load(self, device: torch.device | None = None) -> LoadedModel:
        return load_pretrained(
            self.name,
            self.resolve_path(),
            self.dtype,
            self.attn_implementation,
            self.gradient_checkpointing,
            device or default_device(),
        )

    def resolve_path(self) -> str:
        return local_copy(self.path, self.mirror)

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer alone (no weights): what streams and ``data-check`` count tokens with."""
        return load_tokenizer(self.resolve_path())


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer saved at ``path`` (a directory or Hub ID), or a one-line error."""
    _check_exists(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        first = str(err).strip().splitlines()[0]
        raise ForgetbenchError(f"model.path={path!r} has no loadable tokenizer: {first}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_exists(path: str) -> None:
    if _looks_local(path) and not Path(path).expanduser().is_dir():
        raise ForgetbenchError(f"model.path={path!r} does not exist (give a local model directory or a Hub ID)")


def _looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or path.count("/") != 1


def load_pretrained(
    name: str,
    path: str,
    dtype: str = "auto",
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
    device: torch.device | None = None,
) -> LoadedModel:
    """Load tokenizer and model (causal or seq2seq, from the model's config) from ``path``."""
    if dtype not in DTYPES:
        raise ForgetbenchError(f"model.dtype={dtype!r} is not valid; choose one of {sorted(DTYPES)}")
    _check_exists(path)
    try:
        config = AutoConfig.from_pretrained(path)
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        kwargs = {"dtype": DTYPES[dtype]}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = auto.from_pretrained(path, **kwargs)
    except OSError as err:
        first = str(err).strip().splitlines()[0]
        raise ForgetbenchError(f"model.path={path!r} could not be loaded: {first}") from err
    tokenizer = load_tokenizer(path)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(device or default_device())
    loaded = LoadedModel(name, model, tokenizer)
    log.info(f"loaded {name} ({type(model).__name__}, {loaded.n_params:,} parameters) from {path}")
    return loaded
