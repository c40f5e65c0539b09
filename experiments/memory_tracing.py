"""How much GPU memory training a model needs, traced without allocating it.

The model is built from its config on fake tensors (shapes and dtypes, no storage), then
micro-batches go through forward, backward and the optimizer step as training runs them;
PyTorch's MemTracker follows every tensor's lifetime and reports the peak by kind (weights,
gradients, optimizer states, activations, temporaries). A 7B model is traced on a CPU in about a
minute. Given a method, the model is traced as that method trains the stream's last task: its
``prepare_model`` and ``before_task`` hooks run on the fake model, so LoRA adapters (one per task for
``adapters``), the learned router's gate and what each freezes are traced as they are trained. State
a method keeps outside the model (EWC's Fisher, L2-SP's anchor) comes on top. Not counted: the CUDA
context, kernel workspaces (about 1-3 GB) and allocator fragmentation; leave that much headroom.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import torch
from torch.distributed._tools.mem_tracker import MemTracker  # PyTorch's own memory tracer
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig

from forgetbench.methods.base import Method, TaskContext
from forgetbench.training import TrainConfig, autocast, build_optimizer, lm_loss

GIB = 1 << 30


@dataclass
class MemoryPeak:
    """Bytes held at the step's peak, by kind (MemTracker's categories)."""

    by_kind: dict[str, int]
    added_parameters: int = 0  # what the method added to the model (adapters, a router's gate)
    trainable_parameters: int = 0  # what the optimizer updates in the traced task

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
    method: Method | None = None,
    stream_tasks: list[str] | None = None,
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
        method: the method whose model is trained (None: every weight, as ``method=full``).
        stream_tasks: the stream's task names (the method's adapters are one per task); the last
            is the one traced, the step with the most adapters trained.
    """
    from torch._subclasses.fake_tensor import FakeTensorMode

    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    with FakeTensorMode(allow_non_fake_inputs=True), _default_dtype(dtype):
        model = auto.from_config(config)
        if untie_output_layer:
            output = model.get_output_embeddings()
            output.weight = torch.nn.Parameter(torch.empty_like(output.weight))
        if gradient_checkpointing:
            model.gradient_checkpointing_enable()
        base_parameters = sum(p.numel() for p in model.parameters())
        if method is not None:
            model = _prepared_for_last_task(method, model, stream_tasks or ["task"], train)
        model.train()
        optimizer = build_optimizer(model, train)
        batch = _fake_batch(config, train.batch_size, train.max_length, target_length)
        tracker = _FrozenAwareMemTracker()
        tracker.track_external(model, optimizer)
        with tracker:
            _two_steps(model, optimizer, batch, train, tracker, min(train.grad_accum, 2), method)
        peak = tracker.get_tracker_snapshot("peak")
    [by_kind] = peak.values()  # one (fake CPU) device
    # keys are MemTracker's kinds (str enums) plus a plain "Total", which is left out
    return MemoryPeak(
        {kind.value: int(n) for kind, n in by_kind.items() if isinstance(kind, Enum)},
        added_parameters=sum(p.numel() for p in model.parameters()) - base_parameters,
        trainable_parameters=sum(p.numel() for p in model.parameters() if p.requires_grad),
    )


def _prepared_for_last_task(method: Method, model, stream_tasks: list[str], train: TrainConfig):
    """The model as ``method`` trains the stream's last task: wrapped (``prepare_model``) and set up
    for that task (``before_task``: which adapters are active and trainable). Adapters are built in
    float32, as peft builds them beside bf16 weights."""
    from unittest import mock

    # peft moves each new adapter to its base layer's device and dtype with Module.to, which cannot
    # swap fake parameters in place ("Couldn't swap Linear.weight"); on one fake CPU the move is the
    # identity, so it is skipped
    with mock.patch.object(torch.nn.Module, "to", lambda module, *args, **kwargs: module):
        with _default_dtype(torch.float32):
            model = method.prepare_model(model, list(stream_tasks))
    last = TaskContext(model, None, stream_tasks[-1], len(stream_tasks), None, train, seed=0)
    method.before_task(last)
    return model


class _NoHook:
    def remove(self) -> None:
        pass


class _FrozenAwareMemTracker(MemTracker):
    """MemTracker that leaves frozen parameters' gradients alone: it hooks every parameter's gradient,
    and a frozen one (an adapter method's base weights) refuses a hook ("cannot register a hook on a
    tensor that doesn't require gradient"); a frozen parameter is marked as hooked with no-op handles."""

    def _track_module_params_and_buffers(self, module: torch.nn.Module, install_grad_hooks: bool = True):
        for param in module.parameters():
            if not param.requires_grad and self._param_to_grad_hook_handles.get(param) is None:
                self._param_to_grad_hook_handles[param] = (_NoHook(), _NoHook())
        return super()._track_module_params_and_buffers(module, install_grad_hooks)


def _two_steps(
    model, optimizer, batch: dict, train: TrainConfig, tracker, micro_batches: int, method: Method | None = None
) -> None:
    """Two optimizer steps as training runs them: the first allocates the optimizer's states; in the
    second, with accumulation (``micro_batches`` > 1), a micro-batch runs while weights, gradients
    and states are all held. A method's extra loss (a penalty, the router's balance) is added."""
    for steps_micro_batches in (1, micro_batches):
        for _ in range(steps_micro_batches):
            tracker.reset_mod_stats()  # per-module stats only; the peak is kept
            with autocast(torch.device("cpu"), train.autocast):
                loss = lm_loss(model, batch, train)
                extra = method.extra_loss(model) if method is not None else None
                if extra is not None:
                    loss = loss + extra
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
