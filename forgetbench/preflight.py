"""The command line checked before Hydra starts: composition errors and an unusable results folder
end in one forgetbench line (exit 2) instead of Hydra's 10-20 lines and a hint about HYDRA_FULL_ERROR.

Hydra composes and creates the run directory before forgetbench's code runs, so these two checks
cannot live in the task function. With ``HYDRA_FULL_ERROR=1``, or with any Hydra flag other than
``-m`` (``--cfg``, ``--help``, ``-cn``, ...), nothing is checked here and Hydra reports as it does.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"
MULTIRUN_FLAGS = ("-m", "--multirun")


class _Unchecked(Exception):
    """The command line uses what only Hydra itself can expand; Hydra reports its errors."""


def command_line_error(argv: list[str]) -> str | None:
    """The one-line error for the overrides in ``argv`` (``sys.argv[1:]``), or None when they are fine."""
    if os.environ.get("HYDRA_FULL_ERROR") == "1" or any(a.startswith("-") and a not in MULTIRUN_FLAGS for a in argv):
        return None
    overrides = [a for a in argv if a not in MULTIRUN_FLAGS]
    for text in overrides:  # Hydra's parser takes "=5" as a group override and fails with a traceback
        if "=" in text and not text.split("=", 1)[0].lstrip("+~"):
            return f"the override {text!r} has no key: write KEY=VALUE (e.g. seed=5)"
    try:
        first = _first_of_each_sweep(overrides)
        cfg = compose_config(first)
    except _Unchecked:
        return None
    except OverrideParseException as err:
        return f"the override {err.override!r} cannot be parsed: {str(err).splitlines()[0]}"
    except MissingConfigException as err:
        return _unknown_option(err)
    except ConfigCompositionException as err:
        return _unknown_key(str(err), first)
    return _missing_error(cfg) or _paths_error(cfg)


def _first_of_each_sweep(overrides: list[str]) -> list[str]:
    """A sweep's overrides (``model=a,b``) reduced to their first values: every option is checked
    the same way, and compose (unlike Hydra's sweeper) takes single values only."""
    parsed = OverridesParser.create().parse_overrides(overrides)
    try:
        sweeps = [(o.get_key_element(), list(o.sweep_string_iterator())) for o in parsed if o.is_sweep_override()]
    except HydraException:  # glob(...) sweeps expand only inside Hydra's sweeper: checked there
        raise _Unchecked from None
    first = {key: values[0] for key, values in sweeps}
    plain = [
        f"{o.get_key_element()}={first[o.get_key_element()]}" if o.is_sweep_override() else text
        for text, o in zip(overrides, parsed)
    ]
    for key, values in sweeps:  # the sweep's other values must compose too
        for value in values[1:]:
            compose_config([*plain, f"{key}={value}"])
    return plain


def compose_config(overrides: list[str]) -> DictConfig:
    """The config a run with ``overrides`` (single values, no sweep) would get."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def _unknown_option(err: MissingConfigException) -> str:
    found = re.search(r"Could not find '(.+)/([^/']+)'", str(err))
    if not found or not err.options:
        return str(err).splitlines()[0]
    group, option = found.groups()
    return f"{group}={option} is not an option of the config group {group!r}; valid: {', '.join(err.options)}"


def _unknown_key(message: str, overrides: list[str]) -> str:
    found = re.search(r"Could not override '([^']+)'", message)
    if not found:
        return message.splitlines()[0]
    key = found[1]
    parent = key.rpartition(".")[0]
    cfg = compose_config([o for o in overrides if not o.lstrip("+~").startswith(f"{key}=")])
    node = OmegaConf.select(cfg, parent) if parent else cfg
    where = f"{parent!r} has" if parent and isinstance(node, DictConfig) else "the top level has"
    keys = sorted(node.keys()) if isinstance(node, DictConfig) else sorted(cfg.keys())
    return f"{key} is not a config key; {where}: {', '.join(map(str, keys))}"


def _missing_error(cfg: DictConfig) -> str | None:
    """A value the chosen options leave for the command line (``???``, e.g. judge.path of judge=classifier)."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        return f"{missing[0]} has no value (the config leaves it for the command line): give it, e.g. {missing[0]}=..."
    return None


def _paths_error(cfg: DictConfig) -> str | None:
    mirror = cfg.paths.hub_mirror
    if mirror is not None and not Path(str(mirror)).expanduser().is_dir():  # else every ID would go to the Hub
        return f"paths.hub_mirror={str(mirror)!r} is not a folder; point it at a Hub mirror or leave it null"
    results = Path(str(cfg.paths.results_dir))
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"paths.results_dir={str(results)!r} cannot be created: {err.strerror}"
    if not os.access(results, os.W_OK):
        return f"paths.results_dir={str(results)!r} is not writable"
    return None
