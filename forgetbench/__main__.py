"""``python -m forgetbench [overrides]``: run (or resume) an experiment, then write its report; ``-m`` sweeps.

Errors a user can fix print as one line and exit with status 2; a run that
failed before writing any result leaves no run directory behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not sys.stderr.isatty():
    # lm-eval's and datasets' progress bars would fill log files (stderr redirected, Slurm) with one line per
    # redraw; there, progress is logged per step and per eval task instead. A terminal keeps its bars.
    os.environ.setdefault("TQDM_DISABLE", "1")

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from forgetbench.checkpoint import CHECKPOINT_DIR  # noqa: E402
from forgetbench.errors import ForgetbenchError  # noqa: E402
from forgetbench.hashing import stable_hash  # noqa: E402
from forgetbench.results import RESULTS_FILE  # noqa: E402
from forgetbench.runner import run_experiment  # noqa: E402

log = logging.getLogger("forgetbench")
# names multirun job folders (conf/hydra/default.yaml): override lists are too long for a folder name
OmegaConf.register_new_resolver("forgetbench_hash", lambda text: stable_hash(text, 8), replace=True)


def _remove_if_empty(run_dir: Path) -> None:
    """Drop a run directory that holds no result (only Hydra's files and the log)."""
    if not (run_dir / RESULTS_FILE).exists() and not (run_dir / CHECKPOINT_DIR).exists():
        shutil.rmtree(run_dir, ignore_errors=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run_experiment(cfg, run_dir)
        from forgetbench.reporting.report import REPORT_DIR, write_report  # matplotlib, after the run

        report = write_report([run_dir], run_dir / REPORT_DIR)
    except ForgetbenchError as err:
        log.error(str(err))
        print(f"forgetbench: error: {err}", file=sys.stderr)
        _remove_if_empty(run_dir)
        sys.exit(2)
    print(f"forgetbench: results in {run_dir / RESULTS_FILE}; report {report}", flush=True)


if __name__ == "__main__":
    main()
