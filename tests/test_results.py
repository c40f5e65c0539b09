"""The results table: the row is the schema, stream rows name their stream task, old tables still read."""

from __future__ import annotations

from dataclasses import asdict, fields

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from forgetbench.results import (
    GENERAL,
    ITEM_SCHEMA,
    SCHEMA,
    STREAM,
    ResultRow,
    RunFacts,
    RunTable,
    read_results,
)

FACTS = RunFacts("r", "e", "m", 10, "decoder", "full", 0, "abc")


def _row(step: int, eval_task: str, stream_task: str = "", value: float = 0.5) -> ResultRow:
    return ResultRow.of(
        FACTS,
        step=step,
        trained_task="" if step == 0 else "translate",
        eval_kind=STREAM if stream_task else GENERAL,
        eval_task=eval_task,
        stream_task=stream_task,
        eval_category=STREAM if stream_task else "knowledge",
        metric="acc",
        value=value,
        stderr=0.1,
        n=12,
        wall_time=1.0,
    )


def test_the_row_is_the_schema() -> None:
    names = [f.name for f in fields(ResultRow)]
    assert sorted(names) == sorted(SCHEMA.names) and len(names) == len(SCHEMA.names)


def test_a_row_missing_a_field_is_refused() -> None:
    with pytest.raises(TypeError):
        ResultRow.of(FACTS, step=0)


def test_stream_task_is_written(tmp_path) -> None:
    table = RunTable(tmp_path)
    no_items = ITEM_SCHEMA.empty_table().to_pandas().drop(columns="step")
    table.append_step([_row(0, "knowledge"), _row(0, "stream_translate", "translate")], no_items, 0)
    rows = read_results(tmp_path).set_index("eval_task")
    assert rows.loc["stream_translate", "stream_task"] == "translate"
    assert rows.loc["knowledge", "stream_task"] == ""


def test_a_table_written_before_the_column_derives_it(tmp_path) -> None:
    """A fixture table in the schema before stream_task existed (stream rows named stream_<task>)."""
    old_schema = pa.schema([f for f in SCHEMA if f.name != "stream_task"])
    rows = pd.DataFrame([asdict(_row(1, "tiny_world_knowledge")), asdict(_row(1, "stream_count", "count"))])
    old = pa.Table.from_pandas(rows[old_schema.names], schema=old_schema, preserve_index=False)
    pq.write_table(old, tmp_path / "results.parquet")
    read = read_results(tmp_path).set_index("eval_task")
    assert read.loc["stream_count", "stream_task"] == "count"
    assert read.loc["tiny_world_knowledge", "stream_task"] == ""
    assert set(read.reset_index().columns) == set(SCHEMA.names)
