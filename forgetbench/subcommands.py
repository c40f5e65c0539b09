"""The commands beside an experiment, `eval`, `report` and `data-check`, reached the same way from the
console script (`forgetbench report ...`) and the module (`python -m forgetbench report ...`)."""

from __future__ import annotations

import sys

SUBCOMMANDS = ("eval", "report", "data-check")


def run_subcommand(argv: list[str]) -> None:
    """Run ``argv[0]`` (one of :data:`SUBCOMMANDS`) with the arguments after it, and exit with its code."""
    if argv[0] == "eval":
        _evaluate_only(argv[1:])
    if argv[0] == "report":
        from forgetbench.reporting.cli import main as report_main

        sys.exit(report_main(argv[1:]))
    from forgetbench.data.check import main as data_check_main

    sys.exit(data_check_main(argv[1:]))


def _evaluate_only(args: list[str]) -> None:
    """``forgetbench eval [overrides]``: the experiment's model scored on its suite (and its stream's
    held-out items), no training: the step-0 rows, items and report of a run of its own, named
    ``<model>-eval`` unless ``run_name`` is given (an eval-only run's config differs from a training run's)."""
    from forgetbench.__main__ import run

    named = any(a.split("=", 1)[0].lstrip("+~") == "run_name" for a in args)
    sys.argv = [sys.argv[0], "+eval_only=true", *([] if named else ["run_name=${model.name}-eval"]), *args]
    run()
    sys.exit(0)
