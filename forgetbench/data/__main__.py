"""``python -m forgetbench.data [overrides]``: the same as ``forgetbench data-check [overrides]``."""

import sys

from forgetbench.data.check import main

sys.exit(main(sys.argv[1:]))
