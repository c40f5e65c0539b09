"""Checking a config class's fields against their annotations, before anything is built or written.

A field's type and range are written in its annotation (``steps: Positive``, ``lr: PositiveFloat``,
``schedule: Literal["constant", "cosine"]``) and checked by pydantic's ``TypeAdapter`` in strict mode
(an int is not a bool, "5" is not an int). The config classes stay plain dataclasses: Hydra builds
them, methods keep tensors in them, and each calls :func:`check_fields` in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le, Lt
from omegaconf import OmegaConf
from pydantic import TypeAdapter, ValidationError
from pydantic.errors import PydanticSchemaGenerationError

from forgetbench.errors import ForgetbenchError

# A config field that changes no result (when to checkpoint, how the fast engine batches) says so beside
# itself: ``field(default=..., metadata=UNHASHED)``; the config hash leaves it out (assembly.config_hash).
UNHASHED = {"hashed": False}
# A field added after runs were made, whose default changes none of their results (an extra evaluation
# inside a task, off by default), is hashed only when set: runs made before it keep their hash, and resume.
HASHED_WHEN_SET = {"hashed": "when set"}


def unhashed_fields(cls: type) -> set[str]:
    """The fields of dataclass ``cls`` declared with ``metadata=UNHASHED``."""
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("hashed") is False}


def hashed_when_set(cls: type) -> dict[str, Any]:
    """The fields of dataclass ``cls`` declared with ``metadata=HASHED_WHEN_SET``, with their defaults."""
    found = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("hashed") == "when set":
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            if dataclasses.is_dataclass(default):  # a nested node, as its YAML writes it: with its _target_
                target = f"{type(default).__module__}.{type(default).__qualname__}"
                default = {"_target_": target, **dataclasses.asdict(default)}
            found[f.name] = default
    return found


Positive = Annotated[int, Ge(1)]  # sizes, steps, counts
NonNegative = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]  # learning rates, strengths
NonNegativeFloat = Annotated[float, Ge(0)]
Fraction = Annotated[float, Ge(0), Le(1)]  # a share of something, both ends allowed
Probability = Annotated[float, Ge(0), Lt(1)]  # dropout: 1 would drop everything
# a run's seed: numpy takes seeds below 2**32, and step k of a run seeds its batches with seed * 1000 + k
Seed = Annotated[int, Ge(0), Le(4_000_000)]


class InvalidValue(ForgetbenchError):
    """A config field holds a value its annotation does not allow."""

    def __init__(self, name: str, value: Any, rule: str) -> None:
        super().__init__(f"{name}={value!r} is not valid: {rule}")
        self.name, self.value, self.rule = name, value, rule

    def within(self, group: str) -> InvalidValue:
        """The same error with the field named from the config's root (``train.lr``)."""
        return InvalidValue(f"{group}.{self.name}", self.value, self.rule)


@functools.cache
def _adapters(cls: type) -> dict[str, TypeAdapter]:
    hints = typing.get_type_hints(cls, include_extras=True)
    adapters = {}
    for field in dataclasses.fields(cls):
        if not field.init:
            continue
        try:
            adapters[field.name] = TypeAdapter(hints[field.name])
        except PydanticSchemaGenerationError:  # a runtime object (a Dataset), not a config value
            continue
    return adapters


def check_fields(obj: Any) -> None:
    """Raise :class:`InvalidValue` for the first field of the dataclass ``obj`` its annotation rejects."""
    for name, adapter in _adapters(type(obj)).items():
        value = getattr(obj, name)
        if OmegaConf.is_config(value):  # a ListConfig or DictConfig handed over as it is (no _convert_)
            value = OmegaConf.to_container(value, resolve=True)
        _check(adapter, name, value)


def check_value(name: str, value: Any, hint: Any) -> None:
    """:func:`check_fields` for one value outside a config class (a top-level key such as ``seed``)."""
    _check(TypeAdapter(hint), name, value)


def _check(adapter: TypeAdapter, name: str, value: Any) -> None:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as err:
        rule = err.errors()[0]["msg"]
        raise InvalidValue(name, value, rule[0].lower() + rule[1:]) from None
