"""A Hydra callback that writes the cross-run report when a multirun ends."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from forgetbench.errors import ForgetbenchError

log = logging.getLogger(__name__)


class ReportCallback(Callback):
    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from forgetbench.reporting.report import REPORT_DIR, write_report  # matplotlib: only when needed

        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            path = write_report([sweep_dir], sweep_dir / REPORT_DIR)
        except ForgetbenchError as err:  # e.g. every job failed: nothing to report
            log.warning(f"no multirun report: {err}")
            return
        print(f"forgetbench: multirun report {path}", flush=True)
