"""Where a run computes: the torch device, and how many CPU threads torch may use."""

from __future__ import annotations

import os

import torch

from forgetbench.errors import ForgetbenchError


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(name: str) -> torch.device:
    """The ``device`` config value as a torch device: "auto" (a GPU when there is one), "cpu", "cuda", "cuda:N"."""
    if name == "auto":
        return default_device()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ForgetbenchError(f"device={name!r} is not valid; choose auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ForgetbenchError(f"device={name!r} was asked for, but torch finds no CUDA GPU; use device=auto or cpu")
    return device


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity), not the machine's count."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_threads(setting: int | str) -> int:
    """The ``threads`` config value as a thread count: a positive integer, or "auto": ``OMP_NUM_THREADS``
    when it is set (as torch's default honours it), else :func:`available_cores`.

    torch's own default is one thread per core of the machine; a process limited to fewer cores
    (taskset, a Slurm allocation, a container) then oversubscribes them, and a run next to another
    busy process slowed from ~8,000 to a few hundred tokens/s here.
    """
    if setting == "auto":
        omp = os.environ.get("OMP_NUM_THREADS", "")
        return int(omp) if omp.isdigit() and int(omp) >= 1 else available_cores()
    if isinstance(setting, int) and not isinstance(setting, bool) and setting >= 1:
        return setting
    raise ForgetbenchError(f"threads={setting!r} is not valid; choose auto or a positive integer")


def share_of_cores(cores: list[int], job: int, jobs: int) -> set[int]:
    """The cores job ``job`` of ``jobs`` running at once on ``cores`` gets: an equal contiguous block
    of them, or, with more jobs than cores, one core shared round-robin.

    Each job's own affinity is then set to its share, so ``threads=auto`` (which follows the
    affinity) gives each parallel job its part of the machine instead of all of it.
    """
    if jobs <= len(cores):
        size, extra = divmod(len(cores), jobs)
        start = job * size + min(job, extra)
        return set(cores[start : start + size + (job < extra)])
    return {cores[job % len(cores)]}
