"""Stopping a run on a signal: SIGTERM (a scheduler, ``kill``) and SIGINT (Ctrl-C).

The handler raises :class:`RunStopped` in the main thread at once, as Ctrl-C raises
KeyboardInterrupt. An exception raised from a signal handler can still be lost:
when the signal lands while Python runs a finalizer (``__del__``, a weakref
callback of pyarrow, datasets or torch), the exception is printed as "Exception
ignored" and the run goes on. So the handler also records the request, and the
loops call :func:`raise_if_stopped` at their safe points (each optimizer step,
before a step's rows are written): a stop is never lost, only delayed to the next one.
"""

from __future__ import annotations

import signal

from forgetbench.errors import RunStopped

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_requested: int | None = None


def install_stop_handlers() -> None:
    """Make SIGTERM and SIGINT stop the run with :class:`RunStopped` (main thread only)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, _request_stop)


def _request_stop(signum: int, frame) -> None:
    global _requested
    _requested = signum
    raise RunStopped(signum)


def raise_if_stopped() -> None:
    """Raise :class:`RunStopped` if a stop signal arrived (even one whose exception was lost)."""
    if _requested is not None:
        raise RunStopped(_requested)
