"""What a run directory records of the command that made it (``.hydra/``, written by
:mod:`forgetbench.experiment` once the run was accepted): read back to score or analyse the run under
the config it ran with (``forgetbench eval RUN_DIR``, ``forgetbench analyze RUN_DIR``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from forgetbench.errors import ForgetbenchError

RECORD_DIR = ".hydra"


def recorded_overrides(run_dir: Path) -> tuple[list[str], list[str]]:
    """The run's own overrides (``overrides.yaml``) and the ``hydra.*`` ones it was given (a search
    path), as (task overrides, hydra overrides); a folder that is not a run is a one-line error."""
    record = run_dir / RECORD_DIR
    if not (record / "overrides.yaml").is_file():
        raise ForgetbenchError(
            f"{str(run_dir)!r} is not a run directory (no .hydra/overrides.yaml): give a run's folder, "
            "e.g. results/tiny_world/tiny_decoder-full-seed0"
        )
    recorded = yaml.safe_load((record / "overrides.yaml").read_text()) or []
    hydra_record = yaml.safe_load((record / "hydra.yaml").read_text()) if (record / "hydra.yaml").is_file() else {}
    given_to_hydra = (hydra_record or {}).get("hydra", {}).get("overrides", {}).get("hydra", []) or []
    return recorded, [o for o in given_to_hydra if not o.startswith("hydra.mode=")]  # Hydra's own, not the user's


def override_key(override: str) -> str:
    """The key an override sets (``+eval_only=true`` → ``eval_only``)."""
    return override.split("=", 1)[0].lstrip("+~")
