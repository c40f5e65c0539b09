"""Row templates: Jinja over a row's columns, with helpers for wide tables.

A template sees each column as a variable (``{{ question }}``), the whole row as ``row`` (for
column names that are not identifiers: ``{{ row["pack_card_Lightning Bolt"] }}``) and these helpers:

- ``nonzero(pattern)``: the columns whose name matches the glob ``pattern`` and whose value is
  non-zero (and not empty), in column order; with one ``*`` in the pattern, the part it matched
  (``nonzero("pack_card_*")`` is the names of the cards in the pack). A count of ``n`` lists the
  name ``n`` times when ``repeat=true`` (``nonzero("pool_*", repeat=true)``: every copy picked).

Rendering is sandboxed and strict: a variable the row does not have is an error that names it.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from forgetbench.errors import ForgetbenchError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False)
HELPERS = ("row", "nonzero")


class RowError(ForgetbenchError):
    """A row a template cannot render; ``column`` names the column (or variable) at fault."""

    def __init__(self, column: str, problem: str) -> None:
        super().__init__(problem)
        self.column, self.problem = column, problem


def is_empty(value) -> bool:
    """None, NaN or a blank string: a cell with nothing in it."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def nonzero(row: Mapping, pattern: str, repeat: bool = False) -> list[str]:
    """The names of ``row``'s columns matching ``pattern`` whose value is non-zero (see the module doc)."""
    star = pattern.count("*") == 1
    prefix, _, suffix = pattern.partition("*")
    names = []
    for column, value in row.items():
        if not fnmatch.fnmatchcase(column, pattern) or is_empty(value) or not value:
            continue
        name = column[len(prefix) : len(column) - len(suffix)] if star else column
        copies = int(value) if repeat and isinstance(value, int | float) and not isinstance(value, bool) else 1
        names += [name] * max(copies, 1)
    return names


class RowTemplate:
    """One compiled template; ``what`` names it in errors (e.g. "task 'picks' prompt")."""

    def __init__(self, source: str, what: str) -> None:
        try:
            parsed = _ENV.parse(source)
            self._template = _ENV.from_string(parsed)
        except TemplateSyntaxError as err:
            raise ForgetbenchError(f"{what} template is not valid Jinja: {err.message} (line {err.lineno})") from err
        self.source = source
        self.what = what
        self.variables = sorted(
            meta.find_undeclared_variables(parsed) - set(HELPERS) - set(_ENV.globals)
        )  # range, dict, ...

    def render(self, row: Mapping) -> str:
        """The template over ``row``; :class:`RowError` for a missing or empty variable."""
        for name in self.variables:
            if name not in row:
                raise RowError(name, f"has no column {name!r}, which the {self.what} template uses")
            if is_empty(row[name]) and not isinstance(row[name], str):
                raise RowError(name, f"has no value in column {name!r}, which the {self.what} template uses")
        try:
            return self._template.render(
                **{k: v for k, v in row.items() if k.isidentifier()},
                row=row,
                nonzero=lambda pattern, repeat=False: nonzero(row, pattern, repeat),
            ).strip()
        except UndefinedError as err:
            name = re.search(r"'([^']+)' is undefined|has no attribute '([^']+)'", str(err))
            column = next((g for g in name.groups() if g), "?") if name else "?"
            raise RowError(column, f"has no column {column!r}, which the {self.what} template uses") from err
        except Exception as err:  # a filter or helper failing on this row's values
            raise RowError(
                "?", f"cannot be rendered by the {self.what} template ({type(err).__name__}: {err})"
            ) from err
