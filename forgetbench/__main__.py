"""``python -m forgetbench CMD``: the same as the ``forgetbench`` console script (:mod:`forgetbench.cli`)."""

from forgetbench.cli import main

main()
