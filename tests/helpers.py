"""Tiny random-init models of real classes, saved like a Hub checkpoint."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
import torch
from transformers import (
    BloomConfig,
    BloomForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MT5Config,
    MT5ForConditionalGeneration,
    PreTrainedModel,
)

from forgetbench.methods.adapters import Adapters
from forgetbench.methods.base import Method
from forgetbench.tiny.tokenizer import build_word_tokenizer

T = TypeVar("T")


def tiny_model(kind: str, texts: list[str], seed: int = 0, width: int = 32) -> tuple[PreTrainedModel, object]:
    """A 2-layer random-init ``kind`` model (bloom | mt5 | llama) of hidden size ``width`` and a
    word tokenizer over ``texts``."""
    tokenizer = build_word_tokenizer(texts)
    ids = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    torch.manual_seed(seed)
    if kind == "bloom":
        model = BloomForCausalLM(
            BloomConfig(hidden_size=width, n_layer=2, n_head=2, bos_token_id=tokenizer.bos_token_id, **ids)
        )
    elif kind == "llama":
        model = LlamaForCausalLM(
            LlamaConfig(
                hidden_size=width,
                intermediate_size=2 * width,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=2,
                max_position_embeddings=256,
                bos_token_id=tokenizer.bos_token_id,
                **ids,
            )
        )
    elif kind == "mt5":
        model = MT5ForConditionalGeneration(
            MT5Config(
                d_model=width,
                d_ff=2 * width,
                d_kv=width // 2,
                num_layers=2,
                num_heads=2,
                decoder_start_token_id=tokenizer.pad_token_id,
                **ids,
            )
        )
    else:
        raise ValueError(kind)
    return model, tokenizer


@torch.no_grad()
def direct_logliks(model, tokenizer, question: str, choice: str) -> float:
    """Sum of log p(choice tokens | question), computed here without lm-eval."""
    context = tokenizer(question, add_special_tokens=False)["input_ids"]
    target = tokenizer(" " + choice, add_special_tokens=False)["input_ids"]
    if model.config.is_encoder_decoder:
        logits = model(input_ids=torch.tensor([context]), labels=torch.tensor([target])).logits[0]
        logprobs = logits.log_softmax(-1)
        return float(sum(logprobs[i, t] for i, t in enumerate(target)))
    logits = model(input_ids=torch.tensor([context + target])).logits[0]
    logprobs = logits.log_softmax(-1)
    return float(sum(logprobs[len(context) + i - 1, t] for i, t in enumerate(target)))


def save_tiny_model(kind: str, texts: list[str], folder: Path, width: int = 32) -> Path:
    model, tokenizer = tiny_model(kind, texts, width=width)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class RecordingMethod(Method):
    """A method (built from config) that records every hook call, in order."""

    calls: list[str] = []

    def __init__(self, name: str = "recording") -> None:
        super().__init__(name)
        RecordingMethod.calls = []

    def prepare_model(self, model, task_names):
        self.calls.append(f"prepare_model:{','.join(task_names)}")
        return model

    def before_task(self, ctx):
        self.calls.append(f"before_task:{ctx.task_name}")

    def training_examples(self, ctx):
        self.calls.append(f"training_examples:{ctx.task_name}")
        return ctx.examples

    def extra_loss(self, model):
        if not self.calls[-1].startswith("extra_loss"):
            self.calls.append("extra_loss")
        return None

    def after_task(self, ctx):
        self.calls.append(f"after_task:{ctx.task_name}")

    def state_dict(self):
        self.calls.append("state_dict")
        return {}

    def load_state_dict(self, state):
        self.calls.append("load_state_dict")


def same_first_word(prediction: str, reference: str) -> float:
    """A user's generation metric (named as ``tests.helpers:same_first_word`` in a file task)."""
    return float(prediction.split()[:1] == reference.split()[:1])


@dataclass
class TaskScopedAdapters(Adapters):
    """``method=adapters`` as it scored before routers: each eval task inside ``evaluating``, the
    adapters set for the whole task (no per-input routing), to test the oracle route against."""

    def router(self):
        return None

    @contextlib.contextmanager
    def evaluating(self, model, eval_task: str, stream_task: str = ""):
        with self.activate(model, self._oracle_route(stream_task)):
            yield


class Crash(Exception):
    """Raised right after a checkpoint, to stop a run there as a kill would."""


def crash_after_step_one_then_resume(run: Callable[[str], T], monkeypatch) -> T:
    """``run("crashed")`` stopped right after the checkpoint of step 1, then run again to its end
    (resumed from that checkpoint); returns what the resumed run returns."""
    from forgetbench import runner

    save = runner.save_checkpoint

    def crash_after_step_one(run_dir, step, *args):
        save(run_dir, step, *args)
        if step == 1:
            raise Crash

    monkeypatch.setattr(runner, "save_checkpoint", crash_after_step_one)
    with pytest.raises(Crash):
        run("crashed")
    monkeypatch.setattr(runner, "save_checkpoint", save)
    return run("crashed")


def continuations_padded_per_batch(lm) -> int:
    """The continuation-pass positions the fast engine ran before it batched continuations by their
    own length: every continuation of a context batch padded to the batch's longest (causal: tokens
    2..n, every continuation; seq2seq: the decoder over all tokens)."""
    seq2seq = lm.backend == "seq2seq"
    positions = 0
    for groups in lm._groups.values():
        for batch in lm.scorer._batches(groups):
            lengths = [len(c) - (0 if seq2seq else 1) for group in batch for c in group.continuations]
            positions += len(lengths) * max(lengths)
    return positions
