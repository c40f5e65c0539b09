"""The ``forgetbench`` console script: ``forgetbench report PATH...``, ``forgetbench data-check [overrides]``
or, otherwise, an experiment."""

from __future__ import annotations

import sys

SUBCOMMANDS = ("report", "data-check")  # `forgetbench X` and `python -m forgetbench X` alike


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        from forgetbench.reporting.cli import main as report_main

        sys.exit(report_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "data-check":
        from forgetbench.data.check import main as data_check_main

        sys.exit(data_check_main(sys.argv[2:]))
    from forgetbench.__main__ import run

    run()
