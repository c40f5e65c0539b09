"""An experiment (``forgetbench [overrides]``, ``python -m forgetbench [overrides]``; :mod:`forgetbench.cli`
dispatches): run (or resume) it through Hydra, then write its report; ``-m`` sweeps.

Errors a user can fix print as one line and exit with status 2; a run that
failed before writing any result leaves no run directory behind, and a refused rerun
(another config's directory, bad input, a damaged file) leaves that directory byte-identical.
SIGTERM, Ctrl-C (SIGINT), SIGUSR1 and SIGUSR2 stop a run with one line saying what is kept and how
to resume, and exit 143, 130, 138 and 140 (128 + the signal), as shells report a signal's end.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from forgetbench.errors import ForgetbenchError, RunDirectoryTaken, RunStopped, out_of_space  # noqa: E402
from forgetbench.preflight import CONF_DIR, command_line_error  # noqa: E402
from forgetbench.resolvers import register_resolvers  # noqa: E402
from forgetbench.run_lock import RunInUse  # noqa: E402
from forgetbench.run_log import accept_run_log, log_to_file  # noqa: E402
from forgetbench.stopping import install_stop_handlers  # noqa: E402

log = logging.getLogger("forgetbench")
register_resolvers()


# The recipe's modules (torch, transformers, lm-eval, pandas) are imported where they are used, not
# here: a mistyped override is answered by the preflight in about a second, not after ten of imports.


def _remove_if_empty(run_dir: Path) -> None:
    """Drop a run directory that holds no result (only the config record and the log)."""
    from forgetbench.checkpoint import CHECKPOINT_DIR
    from forgetbench.results import RESULTS_FILE

    if not (run_dir / RESULTS_FILE).exists() and not (run_dir / CHECKPOINT_DIR).exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def _record_config(cfg: DictConfig, run_dir: Path) -> None:
    """Write ``.hydra/`` (config, hydra, overrides) as Hydra would, once the run is accepted.

    Hydra's own copy is off (``hydra.output_subdir: null``): it is written before the task
    starts, so a rerun that is then refused would overwrite the recorded config of the run
    whose rows are in that directory.
    """
    hydra_config = HydraConfig.instance().cfg
    record = run_dir / ".hydra"
    record.mkdir(exist_ok=True)
    for name, node in [
        ("config.yaml", cfg),
        ("hydra.yaml", hydra_config),
        ("overrides.yaml", hydra_config.hydra.overrides.task),
    ]:
        tmp = record / f".{name}.tmp"
        tmp.write_text(OmegaConf.to_yaml(node))
        os.replace(tmp, record / name)


def _accept(cfg: DictConfig, run_dir: Path, trackers) -> None:
    """The run passed every check: its config is recorded, its log file written from here on, and
    its trackers started (a resumed run continues its tracked run)."""
    from forgetbench.assembly import config_hash
    from forgetbench.loggers import RunInfo

    _record_config(cfg, run_dir)
    accept_run_log()
    if trackers is not None and trackers.trackers:
        hydra_config = HydraConfig.get()
        multirun = hydra_config.mode == RunMode.MULTIRUN
        config = OmegaConf.to_container(cfg, resolve=True)
        info = RunInfo(
            run_dir=run_dir,
            run_name=cfg.run_name,
            experiment=cfg.experiment_name,
            sweep_dir=Path(hydra_config.sweep.dir) if multirun else None,
            config=config,
            config_hash=config_hash(cfg),
        )
        trackers.start(info)


def _progress(run_dir: Path) -> tuple[str, str]:
    """Where the run was, and what a rerun keeps of it, in words. A rerun continues after the last
    checkpoint: rows recorded after it (a failure between a step's rows and its checkpoint) are
    computed again, so they are not counted as kept."""
    from forgetbench.checkpoint import checkpoint_step
    from forgetbench.results import RunTable
    from forgetbench.runner import STATUS_FILE

    try:
        recorded = max(RunTable(run_dir).steps(), default=None)
        status = json.loads((run_dir / STATUS_FILE).read_text())
        total, finished = status["steps"], status["finished"]
    except (OSError, ValueError, KeyError, ForgetbenchError):  # stopped before the status was written (or mid-write)
        recorded, total, finished = None, None, False
    if finished:  # every step recorded: the report was being written
        return "after its last step, while writing its report", f"all {total} steps are kept in {run_dir}"
    if recorded is None:
        return "before the step-0 evaluation was recorded", "nothing is recorded yet"
    where = f"during step {recorded + 1}/{total}" if recorded < (total or 0) else "after its last step"
    resumable = checkpoint_step(run_dir)
    kept = recorded if resumable is None else min(resumable, recorded)
    if kept < 0:
        return where, "nothing is kept yet (the rerun starts with the step-0 evaluation)"
    return where, f"step 0 is kept in {run_dir}" if kept == 0 else f"steps 0-{kept} are kept in {run_dir}"


def _resume_hint() -> str:
    hydra_config = HydraConfig.get()
    if hydra_config.mode == RunMode.MULTIRUN:
        return "rerun the same -m command to resume (finished jobs are skipped)"
    # quoted for the shell, with the user's own hydra.* overrides (a search path): the line runs as printed
    given = [o for o in hydra_config.overrides.hydra if not o.startswith("hydra.mode=")]  # hydra.mode: Hydra's own
    return f"resume with: {shlex.join(['python', '-m', 'forgetbench', *given, *hydra_config.overrides.task])}"


def _stopped_message(run_dir: Path, signum: int) -> str:
    """One line: which signal, where the run was, what is kept, how to resume."""
    where, kept = _progress(run_dir)
    return f"stopped by {signal.Signals(signum).name} {where}; {kept}; {_resume_hint()}"


def _full_disk_message(run_dir: Path) -> str:
    """One line: the disk is full, where the run was, what is kept, what to do."""
    where, kept = _progress(run_dir)
    free = shutil.disk_usage(run_dir).free if run_dir.exists() else 0
    return (
        f"no space left on the disk of {run_dir} ({free / 2**20:.1f} MiB free) {where}; {kept}; "
        f"free some space, then {_resume_hint()}"
    )


def _quiet_other_rank() -> None:
    """Ranks other than 0 keep warnings and errors on stderr and write no log file: the run's log
    is rank 0's, one readable line per event."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("forgetbench").setLevel(logging.WARNING)


# the conf/ folder by its absolute path: a path relative to this module resolves only when it runs as
# `python -m forgetbench`; imported (the console script, `forgetbench eval`) Hydra looks for a package
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg: DictConfig) -> None:
    from forgetbench.distributed import is_main_process
    from forgetbench.results import RESULTS_FILE
    from forgetbench.runner import build_trackers, run_experiment

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    # empty: made by Hydra just now (it writes nothing there itself: conf/hydra/default.yaml), so ours to remove
    created_now = not any(run_dir.iterdir())
    install_stop_handlers()
    if not is_main_process():  # another rank of a multi-process run: rank 0 logs, writes and reports
        _quiet_other_rank()
    trackers = None
    try:
        trackers = build_trackers(cfg) if is_main_process() else None  # rank 0 tracks the run
        run_experiment(cfg, run_dir, on_accept=lambda: _accept(cfg, run_dir, trackers), trackers=trackers)
        if not is_main_process():
            return
        from forgetbench.reporting.report import REPORT_DIR, write_report  # matplotlib, after the run

        report = write_report([run_dir], run_dir / REPORT_DIR)
        if trackers.started:
            trackers.log_report(run_dir / REPORT_DIR)
    except (RunDirectoryTaken, RunInUse) as err:  # not logged: the log file there is the other run's
        print(f"forgetbench: error: {err}", file=sys.stderr)
        sys.exit(2)
    except ForgetbenchError as err:
        log_to_file(log, logging.ERROR, str(err))
        print(f"forgetbench: error: {err}", file=sys.stderr)
        if created_now and is_main_process():
            _remove_if_empty(run_dir)
        sys.exit(2)
    except Exception as err:
        if not out_of_space(err, run_dir):
            raise
        message = _full_disk_message(run_dir)
        log_to_file(log, logging.ERROR, message)
        print(f"forgetbench: error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)
    except (KeyboardInterrupt, RunStopped) as stop:  # KeyboardInterrupt: a Ctrl-C before the handlers were set
        signum = stop.signum if isinstance(stop, RunStopped) else signal.SIGINT
        message = _stopped_message(run_dir, signum)
        log_to_file(log, logging.WARNING, message)
        print(f"forgetbench: {message}", file=sys.stderr, flush=True)
        sys.exit(128 + signum)
    finally:
        if trackers is not None:
            trackers.finish()  # also after a failure or a stop: what was logged is kept
    print(f"forgetbench: results in {run_dir / RESULTS_FILE}; report {report}", flush=True)


def run() -> None:
    """The command: its overrides checked first (one line, exit 2), then Hydra's main."""
    error = command_line_error(sys.argv[1:])
    if error:
        print(f"forgetbench: error: {error}", file=sys.stderr)
        sys.exit(2)
    main()
