"""Forgetting metrics against hand computations on a hand-made table."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from forgetbench.metrics import forgetting_table, learning_table, luo_forgetting, score_matrix


def _rows(scores: dict[str, list[float]], kind: str = "general") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"step": step, "eval_task": task, "eval_kind": kind, "metric": "acc", "value": value}
            for task, values in scores.items()
            for step, value in enumerate(values)
        ]
    )


def test_luo_forgetting_by_hand() -> None:
    # R0 = 0.8; drops 0.1, 0.2, 0.4 -> relative 0.125, 0.25, 0.5 -> mean 0.291666.. -> 29.1666..%
    assert luo_forgetting(pd.Series([0.8, 0.7, 0.6, 0.4])) == pytest.approx(29.1666667)


def test_forgetting_table_by_hand() -> None:
    rows = pd.concat(
        [
            _rows({"knowledge": [0.8, 0.7, 0.6, 0.4], "reading": [0.5, 0.55, 0.5, 0.45]}),
            _rows({"stream_a": [0.2, 0.9, 0.5, 0.3]}, kind="stream"),
        ]
    )
    table = forgetting_table(rows)
    assert list(table.index) == ["knowledge", "reading"]  # stream tasks are not general ability
    k, r = table.loc["knowledge"], table.loc["reading"]
    assert (k.start, k.final, k["drop"]) == pytest.approx((0.8, 0.4, 0.4))
    assert k.drop_pct == pytest.approx(50.0)
    assert k.fg == pytest.approx(29.1666667)
    # reading: relative drops -0.1, 0, 0.1 -> mean 0 -> FG 0; final drop 0.05 = 10%
    assert r.fg == pytest.approx(0.0, abs=1e-9)
    assert r.drop_pct == pytest.approx(10.0)


def test_score_matrix_pivots_one_run() -> None:
    matrix = score_matrix(_rows({"a": [0.1, 0.2], "b": [0.3, 0.4]}))
    assert matrix.loc[1, "b"] == pytest.approx(0.4)
    assert list(matrix.index) == [0, 1]


def test_zero_start_gives_nan_not_a_crash() -> None:
    assert math.isnan(luo_forgetting(pd.Series([0.0, 0.1])))


def test_learning_table_by_hand() -> None:
    """Each stream task's start, its score right after its own step, final, gain and chance level."""
    rows = _rows({"stream_a": [0.2, 0.9, 0.5], "stream_b": [0.1, 0.3, 0.8]}, kind="stream")
    rows["stream_task"] = rows["eval_task"].str.removeprefix("stream_")
    rows["trained_task"] = rows["step"].map({0: "", 1: "a", 2: "b"})
    chance = rows[rows["eval_task"] == "stream_b"].assign(metric="chance", value=0.25)
    table = learning_table(pd.concat([rows, chance]))
    a, b = table.loc["stream_a"], table.loc["stream_b"]
    assert (a.start, a.learned, a.final, a.gain) == pytest.approx((0.2, 0.9, 0.5, 0.3))
    assert (b.start, b.learned, b.final, b.gain) == pytest.approx((0.1, 0.8, 0.8, 0.7))
    assert math.isnan(a.chance) and b.chance == pytest.approx(0.25)
    assert set(table["metric"]) == {"acc"}
