"""Training on several processes (GPUs): DDP, or FSDP2 for models that one device cannot hold.

Launched by ``torchrun`` or ``accelerate launch --multi_gpu`` (both set RANK, WORLD_SIZE and LOCAL_RANK;
``accelerate launch --cpu`` starts one process whatever ``--num_processes`` says), or by
``hydra/launcher=slurm`` with ``tasks_per_node`` > 1. One process is the plain single-device run.
The ``distributed`` config group (ddp | fsdp) decides how the model is split, not accelerate's config.

Built on ``torch.distributed`` directly, as torchtune is, not on accelerate's ``Accelerator``: on a
CPU, ``Accelerator(cpu=True)`` with an FSDP plugin silently runs DDP (tried with accelerate 1.15),
so its FSDP path cannot be tested without GPUs, while torch's ``fully_shard`` runs the same code on
CPUs over gloo as on GPUs over NCCL. ``accelerate launch`` remains a launcher like torchrun.

What each rank does:

- **training**: every rank draws the same micro-batches in the one-process order, and the
  ``grad_accum`` micro-batches of each optimizer step are dealt round-robin over the ranks. The
  gradients are averaged across ranks, so each step sees exactly the examples and the mean
  gradient of a one-process run (up to floating-point summation order).
- **evaluation**: every rank runs the same evaluation in lockstep and rank 0 records it. FSDP needs
  every rank in each forward pass; under DDP it costs no wall time, and no rank waits at a barrier
  that a long evaluation (MMLU on a 7B model) could time out. Splitting lm-eval's requests over the
  ranks would need a gather of its per-item results; that belongs with the scoring engine.
- **writing**: rank 0 alone holds the run lock and writes rows, status, checkpoints, the config
  record, the log file and the report. Under FSDP, the weights and the optimizer's states are
  gathered to rank 0 (a collective every rank joins) and saved whole, so a checkpoint resumes
  under any number of processes.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist

from forgetbench.errors import ForgetbenchError
from forgetbench.validation import PositiveFloat, check_fields

log = logging.getLogger(__name__)


def world_size() -> int:
    """Processes in this run, from the launcher's environment (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """Rank 0: the one process that writes (known from the environment before any set-up)."""
    return rank() == 0


@dataclass
class DistributedConfig:
    """How a run launched on several processes splits the model (ignored by a one-process run).

    Attributes:
        strategy: "ddp" (a whole model per process; gradients averaged) or "fsdp" (FSDP2
            ``fully_shard``: each transformer block's weights, gradients and optimizer states
            sharded over the processes) for models one device cannot train.
        param_dtype: fsdp: the dtype weights are gathered and computed in (bfloat16 halves the
            all-gathers); gradients are reduced in float32. null: the weights' own dtype.
        activation_checkpointing: fsdp: recompute each block's activations in the backward pass.
        timeout_minutes: how long a collective may wait for a slow rank before the run fails.
    """

    strategy: Literal["ddp", "fsdp"] = "ddp"
    param_dtype: Literal["bfloat16", "float32"] | None = "bfloat16"
    activation_checkpointing: bool = True
    timeout_minutes: PositiveFloat = 60.0

    def __post_init__(self) -> None:
        check_fields(self)


class Processes:
    """This process's place in the run, and the few collectives the recipe needs.

    A one-process run (``world_size`` 1) uses the same object: every call is then a no-op, so the
    training loop and the runner read the same in both cases.
    """

    def __init__(self, config: DistributedConfig | None = None) -> None:
        self.config = config or DistributedConfig()
        self.world_size, self.rank = world_size(), rank()
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.is_main = self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def sharded(self) -> bool:
        return self.distributed and self.config.strategy == "fsdp"

    def start(self, device: torch.device) -> torch.device:
        """Join the process group; returns this rank's device (its own GPU, ``cuda:LOCAL_RANK``)."""
        if not self.distributed:
            return device
        if device.type == "cuda":
            device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            timeout = datetime.timedelta(minutes=self.config.timeout_minutes)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=timeout)
        log.info(f"rank {self.rank}/{self.world_size} on {device} ({self.config.strategy})")
        if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true" and not self.sharded:
            log.warning("accelerate launch's FSDP settings are not read here; set distributed=fsdp to shard the model")
        return device

    def stop(self) -> None:
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    # ---- the model ----

    def wrap(self, model: torch.nn.Module, method_name: str, fsdp_ready: bool) -> torch.nn.Module:
        """The module training calls: ``model`` itself (one process; FSDP shards it in place) or
        its DDP wrapper. Evaluation and the methods keep using ``model``."""
        if not self.distributed:
            return model
        if not self.sharded:
            device_ids = [self.local_rank] if next(model.parameters()).device.type == "cuda" else None
            return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        if not fsdp_ready:
            raise ForgetbenchError(
                f"method={method_name} keeps whole copies of the weights, which FSDP shards; "
                "use distributed=ddp, or method=full or replay under distributed=fsdp"
            )
        _fully_shard(model, self.config)
        return model

    def split_step(self, grad_accum: int) -> int:
        """Micro-batches this rank runs per optimizer step (the step's ``grad_accum`` dealt round-robin)."""
        if grad_accum % self.world_size:
            raise ForgetbenchError(
                f"train.grad_accum={grad_accum} micro-batches per step cannot be split evenly over "
                f"{self.world_size} processes; set train.effective_batch_size / train.batch_size to a "
                f"multiple of {self.world_size}"
            )
        return grad_accum // self.world_size

    def runs(self, micro_batch: int) -> bool:
        """Whether this rank runs micro-batch ``micro_batch`` (0-based, within a step)."""
        return micro_batch % self.world_size == self.rank

    def no_sync(self, module: torch.nn.Module, syncing: bool):
        """Skip DDP's gradient all-reduce on all but a rank's last micro-batch of a step (FSDP
        reduce-scatters at every backward; accumulation stays correct, only the traffic differs)."""
        if syncing or not isinstance(module, torch.nn.parallel.DistributedDataParallel):
            return contextlib.nullcontext()
        return module.no_sync()

    # ---- agreement: every rank must take the same branch ----

    def agreed_stop(self, signum: int | None) -> int | None:
        """A stop signal that reached any rank (its number; None: none did). A signal reaches the ranks
        at different moments; agreeing after each step makes all of them checkpoint and stop there."""
        if not self.distributed:
            return signum
        value = torch.tensor([signum or 0], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return int(value.item()) or None

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any (a stop signal, a checkpoint falling due)."""
        if not self.distributed:
            return flag
        value = torch.tensor([float(flag)], device=self._collective_device())
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def mean(self, value: float) -> float:
        """The mean of ``value`` over the ranks (the logged loss; a non-finite one stops every rank)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def _collective_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if dist.get_backend() == "nccl" else torch.device("cpu")

    # ---- whole states for checkpoints (collectives under FSDP: every rank calls them) ----

    def model_state(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """The whole model's weights by name (under FSDP gathered to rank 0; empty elsewhere)."""
        if not self.sharded:
            return model.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """The optimizer's whole state (under FSDP gathered to rank 0, keyed by parameter name)."""
        if not self.sharded:
            return optimizer.state_dict()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_optimizer_state_dict(model, optimizer, options=options)

    def load_optimizer_state(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Restore :meth:`optimizer_state` (every rank read the whole state; FSDP keeps its shard).

        FSDP's whole state is keyed by parameter name, a one-device optimizer's by position: a
        checkpoint taken inside a task resumes under the strategy it was written with (with any
        number of processes); the weights resume under any."""
        by_name = any(isinstance(key, str) for key in state.get("state", {}))
        if by_name != self.sharded and state.get("state"):
            written = "distributed=fsdp" if by_name else "one process or distributed=ddp"
            raise ForgetbenchError(
                f"the checkpoint's optimizer state was written under {written}; resume the run the same way "
                "(any number of processes), or remove the run's checkpoint/ folder to rerun it from step 0"
            )
        if not self.sharded:
            optimizer.load_state_dict(state)
            return
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(model, optimizer, state, options=StateDictOptions(full_state_dict=True))


def _fully_shard(model: torch.nn.Module, config: DistributedConfig, mesh=None) -> None:
    """FSDP2: each transformer block (the classes the model names as never split) is one shard
    group, then the root (embeddings, head and anything left). ``mesh``: the ranks (default: all)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    dtype = getattr(torch, config.param_dtype) if config.param_dtype else None
    policy = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
    if config.activation_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        # transformers' own recomputation, which knows the block boundaries (non-reentrant: FSDP's hooks)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    block_names = set(getattr(model, "_no_split_modules", None) or [])
    blocks = [m for m in model.modules() if type(m).__name__ in block_names]
    if not blocks:
        raise ForgetbenchError(
            f"{type(model).__name__} names no transformer block class (_no_split_modules) to shard by; "
            "use distributed=ddp"
        )
    for block in blocks:
        fully_shard(block, mp_policy=policy, mesh=mesh)
    fully_shard(model, mp_policy=policy, mesh=mesh)
