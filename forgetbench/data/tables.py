"""Reading users' table files (CSV, gzipped CSV, JSON/JSONL, parquet, or a glob of them) through ``datasets``.

Each file is read on its own, so a bad row can be named by its file and its row number there
(rows count from 1, a CSV's header line not counted).
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset, load_dataset

from forgetbench.errors import ForgetbenchError

# file suffix -> datasets' builder (a ".gz" after any of them is read through the same builder)
BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass
class TableFile:
    """The rows of one file, and the file they came from."""

    path: Path
    rows: Dataset


def builder_of(path: Path) -> str:
    """The ``datasets`` builder that reads ``path``, from its suffix (``.csv.gz`` reads as CSV)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if not suffixes or suffixes[-1] not in BUILDERS:
        raise ForgetbenchError(
            f"{str(path)!r} has no readable suffix; give a file ending in one of "
            f"{sorted(BUILDERS)} (each also gzipped, .gz)"
        )
    return BUILDERS[suffixes[-1]]


def matching_files(pattern: str, base: Path | None = None) -> list[Path]:
    """The files ``pattern`` (a path or a glob, relative to ``base``) names, sorted, or a one-line error."""
    full = Path(pattern).expanduser()
    if not full.is_absolute() and base is not None:
        full = base / full
    paths = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
    if not paths:
        raise ForgetbenchError(f"{pattern!r} matches no file (looked for {str(full)!r})")
    return paths


def read_table(path: Path, limit: int | None = None) -> TableFile:
    """The rows of one file (the first ``limit`` of them when given), or a one-line error naming it."""
    builder = builder_of(path)
    kwargs = {"delimiter": "\t"} if ".tsv" in [s.lower() for s in path.suffixes] else {}
    if path.stat().st_size == 0:
        raise ForgetbenchError(f"{str(path)!r} is empty")
    try:
        split = "train" if limit is None else f"train[:{limit}]"
        rows = load_dataset(builder, data_files=str(path), split=split, **kwargs)
    except Exception as err:  # datasets wraps parser errors (pandas, pyarrow, json) in several types
        cause = str(err.__cause__ or err).strip().splitlines()
        raise ForgetbenchError(
            f"{str(path)!r} is not readable as {builder} ({type(err).__name__}: {cause[0] if cause else ''})"
        ) from err
    if len(rows) == 0:
        raise ForgetbenchError(f"{str(path)!r} has no rows")
    return TableFile(path, rows)


def read_tables(pattern: str, base: Path | None = None, limit: int | None = None) -> list[TableFile]:
    """Every file ``pattern`` matches, read; ``limit`` caps the rows over all of them, in file order."""
    tables = []
    for path in matching_files(pattern, base):
        left = None if limit is None else limit - sum(len(t.rows) for t in tables)
        if left == 0:
            break
        tables.append(read_table(path, left))
    return tables
