"""The commands beside an experiment, `eval`, `report` and `data-check`, reached the same way from the
console script (`forgetbench report ...`) and the module (`python -m forgetbench report ...`)."""

from __future__ import annotations

import sys

SUBCOMMANDS = ("eval", "report", "data-check")


def run_subcommand(argv: list[str]) -> None:
    """Run ``report`` or ``data-check`` (``argv[0]``) with the arguments after it, and exit with its code.
    (``eval`` is an experiment: the entry point runs it with :func:`eval_overrides`.)"""
    if argv[0] == "report":
        from forgetbench.reporting.cli import main as report_main

        sys.exit(report_main(argv[1:]))
    from forgetbench.data.check import main as data_check_main

    sys.exit(data_check_main(argv[1:]))


def eval_overrides(args: list[str]) -> list[str]:
    """``forgetbench eval [overrides]`` as an experiment's overrides: the experiment's model scored on its
    suite (and its stream's held-out items) with no training (``eval_only``), in a run of its own named
    ``<model>-eval`` unless ``run_name`` is given (an eval-only run's config differs from a training run's)."""
    named = any(a.split("=", 1)[0].lstrip("+~") == "run_name" for a in args)
    return ["+eval_only=true", *([] if named else ["run_name=${model.name}-eval"]), *args]
