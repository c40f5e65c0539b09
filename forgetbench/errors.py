"""Errors a user can act on; the CLI prints them as one line and exits non-zero."""


class ForgetbenchError(Exception):
    """Bad input or a state the user must resolve (message names the bad value)."""


class TrainingDiverged(ForgetbenchError):
    """The loss stopped being finite; completed steps are kept."""
