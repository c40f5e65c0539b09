"""The ``forgetbench`` console script: ``forgetbench eval [overrides]``, ``forgetbench report PATH...``,
``forgetbench data-check [overrides]`` or, otherwise, an experiment."""

from __future__ import annotations

import sys

from forgetbench.subcommands import SUBCOMMANDS, run_subcommand


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        run_subcommand(sys.argv[1:])
    from forgetbench.__main__ import run

    run()
