"""The default experiment's base model: built from a config, pretrained on the tiny world, cached
(or copied from the pretrained copy shipped in the package, when its config is the shipped one).

Pretraining runs once per (world, architecture, pretraining) hash; later runs
load the saved directory through :func:`forgetbench.models.load_pretrained`,
exactly as a Hub model is loaded.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from datasets import Dataset
from filelock import FileLock
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from forgetbench.chat import apply_chat_setting, check_chat_setting
from forgetbench.hardware import default_device
from forgetbench.hashing import stable_hash
from forgetbench.jsonl import read_jsonl
from forgetbench.models import LoadedModel, load_pretrained
from forgetbench.tiny.files import materialize_world, world_key
from forgetbench.tiny.objectives import Objective, pretraining_pairs
from forgetbench.tiny.post_training import STAGE_WORDS, STAGES, stage_rows
from forgetbench.tiny.tokenizer import build_word_tokenizer, extend_word_tokenizer
from forgetbench.tiny.world import WorldSpec, build_world
from forgetbench.training import TrainConfig, train_on_task
from forgetbench.validation import HASHED_WHEN_SET, InvalidValue, Positive, check_fields

log = logging.getLogger(__name__)

# Base models pretrained once and shipped in the package, under the same cache key the cache uses
# (experiments/ship_tiny_base.py writes them: the size ladder of experiment=tiny_world_ladder, the
# default tiny_decoder among them). The default experiment and the size and architecture comparisons
# then start from the same weights on every machine (pretraining on another CPU rounds differently and
# lands elsewhere) and skip most of their cold start; any other shape, world or pretraining is
# pretrained here.
SHIPPED_DIR = Path(__file__).resolve().parent / "pretrained"
# when to checkpoint changes no weight; the loss's chunking and compilation change only rounding
# (their switches came after the shipped base model, whose key stays what it was)
UNKEYED_TRAINING = ("checkpoint_every_minutes", "fused_loss", "compile")


@dataclass
class TinyWorldModel:
    """A small Llama (decoder) or T5 (encoder-decoder) that learns the tiny world first.

    Attributes:
        name: short name used in run names and tables.
        architecture: "decoder" or "encoder-decoder".
        hidden_size, num_layers, num_heads, ffn_size: the transformer's shape
            (encoder-decoder: num_layers each for encoder and decoder).
        world: the world it is pretrained on.
        pretrain: how it is pretrained (a decoder: loss on every token).
        objective: the pairs it is pretrained on (:mod:`forgetbench.tiny.objectives`): the corpus's
            own ("pairs"), or with one more pair per document ("prefix_lm", "denoise").
        input_eos: an encoder-decoder's tokenizer closes each input with ``</s>``, as T5's does, in
            pretraining, fine-tuning and evaluation alike. Without it a word's distance from the end
            of the input is hard to see (T5 has relative position biases in the encoder only, none in
            cross-attention), and ``reverse`` is learned unreliably (docs/tiny-world.md). The tiny_encdec
            configs set it; the field's default (false) keeps the hash of configs written before it.
        cache_dir: where pretrained models are kept, by hash.
        init_seed: seed of the random initialisation and pretraining order.
        chat_template: auto or none (plain text: the world's tokenizer has no template), or the
            path of a Jinja file to fine-tune and evaluate the base model through (decoder only;
            see :mod:`forgetbench.chat`); pretraining is plain text either way.
        stages: the stages it goes through, ``pretrain`` first, then any of ``instruct`` and
            ``safety`` in that order (:mod:`forgetbench.tiny.post_training`); each is cached (and may
            be shipped) under its own key, the stage before's key and the stage's training.
        post_train: how each post-training stage is trained (from the stage before, init_seed's order).
    """

    name: str
    architecture: Literal["decoder", "encoder-decoder"]
    world: WorldSpec
    cache_dir: str
    hidden_size: Positive = 128
    num_layers: Positive = 3
    num_heads: Positive = 4
    ffn_size: Positive = 512
    init_seed: int = 0
    objective: Objective = "pairs"
    input_eos: bool = field(default=False, metadata=HASHED_WHEN_SET)
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    chat_template: str = "auto"
    stages: list[str] = field(default_factory=lambda: ["pretrain"])
    post_train: TrainConfig = field(default_factory=lambda: TrainConfig(steps=300, batch_size=32, lr=1e-3))

    def __post_init__(self) -> None:
        check_fields(self)
        check_chat_setting(self.chat_template)
        self.stages = list(self.stages)
        in_order = (
            sorted(set(self.stages), key=["pretrain", *STAGES].index)
            if set(self.stages) <= {"pretrain", *STAGES}
            else None
        )
        if not self.stages or self.stages[0] != "pretrain" or self.stages != in_order:
            raise InvalidValue(
                "stages", self.stages, f"give pretrain first, then any of {list(STAGES)} in that order, once each"
            )
        if self.input_eos and self.architecture == "decoder":
            raise InvalidValue(
                "input_eos", True, "only an encoder-decoder's input is closed by </s> (a decoder's runs on)"
            )
        if self.hidden_size % self.num_heads:
            raise InvalidValue("hidden_size", self.hidden_size, f"it must be a multiple of num_heads={self.num_heads}")

    def load(self, device: torch.device | None = None) -> LoadedModel:
        loaded = load_pretrained(self.name, self.resolve_path(device), dtype="float32", device=device)
        apply_chat_setting(loaded.tokenizer, self.chat_template, self.architecture == "encoder-decoder")
        return loaded

    def load_tokenizer(self) -> PreTrainedTokenizerFast:
        """The base model's tokenizer without its weights (built from the world's texts, as pretraining
        does, and extended by the post-training stages' words, as they do)."""
        tokenizer = build_word_tokenizer(materialize_world(self.world, self.cache_dir).all_texts(), self.input_eos)
        if self.stages[1:]:
            tokenizer = extend_word_tokenizer(tokenizer, STAGE_WORDS)
        apply_chat_setting(tokenizer, self.chat_template, self.architecture == "encoder-decoder")
        return tokenizer

    def cache_key(self) -> str:
        """The last stage's key: pretraining's (world, shape, pretraining), then each stage's hash of
        the key before it, its name and ``post_train``."""
        key = self._pretrain_key()
        for stage in self.stages[1:]:
            key = self._stage_key(key, stage)
        return key

    def _stage_key(self, before: str, stage: str) -> str:
        post_train = {k: v for k, v in asdict(self.post_train).items() if k not in UNKEYED_TRAINING}
        rows = stage_rows(build_world(self.world), stage)  # by content: a change to the stage's data retrains it
        return stable_hash({"before": before, "stage": stage, "rows": stable_hash(rows), "post_train": post_train})

    def _pretrain_key(self) -> str:
        # chat_template: fine-tuning only; stages and post_train: keyed by the stages after pretraining
        unshaped = ("name", "cache_dir", "world", "pretrain", "chat_template", "stages", "post_train")
        shape = {k: v for k, v in asdict(self).items() if k not in unshaped}
        if shape["objective"] == "pairs":  # keyed only when it changes the data (the default came later)
            del shape["objective"]
        if not shape["input_eos"]:  # keyed only when set (it came later)
            del shape["input_eos"]
        pretrain = {k: v for k, v in asdict(self.pretrain).items() if k not in UNKEYED_TRAINING}
        if not pretrain["packing"]:  # packing weighs the loss by tokens across micro-batches: keyed when on
            del pretrain["packing"]
        return stable_hash({"world": world_key(self.world), "shape": shape, "pretrain": pretrain})

    def resolve_path(self, device: torch.device | None = None) -> str:
        """The model's directory after its last stage, training every stage not cached yet (on ``device``)."""
        device = device or default_device()
        folders = self.stage_dirs()
        path = self._cached(folders[0], lambda folder: self._pretrain_into(folder, device))
        for stage, name in zip(self.stages[1:], folders[1:], strict=True):
            path = self._cached(name, functools.partial(self._post_train_into, path, stage, device=device))
        return path

    def stage_dirs(self) -> list[str]:
        """The folder names of its stages, in order (pretraining's, then each post-training stage's)."""
        key = self._pretrain_key()
        names = [f"{self.name}-{key}"]
        for stage in self.stages[1:]:
            key = self._stage_key(key, stage)
            names.append(f"{self.name}-{stage}-{key}")
        return names

    def _cached(self, name: str, build: Callable[[Path], None]) -> str:
        """``<cache_dir>/models/<name>``: found, copied from the shipped copy, or built by ``build``."""
        target = Path(self.cache_dir) / "models" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        # parallel jobs of a sweep (hydra/launcher=local) want the same base model: one pretrains, the others wait
        with FileLock(target.with_name(f".{target.name}.lock")):
            if target.is_dir():
                log.info(f"base model {self.name} found in cache: {target}")
                return str(target)
            shipped = SHIPPED_DIR / target.name
            tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
            try:
                if shipped.is_dir():
                    log.info(f"base model {self.name}: the pretrained copy shipped with forgetbench ({shipped.name})")
                    shutil.copytree(shipped, tmp, dirs_exist_ok=True)
                else:
                    build(tmp)
                os.replace(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return str(target)

    def _post_train_into(self, before: str, stage: str, folder: Path, device: torch.device) -> None:
        """Stage ``stage`` from the model in ``before``: its words added to the vocabulary (their
        embeddings start at the mean of the others'), then a fine-tune on :func:`stage_rows`."""
        loaded = load_pretrained(self.name, before, dtype="float32", device=device)
        model, tokenizer = loaded.model, extend_word_tokenizer(loaded.tokenizer, STAGE_WORDS)
        if len(tokenizer) > model.get_input_embeddings().num_embeddings:
            model.resize_token_embeddings(len(tokenizer), mean_resizing=True)
        rows = stage_rows(build_world(self.world), stage)
        log.info(f"post-training {self.name}, stage {stage}: {len(rows)} examples, {self.post_train.steps} steps")
        torch.manual_seed(self.init_seed)
        train_on_task(model, tokenizer, Dataset.from_list(rows), self.post_train, seed=self.init_seed, label=stage)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    def _pretrain_into(self, folder: Path, device: torch.device) -> None:
        files = materialize_world(self.world, self.cache_dir)
        tokenizer = build_word_tokenizer(files.all_texts(), self.input_eos)
        torch.manual_seed(self.init_seed)
        model = self._build(len(tokenizer), tokenizer).to(device)
        log.info(
            f"pretraining {self.name} ({sum(p.numel() for p in model.parameters()):,} parameters) "
            f"on the tiny world: {self.pretrain.steps} steps"
        )
        corpus = Dataset.from_list(pretraining_pairs(read_jsonl(files.corpus), self.objective, self.init_seed))
        train_on_task(model, tokenizer, corpus, self.pretrain, seed=self.init_seed, label="pretrain")
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    def _build(self, vocab_size: int, tokenizer) -> torch.nn.Module:
        special = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
        if self.architecture == "decoder":
            config = LlamaConfig(
                vocab_size=vocab_size,
                hidden_size=self.hidden_size,
                num_hidden_layers=self.num_layers,
                num_attention_heads=self.num_heads,
                num_key_value_heads=self.num_heads,
                intermediate_size=self.ffn_size,
                max_position_embeddings=256,
                tie_word_embeddings=True,
                bos_token_id=tokenizer.bos_token_id,
                **special,
            )
            return LlamaForCausalLM(config)
        config = T5Config(
            vocab_size=vocab_size,
            d_model=self.hidden_size,
            d_ff=self.ffn_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            d_kv=self.hidden_size // self.num_heads,
            dropout_rate=0.0,
            decoder_start_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
            **special,
        )
        return T5ForConditionalGeneration(config)
