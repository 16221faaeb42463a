"""The rows of an evaluation: one per (user, explainer), their columns and their table form."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from recausal.explain import Explanation

#: Version of the rows' columns, recorded in the manifest's arguments
#: (``arguments["rows_version"]``) so that a journal whose rows have other columns is refused
#: on resume instead of misread. 1 (no version recorded): up to the deletion flags; 2: adds
#: the perturbation curves and the counterfactual measures (``pos_ranks`` ... ``pn_r``).
ROWS_VERSION = 2

#: Columns of the rows table, in order. List-valued columns hold Python lists.
COLUMNS: tuple[str, ...] = (
    "user",
    "explainer",
    "history_length",
    "history_used",
    "recommended",
    "score",
    "top_k",
    "valid",
    "size",
    "n_sets",
    "set_positions",
    "set_items",
    "sets",
    "replacement",
    "replacement_rank",
    "model_calls",
    "histories_scored",
    "seconds",
    "graph_nodes",
    "graph_edges",
    "deletion",
    "pos_ranks",
    "neg_ranks",
    "del_probs",
    "ins_probs",
    "pn_s_item",
    "pn_s_list",
    "pn_r",
    "error",
)
#: Columns that measure time and so differ between two runs of the same job.
TIMING_COLUMNS: tuple[str, ...] = ("seconds",)
#: The curves a row gets from :func:`recausal.evaluate.chunk.row_measures` (lists).
_CURVE_COLUMNS: tuple[str, ...] = ("deletion", "pos_ranks", "neg_ranks", "del_probs", "ins_probs")
#: Columns that hold lists.
LIST_COLUMNS: tuple[str, ...] = ("top_k", "set_positions", "set_items", "sets", *_CURVE_COLUMNS)
#: The columns a row gets from :func:`recausal.evaluate.chunk.row_measures`.
MEASURED_COLUMNS: tuple[str, ...] = (*_CURVE_COLUMNS, "pn_s_item", "pn_s_list", "pn_r")
#: Integer columns that can be missing (nullable integers in the table).
INT_COLUMNS: tuple[str, ...] = (
    "history_length",
    "history_used",
    "size",
    "n_sets",
    "replacement_rank",
    "model_calls",
    "histories_scored",
)


def jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """The row as it reads back from JSON.

    Args:
        row: one row.

    Returns:
        A copy with tuples as lists and numpy scalars as Python ones.
    """
    return json.loads(json.dumps(row, ensure_ascii=False))


def explanation_row(
    user: str, full_length: int, expl: Explanation, measured: dict[str, Any]
) -> dict[str, Any]:
    """The row of one explanation.

    Args:
        user: the user id.
        full_length: the length of the user's history as evaluated.
        expl: the explanation.
        measured: the columns of :data:`MEASURED_COLUMNS` (deletion flags, perturbation
            curves, counterfactual measures; see :func:`recausal.evaluate.chunk.row_measures`).

    Returns:
        The row, with the columns of :data:`COLUMNS`.
    """
    first = expl.sets[0] if expl.sets else ()
    graph = expl.graph
    return {
        "user": user,
        "explainer": expl.explainer,
        "history_length": full_length,
        "history_used": len(expl.history) - expl.window_start,
        "recommended": expl.recommended,
        "score": float(expl.score),
        "top_k": list(expl.top_k),
        "valid": bool(expl.valid),
        "size": expl.size,
        "n_sets": len(expl.sets),
        "set_positions": list(first),
        "set_items": [expl.history[p] for p in first],
        "sets": [list(s) for s in expl.sets],
        "replacement": expl.replacement,
        "replacement_rank": expl.replacement_rank,
        "model_calls": int(expl.model_calls),
        "histories_scored": int(expl.histories_scored),
        "seconds": float(expl.seconds),
        "graph_nodes": None if graph is None else int(graph.n_nodes),
        "graph_edges": None if graph is None else len(graph.edges()),
        **{col: measured[col] for col in MEASURED_COLUMNS},
        "error": None,
    }


def error_row(
    user: str, explainer: str, lengths: tuple[int, int], error: Exception
) -> dict[str, Any]:
    """The row of an explainer that failed on a user.

    Args:
        user: the user id.
        explainer: the explainer's name.
        lengths: the history's length and the number of items the model uses.
        error: what the explainer raised.

    Returns:
        The row, with ``error`` set and no explanation.
    """
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        user=user,
        explainer=explainer,
        history_length=lengths[0],
        history_used=lengths[1],
        valid=False,
        n_sets=0,
        top_k=[],
        set_positions=[],
        set_items=[],
        sets=[],
        **{col: [] for col in LIST_COLUMNS if col in MEASURED_COLUMNS},
        error=f"{type(error).__name__}: {error}",
    )
    return row


def rows_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a table with stable dtypes.

    Args:
        rows: the rows, each with the columns of :data:`COLUMNS`.

    Returns:
        A DataFrame with those columns: nullable integers where a value can be missing, NaN
        graph sizes for rows without a graph, a nullable boolean ``pn_s_item``. A column a row
        lacks (rows of an earlier version) is missing: ``None`` in list columns, NaN or NA
        elsewhere; the measures skip it.
    """
    df = pd.DataFrame.from_records(list(rows), columns=list(COLUMNS))
    for col in LIST_COLUMNS:
        df[col] = pd.Series(
            [list(v) if isinstance(v, list | tuple) else None for v in df[col]],
            index=df.index,
            dtype=object,
        )
    for col in INT_COLUMNS:
        df[col] = pd.array([None if v is None or v != v else int(v) for v in df[col]], "Int64")
    df["pn_s_item"] = pd.array(
        [None if v is None or pd.isna(v) else bool(v) for v in df["pn_s_item"]], "boolean"
    )
    for col in ("graph_nodes", "graph_edges", "score", "seconds", "pn_s_list", "pn_r"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["valid"] = df["valid"].astype(bool)
    for col in ("user", "explainer"):
        df[col] = df[col].astype(str)
    return df
