"""How much GPU memory training a model needs, traced without allocating it.

The model is built from its config on fake tensors (shapes and dtypes, no storage), then
micro-batches go through forward, backward and the optimizer step as training runs them;
PyTorch's MemTracker follows every tensor's lifetime and reports the peak by kind (weights,
gradients, optimizer states, activations, temporaries). A 7B model is traced on a CPU in about a
minute. This is plain fine-tuning (method=full): a method's own state (EWC's Fisher, L2-SP's
anchor) comes on top. Not counted: the CUDA context, kernel workspaces (about 1-3 GB) and
allocator fragmentation; leave that much headroom.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig

from forgetbench.training import TrainConfig, autocast, build_optimizer

GIB = 1 << 30


@dataclass
class MemoryPeak:
    """Bytes held at the step's peak, by kind (MemTracker's categories)."""

    by_kind: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def gib(self, kind: str | None = None) -> float:
        return (self.total if kind is None else self.by_kind.get(kind, 0)) / GIB


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def traced_training_peak(
    config: PretrainedConfig,
    dtype: torch.dtype,
    train: TrainConfig,
    gradient_checkpointing: bool,
    target_length: int = 128,
    untie_output_layer: bool = False,
) -> MemoryPeak:
    """Peak memory of training on micro-batches of ``train.batch_size`` × ``train.max_length`` tokens.

    Args:
        config: the model's transformers config (real sizes).
        dtype: the weights' dtype.
        train: batch size, sequence length, autocast and the optimizer's settings.
        gradient_checkpointing: recompute activations in the backward pass.
        target_length: decoder length for encoder-decoder models (the response).
        untie_output_layer: give the output layer its own weights. transformers 5 builds mT5 with
            the output layer tied to the embeddings, but loads mT0 checkpoints, which store both,
            untied: the built model would be one embedding matrix short.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker  # PyTorch's own memory tracer

    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    with FakeTensorMode(allow_non_fake_inputs=True), _default_dtype(dtype):
        model = auto.from_config(config)
        if untie_output_layer:
            output = model.get_output_embeddings()
            output.weight = torch.nn.Parameter(torch.empty_like(output.weight))
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        model.train()
        optimizer = build_optimizer(model, train)
        batch = _fake_batch(config, train.batch_size, train.max_length, target_length)
        tracker = MemTracker()
        tracker.track_external(model, optimizer)
        # two optimizer steps: the first allocates the optimizer's states; in the second, with
        # accumulation, a micro-batch runs while weights, gradients and states are all held
        with tracker:
            for micro_batches in (1, min(train.grad_accum, 2)):
                for _ in range(micro_batches):
                    tracker.reset_mod_stats()  # per-module stats only; the peak is kept
                    with autocast(torch.device("cpu"), train.autocast):
                        loss = model(**batch).loss
                    loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        peak = tracker.get_tracker_snapshot("peak")
    [by_kind] = peak.values()  # one (fake CPU) device
    # keys are MemTracker's kinds (str enums) plus a plain "Total", which is left out
    return MemoryPeak({kind.value: int(n) for kind, n in by_kind.items() if isinstance(kind, Enum)})


def _fake_batch(config: PretrainedConfig, batch_size: int, length: int, target_length: int) -> dict:
    ids = torch.randint(0, config.vocab_size, (batch_size, length))
    if config.is_encoder_decoder:
        labels = torch.randint(0, config.vocab_size, (batch_size, target_length))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
