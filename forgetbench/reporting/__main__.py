"""``python -m forgetbench.reporting PATH... [--out DIR]``."""

import sys

from forgetbench.reporting.cli import main

sys.exit(main())
