"""Stopping a run on a signal: SIGTERM (a scheduler, ``kill``), SIGINT (Ctrl-C), SIGUSR1 (what
Slurm sends ahead of a time limit when asked to with ``--signal=USR1@SECONDS``) and SIGUSR2
(submitit's warning under ``hydra/launcher=slurm`` or ``local``; the launcher then requeues the job).

Outside training, the handler raises :class:`RunStopped` in the main thread at once, as Ctrl-C
raises KeyboardInterrupt. Inside training (:func:`stops_deferred`), it only records the request:
the loop finishes the optimizer step in progress, writes a mid-task checkpoint and then stops, so
a rerun continues inside the task instead of repeating it (a second signal stops it at once).

An exception raised from a signal handler can also be lost: when the signal lands while Python
runs a finalizer (``__del__``, a weakref callback of pyarrow, datasets or torch), it is printed as
"Exception ignored" and the run goes on. So the request is always recorded, and the loops call
:func:`raise_if_stopped` at their safe points: a stop is never lost, only delayed to the next one.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

from forgetbench.errors import RunStopped

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2)
_requested: int | None = None
_deferred = False
_fork_hook_registered = False


def install_stop_handlers() -> None:
    """Make SIGTERM, SIGINT, SIGUSR1 and SIGUSR2 stop the run with :class:`RunStopped` (main thread only)."""
    global _fork_hook_registered
    for signum in STOP_SIGNALS:
        signal.signal(signum, _request_stop)
    if not _fork_hook_registered:  # hooks cannot be unregistered: once per process
        os.register_at_fork(after_in_child=_default_actions_in_child)
        _fork_hook_registered = True


def _default_actions_in_child() -> None:
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is _request_stop:
            signal.signal(signum, signal.SIG_DFL)


def _request_stop(signum: int, frame) -> None:
    global _requested
    repeated, _requested = _requested is not None, signum
    if repeated or not _deferred:  # a second Ctrl-C does not wait for the step in progress
        raise RunStopped(signum)


@contextlib.contextmanager
def stops_deferred() -> Iterator[None]:
    """Within this block a stop signal is only recorded; the code inside checks :func:`requested_stop`."""
    global _deferred
    previous, _deferred = _deferred, True
    try:
        yield
    finally:
        _deferred = previous


def requested_stop() -> int | None:
    """The signal that asked this process to stop, or None."""
    return _requested


def raise_if_stopped() -> None:
    """Raise :class:`RunStopped` if a stop signal arrived (even one whose exception was lost)."""
    if _requested is not None:
        raise RunStopped(_requested)
