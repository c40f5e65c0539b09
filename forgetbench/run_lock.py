"""One run directory, one writer: a lock held while a process runs in it.

Two processes in one run directory (the same command started twice, two sweeps sharing jobs) would
both append the same steps. ``flock`` on ``<run_dir>/.lock`` is released by the operating system
when its holder exits, however it exits, so a lock left by a killed process is simply taken over;
the file holds the holder's host and PID for the message the second process prints.

A run that is not accepted (refused, or finished with nothing to do) puts the file's previous text
back on leaving, so a refused rerun leaves the run directory byte-identical.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from forgetbench.errors import ForgetbenchError

LOCK_FILE = ".lock"


class RunInUse(ForgetbenchError):
    """Another live process holds the run directory; this one wrote nothing there."""


class HeldRun:
    """The lock held; :meth:`claim` once the run is accepted keeps this process's name in the file."""

    claimed = False

    def claim(self) -> None:
        self.claimed = True


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[HeldRun]:
    """Hold ``run_dir`` for this process, or raise :class:`RunInUse` naming the holder."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 256).decode(errors="replace").strip() or "another process"
            raise RunInUse(
                f"{run_dir} is in use by {holder}; wait for that run to end or stop it (rerun to resume)"
            ) from None
        previous = os.read(fd, 4096)
        _write(fd, f"host {socket.gethostname()} pid {os.getpid()}".encode())
        held = HeldRun()
        try:
            yield held
        finally:
            if not held.claimed:
                _write(fd, previous)
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a waiting process)


def _write(fd: int, text: bytes) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)
