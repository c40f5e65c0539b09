"""``forgetbench analyze RUN_DIR [overrides]``: when and why a finished run forgot.

Rebuilds the run from its recorded overrides (``.hydra/overrides.yaml``) and its kept weights, runs
the analyses ``analysis.parts`` names (config group ``analysis``: conf/analysis/default.yaml) and
writes them into the run's report as ``report/analysis/`` (analysis.md, analysis.html, CSV tables,
figures); the run's report.md then links them. A run without the weights an analysis needs is a
one-line error saying what to rerun it with; nothing is written then.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import torch

from forgetbench.analysis.analyse import AnalysedRun, drift, recovery, where
from forgetbench.analysis.models import RunModels
from forgetbench.analysis.report import write_analysis
from forgetbench.analysis.settings import AnalysisSettings
from forgetbench.assembly import build, load_stream
from forgetbench.checkpoint import CHECKPOINT_DIR, checkpoint_step, step_weights_path
from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.lm_eval_bridge import LmEvalBridge
from forgetbench.hardware import cpu_threads, resolve_device
from forgetbench.methods.base import Method
from forgetbench.preflight import command_line_error, compose_config
from forgetbench.reporting.report import REPORT_DIR, write_report
from forgetbench.resolvers import register_resolvers
from forgetbench.results import RunTable, read_items
from forgetbench.run_record import override_key, recorded_overrides

log = logging.getLogger("forgetbench.analyze")
QUIET_WHILE_ANALYSING = ("forgetbench.assembly", "forgetbench.models", "forgetbench.tiny.model")
USAGE = "usage: forgetbench analyze RUN_DIR [KEY=VALUE ...] (e.g. analysis.probe_steps=40)"


def main(argv: list[str]) -> int:
    """Analyse the run ``argv[0]`` names under the overrides after it; 2 and one line on stderr for bad input."""
    if not argv or "=" in argv[0] or argv[0].startswith("-"):
        print(f"forgetbench analyze: error: give a run directory first; {USAGE}", file=sys.stderr)
        return 2
    try:
        path = analyze(Path(argv[0]), argv[1:])
    except ForgetbenchError as err:
        print(f"forgetbench analyze: error: {err}", file=sys.stderr)
        return 2
    print(f"forgetbench analyze: {path} (and analysis.html); the run's report links it")
    return 0


def analyze(run_dir: Path, overrides: list[str]) -> Path:
    """Run the configured analyses of ``run_dir`` and write its report's analysis section."""
    recorded, _ = recorded_overrides(run_dir)
    if any(override_key(o) == "eval_only" for o in recorded):
        raise ForgetbenchError(f"{str(run_dir)!r} is an eval-only run (forgetbench eval): it fine-tuned nothing")
    argv = [*recorded, *overrides]
    error = command_line_error(argv)
    if error:
        raise ForgetbenchError(error)
    register_resolvers()
    cfg = compose_config(argv)
    settings: AnalysisSettings = build(cfg.analysis, "analysis")
    rows = RunTable(run_dir).read()
    last = _check_finished(run_dir, rows)
    final, steps = _kept_weights(run_dir, last, settings)
    # accepted: progress from here on (a refusal above is its one line alone)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    torch.set_num_threads(cpu_threads(cfg.threads))
    run = _assemble(cfg, rows, run_dir, final, steps)
    for name in QUIET_WHILE_ANALYSING:  # a line per model rebuilt, dozens of them: said once, above
        logging.getLogger(name).setLevel(logging.WARNING)
    tables = {}
    if "recovery" in settings.parts:
        tables["recovery"] = recovery(run, settings)
    if "where" in settings.parts:
        tables["where"] = where(run)
    if "drift" in settings.parts:
        tables["drift"] = drift(run, settings)
    report_dir = run_dir / REPORT_DIR
    path = write_analysis(report_dir, run_dir.name, tables, settings.spurious_share)
    write_report([run_dir], report_dir)  # the run's report.md links the new section
    return path


def _check_finished(run_dir: Path, rows) -> int:
    """The run's last step; a run that has not finished is refused (its last step is not its final model)."""
    status = run_dir / "status.json"
    finished = status.is_file() and json.loads(status.read_text()).get("finished", False)
    if not finished or rows.empty:
        raise ForgetbenchError(f"{str(run_dir)!r} has not finished its stream: resume it (rerun its command) first")
    return int(rows["step"].max())


def _kept_weights(run_dir: Path, last: int, settings: AnalysisSettings) -> tuple[Path, list[Path]]:
    """The final weights and every step's (for where and drift), or a one-line error naming the rerun."""
    steps = [step_weights_path(run_dir, step) for step in range(last + 1)]
    kept_all = all(path.is_file() for path in steps)
    final = steps[-1] if kept_all else run_dir / CHECKPOINT_DIR / "model.safetensors"
    rerun = f"rerun its command with keep_checkpoint=all run_name={run_dir.name}-kept (the same rows come out)"
    if not final.is_file() or (not kept_all and checkpoint_step(run_dir) != last):
        raise ForgetbenchError(f"{str(run_dir)!r} kept no final weights (keep_checkpoint=false): {rerun}")
    needs_steps = sorted({"where", "drift"} & set(settings.parts))
    if needs_steps and not kept_all:
        raise ForgetbenchError(
            f"{str(run_dir)!r} kept only its final weights, and {' and '.join(needs_steps)} need every step's: "
            f"{rerun}; or analyze it with analysis.parts=[recovery]"
        )
    return final, steps if kept_all else []


def _assemble(cfg, rows, run_dir: Path, final: Path, steps: list[Path]) -> AnalysedRun:
    """The run's parts as its setup built them (model, stream, suite, method), checked."""
    source = build(cfg.model, "model")
    tokenizer = source.load_tokenizer()
    stream = load_stream(cfg, tokenizer)
    method = build(cfg.method, "method")
    if method.router() is not None or type(method).evaluating is not Method.evaluating:
        raise ForgetbenchError(
            f"method={cfg.method.name} scores each task in its own model state (per-task adapters); "
            "forgetbench analyze covers methods whose fine-tuned model is one set of weights"
        )
    device = resolve_device(cfg.device)
    models = RunModels(lambda: source.load(device), lambda: build(cfg.method, "method"), [t.name for t in stream])
    bridge = LmEvalBridge(build(cfg.eval, "eval"), stream, tokenizer)
    return AnalysedRun(rows, read_items(run_dir), models, bridge, stream, build(cfg.train, "train"), final, steps)
