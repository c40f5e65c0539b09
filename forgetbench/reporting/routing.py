"""How a router chose: routing accuracy per step and a confusion table (pure: tables in, tables out).

Each item of a routed run (``method=adapters`` with a ``route``) records the route it took: a stream
task's name (its adapter), ``base`` or ``merge``. An item of stream task j is routed right when it took
j's adapter, once j has been trained (before that no router can pick it). General items have no right
adapter; where they go is the cost a router puts on general ability, so the tables show their share
routed to the base.
"""

from __future__ import annotations

import pandas as pd

from forgetbench.results import STREAM

GENERAL_SOURCE = "(general)"  # the source of the suite's items in the confusion table
BASE_ROUTE = "base"


def _routed_items(rows: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Items of routed runs with their ``source`` (the stream task, or :data:`GENERAL_SOURCE`) and
    whether that stream task was trained by their step."""
    if "route" not in items or items.empty:
        return pd.DataFrame()
    routed = items[items["route"].fillna("") != ""]
    if routed.empty:
        return routed
    kinds = rows.drop_duplicates(["run", "eval_task"]).set_index(["run", "eval_task"])
    key = pd.MultiIndex.from_frame(routed[["run", "eval_task"]])
    stream_task = kinds["stream_task"].reindex(key).fillna("").to_numpy()
    eval_kind = kinds["eval_kind"].reindex(key).to_numpy()
    routed = routed.assign(source=[t if k == STREAM else GENERAL_SOURCE for t, k in zip(stream_task, eval_kind)])
    trained_at = rows[rows["trained_task"] != ""].drop_duplicates(["run", "trained_task"])
    first_step = {(r, t): s for r, t, s in zip(trained_at["run"], trained_at["trained_task"], trained_at["step"])}
    steps = [first_step.get((r, s)) for r, s in zip(routed["run"], routed["source"])]
    trained = [f is not None and step >= f for f, step in zip(steps, routed["step"])]
    return routed.assign(trained=trained)


def routing_accuracy(rows: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Per routed run and step after the base (rows: run, step):

    - ``routing_acc``: share of the trained stream tasks' held-out items routed to their own task's
      adapter (NaN before any task is trained);
    - ``general_to_base``: share of the general suite's items routed to the base (no adapter);
    - ``n_stream``, ``n_general``: the items counted.
    """
    routed = _routed_items(rows, items)
    if routed.empty:
        return pd.DataFrame()
    records = []
    for (run, step), group in routed[routed["step"] > 0].groupby(["run", "step"]):
        stream = group[(group["source"] != GENERAL_SOURCE) & group["trained"]]
        general = group[group["source"] == GENERAL_SOURCE]
        records.append(
            {
                "run": run,
                "step": int(step),
                "routing_acc": (stream["route"] == stream["source"]).mean() if len(stream) else float("nan"),
                "general_to_base": (general["route"] == BASE_ROUTE).mean() if len(general) else float("nan"),
                "n_stream": len(stream),
                "n_general": len(general),
            }
        )
    return pd.DataFrame(records)


def routing_confusion(rows: pd.DataFrame, items: pd.DataFrame) -> pd.DataFrame:
    """Per routed run at its last step: for each source (a stream task, or the general suite), the
    share of its items taking each route (columns: the routes seen; rows sum to 1)."""
    routed = _routed_items(rows, items)
    if routed.empty:
        return pd.DataFrame()
    last = routed[routed["step"] == routed.groupby("run")["step"].transform("max")]
    shares = pd.crosstab([last["run"], last["source"]], last["route"], normalize="index")
    shares.columns.name = None
    return shares.reset_index()
