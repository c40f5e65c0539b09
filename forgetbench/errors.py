"""Errors a user can act on; the CLI prints them as one line and exits non-zero."""


class ForgetbenchError(Exception):
    """Bad input or a state the user must resolve (message names the bad value)."""


class RunDirectoryTaken(ForgetbenchError):
    """The run directory holds a run of another config; the refusal touches nothing there."""


class TrainingDiverged(ForgetbenchError):
    """The loss stopped being finite; completed steps are kept."""


class RunStopped(BaseException):
    """SIGTERM or SIGINT arrived (a scheduler's stop, `kill`, Ctrl-C; see ``forgetbench.stopping``):
    like KeyboardInterrupt a BaseException, so no library's ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum
