"""The one entry point: ``forgetbench CMD`` (the console script) and ``python -m forgetbench CMD`` alike.

- ``forgetbench [overrides]``: an experiment (:mod:`forgetbench.experiment`);
- ``forgetbench eval [RUN_DIR] [overrides]``: an experiment that only evaluates (:func:`eval_overrides`);
- ``forgetbench report PATH... [--out DIR]``: a report across runs (:mod:`forgetbench.reporting.command`);
- ``forgetbench data-check [overrides]``: what the model will see (:mod:`forgetbench.data_check`);
- ``forgetbench analyze RUN_DIR [overrides]``: when and why a run forgot (:mod:`forgetbench.analysis.command`).

Each command's modules are imported when it runs: a mistyped override is answered by the preflight in
about a second, not after the recipe's imports.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not sys.stderr.isatty():
    # lm-eval's and datasets' progress bars would fill log files (stderr redirected, Slurm) with one line per
    # redraw; there, progress is logged per step and per eval task instead. A terminal keeps its bars.
    os.environ.setdefault("TQDM_DISABLE", "1")

from forgetbench.errors import ForgetbenchError  # noqa: E402
from forgetbench.run_record import override_key, recorded_overrides  # noqa: E402

SUBCOMMANDS = ("eval", "report", "data-check", "analyze")


def main() -> None:
    """Dispatch ``sys.argv``: ``eval`` runs an experiment that only evaluates, ``report`` and
    ``data-check`` their commands, anything else an experiment."""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "report":
        from forgetbench.reporting.command import main as report_main

        sys.exit(report_main(sys.argv[2:]))
    if command == "data-check":
        from forgetbench.data_check import main as data_check_main

        sys.exit(data_check_main(sys.argv[2:]))
    if command == "analyze":
        from forgetbench.analysis.command import main as analyze_main

        sys.exit(analyze_main(sys.argv[2:]))
    if command == "eval":
        try:
            sys.argv = [sys.argv[0], *eval_overrides(sys.argv[2:])]
        except ForgetbenchError as err:
            print(f"forgetbench: error: {err}", file=sys.stderr)
            sys.exit(2)
    from forgetbench.experiment import run

    run()


def eval_overrides(args: list[str]) -> list[str]:
    """``forgetbench eval [RUN_DIR] [overrides]`` as an experiment's overrides: a model scored on its
    suite (and its stream's held-out items) with no training (``eval_only``), in a run of its own.

    Without ``RUN_DIR``: the experiment's model, in a run named ``<model>-eval`` unless ``run_name`` is
    given (an eval-only run's config differs from a training run's). With it: the weights of that run's
    checkpoint (its fine-tuned model: a finished run keeps it under ``keep_checkpoint=true``), under
    the run's own overrides (model, method, stream, suite), in a run named ``<run>-eval`` beside it;
    the overrides given after ``RUN_DIR`` change what is scored (``eval=...``)."""
    if args and "=" not in args[0] and not args[0].startswith("-"):
        return checkpoint_eval_overrides(Path(args[0]), args[1:])
    named = any(override_key(a) == "run_name" for a in args)
    return ["+eval_only=true", *([] if named else ["run_name=${model.name}-eval"]), *args]


def checkpoint_eval_overrides(run_dir: Path, args: list[str]) -> list[str]:
    """The overrides that score ``run_dir``'s checkpoint: the run's recorded ones (and its own
    ``hydra.*`` ones, a search path), then ``eval_from`` and the new run's name, then ``args``."""
    from forgetbench.checkpoint import checkpoint_step

    try:
        recorded, given_to_hydra = recorded_overrides(run_dir)
    except ForgetbenchError as err:
        raise ForgetbenchError(f"{err}, or overrides (KEY=VALUE)") from None
    if checkpoint_step(run_dir) == -1:
        raise ForgetbenchError(
            f"{str(run_dir)!r} has no checkpoint to score: a finished run keeps its fine-tuned model only "
            "with keep_checkpoint=true (set it when running the experiment)"
        )
    own = ("run_name", "eval_only", "eval_from")
    path = str(run_dir.resolve())
    if "'" in path or "\\" in path:
        raise ForgetbenchError(f"{path!r}: a run directory's path may not hold a quote or a backslash")
    return [
        *given_to_hydra,
        *[o for o in recorded if override_key(o) not in own],
        "+eval_only=true",
        f"+eval_from='{path}'",
        f"run_name={run_dir.name}-eval",
        *args,
    ]
