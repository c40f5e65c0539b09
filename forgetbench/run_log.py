"""The run's log file: its lines are written once the run is accepted, so a refused rerun adds none.

Hydra's job logging opens ``<run_dir>/__main__.log`` for every job, and a rerun that is then refused
(bad input, a damaged file, another config's directory) would append its lines, and its error, to
the log of the run already there. :class:`RunLogHandler` (Hydra's file handler here,
``conf/hydra/default.yaml``) keeps the lines in memory until :func:`accept_run_log`, called when the
run has passed every check; a refused job's lines are printed on the console only.
"""

from __future__ import annotations

import logging
import sys


class RunLogHandler(logging.FileHandler):
    """A FileHandler whose records wait in memory until :meth:`accept` (the file opens then)."""

    def __init__(self, filename: str, mode: str = "a", encoding: str | None = None, delay: bool = True) -> None:
        super().__init__(filename, mode, encoding, delay=True)  # never opened before the run is accepted
        self._pending: list[logging.LogRecord] | None = []

    def emit(self, record: logging.LogRecord) -> None:
        if self._pending is None:
            super().emit(record)
        else:
            self._pending.append(record)

    @property
    def accepted(self) -> bool:
        """Whether the run was accepted (its lines now go to the file)."""
        return self._pending is None

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        """A line the file cannot take (a full disk) is dropped without logging's traceback: the console
        has it, and the run's own error says what happened."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handleError(record)

    def accept(self) -> None:
        """Write the waiting records and every later one to the file."""
        pending, self._pending = self._pending or [], None
        for record in pending:
            super().emit(record)


def _run_log_handlers() -> list[RunLogHandler]:
    return [h for h in logging.getLogger().handlers if isinstance(h, RunLogHandler)]


def accept_run_log() -> None:
    """The run is accepted: its log file receives the lines so far and every later one."""
    for handler in _run_log_handlers():
        handler.accept()


def log_to_file(logger: logging.Logger, level: int, message: str) -> None:
    """``message`` as a line in the run's log file alone (if the run was accepted): the console
    already has it as the command's one line on stderr (an error, or where a stop left the run)."""
    record = logger.makeRecord(logger.name, level, "(run)", 0, message, None, None)
    for handler in _run_log_handlers():
        if handler.accepted:
            handler.handle(record)
