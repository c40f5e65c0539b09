"""``forgetbench report PATH... [--out DIR]`` (or ``python -m forgetbench report``): a report across runs.

PATH may be run directories, multirun directories or globs of them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from forgetbench.errors import ForgetbenchError
from forgetbench.reporting.report import REPORT_DIR, write_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forgetbench report", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", help="run or multirun directories, or globs of them")
    parser.add_argument("--out", help="report folder (default: <first path>/report)")
    parser.add_argument(
        "--metric", default=None, help="the metric reported (default: each task's headline: acc; refusal, over_refusal)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.paths[0]) / REPORT_DIR
    try:
        path = write_report(args.paths, out, args.metric)
    except ForgetbenchError as err:
        print(f"forgetbench report: error: {err}", file=sys.stderr)
        return 2
    print(f"forgetbench report: {path} (and report.html)")
    return 0
