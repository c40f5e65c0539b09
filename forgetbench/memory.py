"""Peak memory while a task trains, as the run's log reports it beside the time per step.

On a GPU: the CUDA caching allocator's peak of allocated bytes (``torch.cuda.max_memory_allocated``):
weights, gradients, optimizer states, activations and whatever copies a method keeps on the device.
On a CPU (Linux): the process's peak resident set (``VmHWM``), reset per task by writing 5 to
``/proc/self/clear_refs``; it includes the interpreter and the libraries (several hundred MiB), so a
method's extra memory is the difference between two runs' peaks. Elsewhere: not measured (None).
"""

from __future__ import annotations

from pathlib import Path

import torch

PROC = Path("/proc/self")


def reset_peak(device: torch.device) -> None:
    """Start a new peak from the memory held now."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        (PROC / "clear_refs").write_text("5")  # 5: reset the peak resident set size (Linux ≥ 4.0)
    except OSError:
        pass


def peak_bytes(device: torch.device) -> int | None:
    """The peak since :func:`reset_peak` (a CPU: since the process began, where it cannot be reset)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        status = (PROC / "status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # reported in kB
    return None


def describe_peak(device: torch.device) -> str:
    """A log phrase: "peak memory 1,234 MiB (CUDA allocated)", or "peak memory not measured"."""
    peak = peak_bytes(device)
    if peak is None:
        return "peak memory not measured"
    kind = "CUDA allocated" if device.type == "cuda" else "process resident set"
    return f"peak memory {peak / 2**20:,.0f} MiB ({kind})"
