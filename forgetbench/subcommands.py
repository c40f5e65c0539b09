"""The commands beside an experiment, `report` and `data-check`, reached the same way from the console
script (`forgetbench report ...`) and the module (`python -m forgetbench report ...`)."""

from __future__ import annotations

import sys

SUBCOMMANDS = ("report", "data-check")


def run_subcommand(argv: list[str]) -> None:
    """Run ``argv[0]`` (one of :data:`SUBCOMMANDS`) with the arguments after it, and exit with its code."""
    if argv[0] == "report":
        from forgetbench.reporting.cli import main as report_main

        sys.exit(report_main(argv[1:]))
    from forgetbench.data.check import main as data_check_main

    sys.exit(data_check_main(argv[1:]))
