"""Errors a user can act on; the CLI prints them as one line and exits non-zero."""

import errno
import shutil
from pathlib import Path

FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_LOW_SPACE_BYTES = 1 << 20


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


def out_of_space(err: BaseException, path: Path) -> bool:
    """Whether ``err`` came from the disk holding ``path`` being full.

    The writers say so differently: an OSError with ENOSPC (pandas, pyarrow, matplotlib), the text
    "No space left on device (os error 28)" (safetensors), or nothing recognisable (torch.save:
    "unexpected pos 576 vs 534"); so besides the error and its causes, the disk itself is asked.
    """
    chain: BaseException | None = err
    while chain is not None:
        if isinstance(chain, OSError) and chain.errno in FULL_DISK_ERRNOS:
            return True
        if "No space left on device" in str(chain) or "Disk quota exceeded" in str(chain):
            return True
        chain = chain.__cause__ or chain.__context__
    try:
        return shutil.disk_usage(path).free < _LOW_SPACE_BYTES
    except OSError:
        return False
