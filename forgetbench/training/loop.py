"""Fine-tune a model on one task: the inner loop of every step of a stream.

A hand-written loop rather than ``transformers.Trainer`` because methods plug
into it (an extra loss term through ``extra_loss``; the runner chooses the
examples fed to it), a resumed run must
repeat an interrupted step bit for bit, and the loop stays readable in one
sitting. Batching reuses ``DataCollatorForSeq2Seq``, which pads inputs and
labels (with -100) for decoder-only and encoder-decoder models alike.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
from datasets import Dataset
from torch.distributed.tensor import DTensor
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase

from forgetbench.chat import chat_example
from forgetbench.distributed import Processes
from forgetbench.errors import ForgetbenchError, RunStopped, TrainingDiverged
from forgetbench.stopping import requested_stop, stops_deferred
from forgetbench.training.chunked_loss import chunked_lm_loss
from forgetbench.training.optim import StochasticRoundingAdamW
from forgetbench.training.packing import MicroBatch, forward_inputs, isolation, split_step
from forgetbench.validation import (
    UNHASHED,
    InvalidValue,
    NonNegative,
    NonNegativeFloat,
    Positive,
    PositiveFloat,
    check_fields,
)

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How one task is trained.

    Attributes:
        steps: optimizer steps per task (each a full effective batch); null when ``epochs`` is set.
        epochs: if set, overrides ``steps`` with epochs × examples / effective batch.
        batch_size: examples per forward pass (per device).
        grad_accum: forward passes per optimizer step (effective batch = their product).
        effective_batch_size: if set, ``grad_accum`` is derived from it: effective / batch_size
            (which must divide it), so a model's memory-bound batch_size keeps the study's batch.
        lr: peak learning rate.
        schedule: "constant" or "cosine" (decay to zero over the task).
        warmup_steps: linear warmup at the start of each task.
        weight_decay: AdamW weight decay.
        max_grad_norm: gradient clipping norm (0 disables it).
        max_length: examples are truncated to this many tokens.
        loss_on_prompt: also train on prompt tokens (pretraining); the stream masks them.
        reset_optimizer: a fresh optimizer per task (as in Luo et al. 2023).
        autocast: run forward passes under torch.autocast in this dtype ("bfloat16"), with the
            weights and optimizer states in the model's own dtype (null: no autocast). Weights
            in bf16 train with :class:`~forgetbench.training.optim.StochasticRoundingAdamW`.
        fused_loss: apply the output layer and the cross-entropy in chunks of tokens, recomputed in
            the backward pass (``forgetbench.training.chunked_loss``): no micro-batch holds its full logits
            (8.2 GB in fp32 for 16 × 512 tokens of BLOOM's 250,880-word vocabulary). Same loss.
        compile: run the forward passes through ``torch.compile`` (compiled once per model and
            reused by every task; a new padded length may recompile, then shapes are marked dynamic).
        packing: fill rows of ``max_length`` tokens with whole examples, each attending only to
            itself (``forgetbench.training.packing``); a step still trains on batch_size × grad_accum
            examples, in rows of up to ``batch_size`` rows a micro-batch, and its loss is the mean
            over the step's labelled tokens. Off: padded micro-batches of ``batch_size`` examples,
            the loss a mean of micro-batch means.
        log_every: steps between progress lines.
        checkpoint_every_minutes: write a mid-task checkpoint this often (null: only on a stop
            signal); not part of the config hash.
    """

    steps: Positive | None = 300
    epochs: PositiveFloat | None = None
    batch_size: Positive = 32
    grad_accum: Positive = 1
    effective_batch_size: Positive | None = None
    lr: PositiveFloat = 3e-4
    schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: NonNegative = 0
    weight_decay: NonNegativeFloat = 0.0
    max_grad_norm: NonNegativeFloat = 1.0
    max_length: Positive = 512
    loss_on_prompt: bool = False
    reset_optimizer: bool = True
    autocast: Literal["bfloat16", "float16"] | None = None
    fused_loss: bool = False
    compile: bool = False
    packing: bool = False
    log_every: Positive = 50
    checkpoint_every_minutes: PositiveFloat | None = field(default=None, metadata=UNHASHED)  # changes no result

    def __post_init__(self) -> None:
        check_fields(self)
        if self.steps is None and self.epochs is None:
            raise InvalidValue("steps", None, "set steps, or epochs, to how long each task is trained")
        if self.effective_batch_size is not None:
            if self.batch_size < 1 or self.effective_batch_size % self.batch_size:
                raise ForgetbenchError(
                    f"train.batch_size={self.batch_size} does not divide train.effective_batch_size="
                    f"{self.effective_batch_size}; choose a batch_size that does (e.g. a power of 2)"
                )
            self.grad_accum = self.effective_batch_size // self.batch_size

    def total_steps(self, n_examples: int) -> int:
        if self.epochs is None:
            return self.steps
        return max(1, math.ceil(self.epochs * n_examples / (self.batch_size * self.grad_accum)))


def tokenize_pairs(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, encoder_decoder: bool, config: TrainConfig
) -> Dataset:
    """Turn ``prompt``/``response`` rows into ``input_ids``/``labels``.

    Decoder-only: the sequence is prompt, response, EOS, and the loss covers the
    response (and EOS) unless ``loss_on_prompt``. Encoder-decoder: the prompt
    goes to the encoder, with the special tokens its tokenizer adds (lm-eval's seq2seq context),
    the response and EOS are the labels. A decoder whose tokenizer
    has a chat template in force (``model.chat_template``) is trained through it instead:
    rows become messages (a ``system`` column, ``messages`` rows), the loss covers the
    assistant turns (:func:`forgetbench.chat.chat_example`).
    """
    if not encoder_decoder and getattr(tokenizer, "chat_template", None):
        return dataset.map(
            lambda row: chat_example(tokenizer, row, config.max_length, config.loss_on_prompt),
            remove_columns=dataset.column_names,
            desc="rendering chats",
        )

    def encode(row: dict) -> dict:
        response = tokenizer(" " + row["response"], add_special_tokens=False)["input_ids"]
        response = response + [tokenizer.eos_token_id]
        if encoder_decoder:
            # the encoder input with the tokenizer's own special tokens, as lm-eval encodes a seq2seq
            # context: T5's and mT0's tokenizers end it with </s>, as those models were trained
            prompt = tokenizer(row["prompt"])["input_ids"]
            return {"input_ids": prompt[: config.max_length], "labels": response[: config.max_length]}
        prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
        ids = (prompt + response)[-config.max_length :]  # keep the response when truncating
        masked = prompt if config.loss_on_prompt else [-100] * len(prompt)
        labels = (masked + response)[-config.max_length :]
        return {"input_ids": ids, "labels": labels}

    return dataset.map(encode, remove_columns=dataset.column_names, desc="tokenizing")


def make_loader(
    examples: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    config: TrainConfig,
    batch_size: int,
    seed: int,
    collate: Callable[[list[dict]], object] | None = None,
) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``examples``, padded (or as ``collate`` makes them); the order depends on ``seed`` alone."""
    data = tokenize_pairs(examples, tokenizer, model.config.is_encoder_decoder, config)
    collate = collate or DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=-100, return_tensors="pt")
    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        data, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator
    )


def step_batches(
    examples: Dataset,
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    config: TrainConfig,
    seed: int,
    processes: Processes,
    family: str | None = None,
) -> Iterator[list[MicroBatch]]:
    """Each optimizer step's micro-batches, endlessly; which examples a step sees depends on ``seed``
    alone, packed or not (``batch_size`` × ``grad_accum`` of them, drawn as padded micro-batches are).

    ``family``: how packed examples are kept apart (``packing.isolation``); None: padded micro-batches."""
    if family is None:
        batches = _endless(make_loader(examples, tokenizer, model, config, config.batch_size, seed))
        while True:
            step = [next(batches) for _ in range(config.grad_accum)]
            yield [MicroBatch(b, 1 / config.grad_accum, int(b["attention_mask"].sum())) for b in step]
    start_id = model.config.decoder_start_token_id if family == "encoder_decoder" else None
    draws = _endless(make_loader(examples, tokenizer, model, config, config.batch_size, seed, collate=list))
    while True:
        step = [example for _ in range(config.grad_accum) for example in next(draws)]
        yield split_step(
            step, family, config.max_length, config.batch_size, tokenizer.pad_token_id, start_id, processes.world_size
        )


def _scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total: int):
    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
        if config.schedule == "cosine":
            return warm * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        return warm

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; for bf16 weights, the stochastic-rounding AdamW that keeps small updates (see optim.py)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if any(p.dtype == torch.bfloat16 for p in params):
        return StochasticRoundingAdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    # one kernel for all parameters: on a CPU too (5x faster than the per-tensor loop; the values differ
    # in rounding only); a CPU run's DTensor shards (FSDP over gloo) keep the per-tensor loop, the tested one
    fused = bool(params) and (params[0].device.type == "cuda" or not any(isinstance(p, DTensor) for p in params))
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused or None)


@dataclass
class TaskProgress:
    """Where training stands inside one task: what a mid-task checkpoint keeps to continue it exactly
    (the weights, the method's state and the RNG states are the checkpoint's own)."""

    step: int  # optimizer steps done in this task
    tokens: int
    scheduler: dict
    optimizer: dict


@dataclass
class TaskResult:
    steps: int
    final_loss: float
    tokens: int
    seconds: float


ExtraLoss = Callable[[PreTrainedModel], "torch.Tensor | None"]
BatchLoss = Callable[[PreTrainedModel, dict], "torch.Tensor | None"]  # a term that depends on the batch (LwF)
BeforeUpdate = Callable[[PreTrainedModel], None]  # sees the step's gradients before clipping (A-GEM projects them)
AfterUpdate = Callable[[PreTrainedModel], None]  # sees the weights after the optimizer step (I-LoRA's moving average)


@dataclass
class StepStats:
    """One optimizer step, as progress lines and trackers report it."""

    step: int  # optimizer steps done in this task
    total: int
    loss: float
    tokens_per_second: float  # this process's tokens since the task (or its resume) began, per second


def train_on_task(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    examples: Dataset,
    config: TrainConfig,
    seed: int,
    optimizer: torch.optim.Optimizer | None = None,
    label: str = "",
    extra_loss: ExtraLoss | None = None,
    batch_loss: BatchLoss | None = None,
    before_update: BeforeUpdate | None = None,
    after_update: AfterUpdate | None = None,
    resume: TaskProgress | None = None,
    after_step: Callable[[Callable[[], TaskProgress], bool, StepStats], None] | None = None,
    processes: Processes | None = None,
    module: torch.nn.Module | None = None,
) -> tuple[TaskResult, torch.optim.Optimizer]:
    """Train ``model`` in place on ``examples`` for one task.

    Batches are drawn in an order fixed by ``seed`` alone, so rerunning a step
    after a crash sees the same data. Raises :class:`TrainingDiverged` when the
    loss stops being finite.

    Args:
        extra_loss: ``extra_loss(model)`` is added to the task loss at every forward pass
            (a method's penalty); None, or a call returning None, adds nothing.
        batch_loss: ``batch_loss(model, inputs)`` is added too, given the micro-batch's model inputs
            (a term on the batch itself: LwF's distillation); None adds nothing.
        before_update: ``before_update(model)`` after each step's backward passes, before clipping and
            the optimizer step: it may change the gradients (A-GEM's projection).
        after_update: ``after_update(model)`` after each optimizer step (I-LoRA's moving average).
        resume: continue the task from a mid-task checkpoint: its batches are skipped (the order
            depends on ``seed`` alone), the optimizer and schedule take their saved states.
        after_step: called after every optimizer step with a function that snapshots the
            progress, whether a stop signal arrived (on any rank) and the step's :class:`StepStats`;
            the runner writes mid-task checkpoints and feeds trackers from it. A stop signal during
            the task waits for the step in progress and this call, then raises RunStopped.
        processes: this run's processes (see ``forgetbench.distributed``): each runs its share of
            every step's micro-batches; None: one process.
        module: what the forward passes call: ``model``'s DDP wrapper under DDP (default: ``model``).
    """
    processes = processes or Processes()
    module = model if module is None else module  # (not `module or model`: a compiled module has no truth value)
    module = compiled(module) if config.compile else module
    if config.fused_loss and processes.sharded:
        raise ForgetbenchError(
            "train.fused_loss=true applies the output layer outside the model's forward pass, where FSDP "
            "holds only its shard; set train.fused_loss=false under distributed=fsdp"
        )
    device = next(model.parameters()).device
    family = isolation(model, processes.world_size) if config.packing else None
    steps = step_batches(examples, tokenizer, model, config, seed, processes, family)
    total = config.total_steps(len(examples))
    if not config.packing:
        processes.split_step(config.grad_accum)  # refuses a grad_accum the processes cannot share evenly
    if optimizer is None or config.reset_optimizer or resume is not None:
        optimizer = build_optimizer(model, config)
    scheduler = _scheduler(optimizer, config, total)
    model.train()
    step, tokens = _restore(resume, optimizer, scheduler, steps, processes, model)
    first, counted, start, loss_value = step, 0, time.perf_counter(), float("nan")
    with stops_deferred():  # a stop signal ends the run after the step in progress (and its checkpoint)
        while step < total:
            # 1) accumulate gradients over the step's micro-batches (this rank's share of them), each
            # weighted by its share of the step's loss; DDP averages over the ranks, hence × world size
            micro_batches = next(steps)  # every rank draws every micro-batch: the one-process order
            counted += sum(micro.tokens for micro in micro_batches)
            mine = [micro for index, micro in enumerate(micro_batches) if processes.runs(index)]
            step_loss = torch.zeros((), device=device)  # a tensor: no device sync per micro-batch
            for done_here, micro in enumerate(mine, start=1):
                batch = {k: v.to(device) for k, v in micro.batch.items()}
                with processes.no_sync(module, syncing=done_here == len(mine)):
                    with autocast(device, config.autocast), _model_inputs(model, batch, family) as inputs:
                        loss = lm_loss(model, inputs, config, module)
                        on_batch = batch_loss(model, inputs) if batch_loss else None
                    if on_batch is not None:
                        loss = loss + on_batch
                    extra = extra_loss(model) if extra_loss else None
                    if extra is not None:
                        loss = loss + extra
                    scale = micro.weight * processes.world_size
                    (loss * scale).backward()
                    step_loss += loss.detach() * scale
            loss_value = processes.mean(float(step_loss))
            if not math.isfinite(loss_value):
                raise TrainingDiverged(
                    f"loss became {loss_value} at step {step + 1}/{total} of task {label!r}: lower train.lr, keep "
                    "train.max_grad_norm above 0, or under train.autocast try bfloat16 (float16 overflows) or null"
                )
            # 2) a method's look at the gradients, then clip, step, schedule
            if before_update:
                before_update(model)
            if config.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            if after_update:
                after_update(model)
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # 3) a mid-task checkpoint when the runner wants one (a stop signal, its period), then stop if asked;
            # the ranks agree, so that all of them checkpoint and stop after the same step
            stop = processes.agreed_stop(requested_stop())
            if after_step:
                snapshot = functools.partial(TaskProgress, step, tokens + counted)
                rate = counted / max(time.perf_counter() - start, 1e-9)
                after_step(
                    lambda: snapshot(scheduler.state_dict(), processes.optimizer_state(model, optimizer)),  # noqa: B023
                    stop is not None,
                    StepStats(step, total, loss_value, rate),
                )
            if stop is not None:
                raise RunStopped(stop)
            if step % config.log_every == 0 or step == total:
                _log_progress(label, step, total, step - first, loss_value, counted, time.perf_counter() - start)
    return TaskResult(step, loss_value, tokens + counted, time.perf_counter() - start), optimizer


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # not a module attribute: that would
# register the compiled wrapper as a submodule, and its weights twice in the state dict


def compiled(module: torch.nn.Module) -> torch.nn.Module:
    """``torch.compile(module)``, one per module, so that every task reuses one compilation."""
    if module not in _COMPILED:
        _COMPILED[module] = torch.compile(module)
    return _COMPILED[module]


def lm_loss(model: PreTrainedModel, batch: dict, config: TrainConfig, module: torch.nn.Module | None = None):
    """The batch's language-model loss: the model's own, or chunked (``train.fused_loss``); the same value."""
    if config.fused_loss:
        return chunked_lm_loss(model, batch, forward=module)
    return (model if module is None else module)(**batch).loss


def _restore(
    resume: TaskProgress | None, optimizer, scheduler, steps: Iterator, processes: Processes, model
) -> tuple[int, int]:
    """Continue a task from a mid-task checkpoint: the saved optimizer and schedule states, and the
    steps already trained skipped (their batches depend on the seed alone). Returns (step, tokens)."""
    if resume is None:
        return 0, 0
    processes.load_optimizer_state(model, optimizer, resume.optimizer)
    scheduler.load_state_dict(resume.scheduler)
    for _ in range(resume.step):
        next(steps)
    return resume.step, resume.tokens


def _model_inputs(model: PreTrainedModel, batch: dict, family: str | None):
    """The forward pass's inputs: a padded batch as it is, a packed one with its family's isolation."""
    return contextlib.nullcontext(batch) if family is None else forward_inputs(model, batch, family)


def autocast(device: torch.device, dtype: str | None):
    """``torch.autocast`` in ``dtype`` ("bfloat16"), or nothing for null."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=getattr(torch, dtype))


def _endless(loader):
    while True:
        yield from loader


def _log_progress(label: str, step: int, total: int, done: int, loss: float, tokens: int, seconds: float) -> None:
    """One progress line; ``done`` steps and ``tokens`` are those of this process (the rate and ETA)."""
    rate = tokens / max(seconds, 1e-9)
    eta = seconds / max(done, 1) * (total - step)
    log.info(f"[{label}] step {step}/{total} loss {loss:.4f} {rate:,.0f} tokens/s eta {eta:.0f}s")
