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

from forgetbench.training import TrainConfig, autocast, build_optimizer, lm_loss

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
        with tracker:
            _two_steps(model, optimizer, batch, train, tracker, min(train.grad_accum, 2))
        peak = tracker.get_tracker_snapshot("peak")
    [by_kind] = peak.values()  # one (fake CPU) device
    # keys are MemTracker's kinds (str enums) plus a plain "Total", which is left out
    return MemoryPeak({kind.value: int(n) for kind, n in by_kind.items() if isinstance(kind, Enum)})


def _two_steps(model, optimizer, batch: dict, train: TrainConfig, tracker, micro_batches: int) -> None:
    """Two optimizer steps as training runs them: the first allocates the optimizer's states; in the
    second, with accumulation (``micro_batches`` > 1), a micro-batch runs while weights, gradients
    and states are all held."""
    for steps_micro_batches in (1, micro_batches):
        for _ in range(steps_micro_batches):
            tracker.reset_mod_stats()  # per-module stats only; the peak is kept
            with autocast(torch.device("cpu"), train.autocast):
                loss = lm_loss(model, batch, train)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _fake_batch(config: PretrainedConfig, batch_size: int, length: int, target_length: int) -> dict:
    ids = torch.randint(0, config.vocab_size, (batch_size, length))
    if config.is_encoder_decoder:
        labels = torch.randint(0, config.vocab_size, (batch_size, target_length))
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}


def traced_fsdp_peak(
    config: PretrainedConfig,
    dtype: torch.dtype,
    train: TrainConfig,
    gpus: int,
    param_dtype: torch.dtype | None,
    activation_checkpointing: bool,
    target_length: int = 128,
    untie_output_layer: bool = False,
) -> MemoryPeak:
    """Peak memory of one GPU of ``gpus`` training under FSDP2 as ``distributed=fsdp`` shards it.

    PyTorch's FSDPMemTracker on fake tensors over a fake process group of ``gpus`` ranks (as
    torchtitan's memory estimator does): weights, gradients and optimizer states are this rank's
    shards; the all-gathered blocks, reduce-scatter buffers and activations are counted as they
    live. Initialises that fake process group, so call it only in a process of its own (the
    ``experiments/memory_budget.py --gpus N`` script), never inside a distributed run.
    """
    import torch.distributed as dist
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from forgetbench.distributed import DistributedConfig, _fully_shard

    if dist.is_initialized() and dist.get_world_size() != gpus:  # a fake group of another size, traced before
        dist.destroy_process_group()
    if not dist.is_initialized():
        dist.init_process_group("fake", rank=0, world_size=gpus, store=FakeStore())
    mesh = init_device_mesh("cpu", (gpus,))  # outside FakeTensorMode
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    sharding = DistributedConfig("fsdp", _dtype_name(param_dtype), activation_checkpointing)
    with FakeTensorMode(allow_non_fake_inputs=True), _default_dtype(dtype):
        model = auto.from_config(config)
        if untie_output_layer:
            output = model.get_output_embeddings()
            output.weight = torch.nn.Parameter(torch.empty_like(output.weight))
        _fully_shard(model, sharding, mesh)
        model.train()
        optimizer = build_optimizer(model, train)
        batch = _fake_batch(config, train.batch_size, train.max_length, target_length)
        tracker = FSDPMemTracker(model, optimizer)
        tracker.track_inputs(tuple(batch.values()))
        with tracker:
            _two_steps(model, optimizer, batch, train, tracker, min(train.grad_accum // gpus, 2) or 1)
        peak = tracker.get_tracker_snapshot("peak")
    [by_kind] = peak.values()
    return MemoryPeak({kind.value: int(n) for kind, n in by_kind.items() if isinstance(kind, Enum)})


def _dtype_name(dtype: torch.dtype | None) -> str | None:
    return None if dtype is None else str(dtype).removeprefix("torch.")
