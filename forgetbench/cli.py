"""The ``forgetbench`` console script: ``forgetbench eval [overrides]``, ``forgetbench report PATH...``,
``forgetbench data-check [overrides]`` or, otherwise, an experiment."""

from __future__ import annotations


def main() -> None:
    from forgetbench.__main__ import entry  # one dispatch for both entry points

    entry()
