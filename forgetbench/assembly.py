"""Turning the composed config into objects, and naming what it determines: each config group's
``_target_`` instantiated with one-line errors (``build``), the stream read and checked
(``load_stream``), and the hash of everything that changes results (``config_hash``). The runner
and ``forgetbench data-check`` both assemble a run this way, so it lives below both."""

from __future__ import annotations

import dataclasses
import logging
import re

from hydra.errors import InstantiationException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from forgetbench.chat import chat_setting_key
from forgetbench.errors import ForgetbenchError
from forgetbench.evaluation.suite import EvalSuite
from forgetbench.hashing import stable_hash
from forgetbench.stream_records import StreamTask
from forgetbench.training import TrainConfig
from forgetbench.validation import InvalidValue, hashed_when_set, unhashed_fields

log = logging.getLogger(__name__)

# The root config's keys and groups that change no result: where results go and what runs them
# (device and threads change only floating-point rounding; the number of processes and how they split
# the model, `distributed`, keep the effective batch), where the run is tracked (`logger`), the judge
# (hashed where a suite uses it, as eval.judge) and what `forgetbench analyze` does afterwards
# (`analysis`). A field of a group's dataclass says so beside itself (validation.UNHASHED): these
# groups' fields are read from their classes.
UNHASHED_KEYS = (
    "paths",
    "hydra",
    "keep_checkpoint",
    "device",
    "threads",
    "distributed",
    "judge",
    "logger",
    "analysis",
)
GROUP_CLASSES = {"train": TrainConfig, "eval": EvalSuite}


def config_hash(cfg: DictConfig) -> str:
    """A hash of what determines the results: every path is masked before resolving, so
    values interpolated from ``paths`` (cache dirs, the Hub mirror) do not change it."""
    masked = OmegaConf.to_container(cfg, resolve=False)
    masked["paths"] = {key: f"<paths.{key}>" for key in cfg.paths}
    for group, cls in _group_classes(masked).items():
        for name in unhashed_fields(cls):
            masked[group].pop(name, None)
        for name, default in hashed_when_set(cls).items():
            if name in masked[group] and masked[group][name] == default:
                masked[group].pop(name)
    if "chat_template" in masked["model"]:  # a template file by its content: what renders the examples
        masked["model"]["chat_template"] = chat_setting_key(str(masked["model"]["chat_template"]))
    resolved = OmegaConf.to_container(OmegaConf.create(masked), resolve=True)
    return stable_hash({k: v for k, v in resolved.items() if k not in UNHASHED_KEYS})


def _group_classes(masked: dict) -> dict[str, type]:
    """The dataclasses whose fields say how they are hashed: train's, eval's, and the model's and the
    method's plug-ins (from their ``_target_``: a knob added later is hashed only when set, as eval's are)."""
    classes = dict(GROUP_CLASSES)
    for group in ("model", "method"):
        target = masked.get(group, {}).get("_target_")
        try:
            plugin = get_class(target)
        except Exception:  # noqa: BLE001 - a wrong _target_ is reported, in one line, when the group is built
            continue
        if dataclasses.is_dataclass(plugin):
            classes[group] = plugin
    return classes


def build(node: DictConfig, group: str):
    """Instantiate one config group's ``_target_``, turning its errors into one-line ones."""
    log.info(f"instantiating {group}: <{node._target_}>")
    try:
        return instantiate(node, _convert_="all")
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, InvalidValue):  # named from the config's root, also in a nested node
            where = re.search(r"full_key: (\S+)\s*$", str(err))
            raise cause.within(where[1] if where else group) from None
        if isinstance(cause, ForgetbenchError):
            raise cause from None
        raise ForgetbenchError(f"{group} config is invalid: {cause or err}".splitlines()[0]) from err


def load_stream(cfg: DictConfig, tokenizer, source=None) -> list[StreamTask]:
    """The stream's tasks, read and checked (``tokenizer``: the model's, for token-count filters;
    ``source``: the stream object already built from ``cfg.stream``)."""
    stream = (source or build(cfg.stream, "stream")).load(tokenizer)
    if not stream:
        raise ForgetbenchError(f"stream.tasks={list(cfg.stream.tasks)} leaves no task to train on; name at least one")
    return stream
