"""The commands beside an experiment, `eval`, `report` and `data-check`, reached the same way from the
console script (`forgetbench report ...`) and the module (`python -m forgetbench report ...`)."""

from __future__ import annotations

import sys
from pathlib import Path

from forgetbench.errors import ForgetbenchError

SUBCOMMANDS = ("eval", "report", "data-check")


def run_subcommand(argv: list[str]) -> None:
    """Run ``report`` or ``data-check`` (``argv[0]``) with the arguments after it, and exit with its code.
    (``eval`` is an experiment: the entry point runs it with :func:`eval_overrides`.)"""
    if argv[0] == "report":
        from forgetbench.reporting.cli import main as report_main

        sys.exit(report_main(argv[1:]))
    from forgetbench.data_check import main as data_check_main

    sys.exit(data_check_main(argv[1:]))


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
    named = any(_key(a) == "run_name" for a in args)
    return ["+eval_only=true", *([] if named else ["run_name=${model.name}-eval"]), *args]


def checkpoint_eval_overrides(run_dir: Path, args: list[str]) -> list[str]:
    """The overrides that score ``run_dir``'s checkpoint: the run's recorded ones (and its own
    ``hydra.*`` ones, a search path), then ``eval_from`` and the new run's name, then ``args``."""
    import yaml

    from forgetbench.checkpoint import checkpoint_step

    record = run_dir / ".hydra"
    if not (record / "overrides.yaml").is_file():
        raise ForgetbenchError(
            f"{str(run_dir)!r} is not a run directory (no .hydra/overrides.yaml): give a run's folder, "
            "e.g. results/tiny_world/tiny_decoder-full-seed0, or overrides (KEY=VALUE)"
        )
    if checkpoint_step(run_dir) == -1:
        raise ForgetbenchError(
            f"{str(run_dir)!r} has no checkpoint to score: a finished run keeps its fine-tuned model only "
            "with keep_checkpoint=true (set it when running the experiment)"
        )
    recorded = yaml.safe_load((record / "overrides.yaml").read_text()) or []
    hydra_record = yaml.safe_load((record / "hydra.yaml").read_text()) if (record / "hydra.yaml").is_file() else {}
    given_to_hydra = (hydra_record or {}).get("hydra", {}).get("overrides", {}).get("hydra", []) or []
    own = ("run_name", "eval_only", "eval_from")
    path = str(run_dir.resolve())
    if "'" in path or "\\" in path:
        raise ForgetbenchError(f"{path!r}: a run directory's path may not hold a quote or a backslash")
    return [
        *[o for o in given_to_hydra if not o.startswith("hydra.mode=")],  # Hydra's own, not the user's
        *[o for o in recorded if _key(o) not in own],
        "+eval_only=true",
        f"+eval_from='{path}'",
        f"run_name={run_dir.name}-eval",
        *args,
    ]


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")
