"""Errors a user can act on; the CLI prints them as one line and exits non-zero."""


class ForgetbenchError(Exception):
    """Bad input or a state the user must resolve (message names the bad value)."""


class TrainingDiverged(ForgetbenchError):
    """The loss stopped being finite; completed steps are kept."""


class RunStopped(BaseException):
    """SIGTERM arrived (a scheduler's stop, `kill`): raised in the main thread as Ctrl-C raises
    KeyboardInterrupt, and like it a BaseException, so no library's ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
