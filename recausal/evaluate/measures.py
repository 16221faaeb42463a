"""Summary measures of an evaluation's rows, per explainer (docs/method.md, "Evaluation measures").

Rows with an ``error`` are left out of every measure (their count is reported). Definitions:

- ``valid_share``: share of users with an explanation up to ``max_size``.
- ``size_mean``, ``size_median``, ``size_1_share``: over valid rows.
- ``replacement_rank_mean``: mean 1-based rank of the replacement (the new top-1) in the original
  top-k, over valid rows whose replacement is in the top-k; ``replacement_outside_share``: share
  of valid rows whose replacement is not in it.
- ``model_calls_mean``, ``histories_scored_mean``, ``seconds_mean``: per user.
- ``graph_nodes_mean``, ``graph_edges_mean``: over rows that have a graph (the causal explainer).
- ``optimum_users``: users whose ``exhaustive`` row found an explanation (the optimum);
  ``optimum_size_share``: share of them where this explainer's size equals the optimum size;
  ``optimum_set_share``: share where its set is one of the optimal sets.
- ``deletion_m`` (m = 1..5): share of users whose top-1 changed after removing the explainer's
  top-m ranked items (over users whose ranking has at least m items).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

EXHAUSTIVE = "exhaustive"


def _mean(values: Any) -> float:
    arr = np.asarray([float(v) for v in values if v is not None and not pd.isna(v)], dtype=float)
    return float(arr.mean()) if arr.size else math.nan


def _median(values: Any) -> float:
    arr = np.asarray([float(v) for v in values if v is not None and not pd.isna(v)], dtype=float)
    return float(np.median(arr)) if arr.size else math.nan


def _share(flags: Any) -> float:
    flags = [bool(f) for f in flags if f is not None and not (isinstance(f, float) and f != f)]
    return float(np.mean(flags)) if flags else math.nan


def deletion_curve(rows: pd.DataFrame, deletion_max: int | None = None) -> pd.DataFrame:
    """Share of users whose top-1 changed after removing the top-m ranked items: one row per
    explainer (in order of appearance), one column per m (``1..deletion_max``)."""
    ok = rows[rows["error"].isna()]
    if deletion_max is None:
        lengths = [len(d) for d in ok["deletion"] if d is not None]
        deletion_max = max(lengths, default=0)
    out = {}
    for name, group in ok.groupby("explainer", sort=False):
        out[name] = [
            _share(d[m] if d is not None and m < len(d) else None for d in group["deletion"])
            for m in range(deletion_max)
        ]
    return pd.DataFrame.from_dict(
        out, orient="index", columns=list(range(1, deletion_max + 1))
    ).rename_axis("explainer")


def _optimum(rows: pd.DataFrame) -> dict[str, tuple[int, list[tuple[int, ...]]]]:
    """User → (optimum size, optimal sets) from valid exhaustive rows."""
    ex = rows[(rows["explainer"] == EXHAUSTIVE) & rows["valid"] & rows["error"].isna()]
    return {
        str(u): (int(size), [tuple(s) for s in sets])
        for u, size, sets in zip(ex["user"], ex["size"], ex["sets"], strict=True)
    }


def summarize(rows: pd.DataFrame) -> pd.DataFrame:
    """The summary table: one row per explainer (in order of appearance), the measures in the
    module docstring as columns."""
    optimum = _optimum(rows)
    deletion = deletion_curve(rows)
    records = []
    for name, group in rows.groupby("explainer", sort=False):
        ok = group[group["error"].isna()]
        valid = ok[ok["valid"]]
        ranks = valid["replacement_rank"]
        compared = [
            (size, list(s), optimum[u])
            for u, size, s in zip(ok["user"], ok["size"], ok["set_positions"], strict=True)
            if u in optimum
        ]
        rec: dict[str, Any] = {
            "explainer": name,
            "users": len(ok),
            "errors": len(group) - len(ok),
            "valid_share": _share(ok["valid"]),
            "size_mean": _mean(valid["size"]),
            "size_median": _median(valid["size"]),
            "size_1_share": _share(valid["size"] == 1) if len(valid) else math.nan,
            "replacement_rank_mean": _mean(ranks),
            "replacement_outside_share": _share(ranks.isna()) if len(valid) else math.nan,
            "model_calls_mean": _mean(ok["model_calls"]),
            "histories_scored_mean": _mean(ok["histories_scored"]),
            "seconds_mean": _mean(ok["seconds"]),
            "graph_nodes_mean": _mean(ok["graph_nodes"]),
            "graph_edges_mean": _mean(ok["graph_edges"]),
            "optimum_users": len(compared),
            "optimum_size_share": _share(
                not pd.isna(size) and int(size) == opt[0] for size, _, opt in compared
            ),
            "optimum_set_share": _share(bool(s) and tuple(s) in opt[1] for _, s, opt in compared),
        }
        for m in deletion.columns:
            rec[f"deletion_{m}"] = (
                float(deletion.loc[name, m]) if name in deletion.index else math.nan
            )
        records.append(rec)
    return pd.DataFrame.from_records(records).set_index("explainer")


_HEADERS = {
    "users": "users",
    "valid_share": "valid",
    "size_mean": "size mean",
    "size_median": "size median",
    "size_1_share": "size 1",
    "replacement_rank_mean": "repl. rank",
    "replacement_outside_share": "repl. outside top-k",
    "model_calls_mean": "model calls",
    "seconds_mean": "s/user",
    "graph_nodes_mean": "graph nodes",
    "graph_edges_mean": "graph edges",
    "optimum_size_share": "optimal size",
    "optimum_set_share": "optimal set",
}
_PERCENT = {"valid_share", "size_1_share", "replacement_outside_share"}
_PERCENT_PREFIX = ("deletion_", "optimum_size", "optimum_set")


def _fmt(col: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if col in _PERCENT or col.startswith(_PERCENT_PREFIX):
        return f"{100 * value:.1f}%"
    if col in ("users", "optimum_users", "errors"):
        return str(int(value))
    if col == "seconds_mean":
        return f"{value:.4f}"
    return f"{value:.2f}"


def _table(frame: pd.DataFrame, columns: list[str], headers: list[str]) -> str:
    lines = [
        "| explainer | " + " | ".join(headers) + " |",
        "|---|" + "---:|" * len(headers),
    ]
    for name, rec in frame.iterrows():
        lines.append(f"| {name} | " + " | ".join(_fmt(c, rec[c]) for c in columns) + " |")
    return "\n".join(lines)


def summary_markdown(summary: pd.DataFrame) -> str:
    """The summary as markdown tables: the main measures, then the deletion curve, then the
    agreement with the exhaustive optimum (when it was computed)."""
    main = [
        c
        for c in _HEADERS
        if c in summary.columns and c not in ("optimum_size_share", "optimum_set_share")
    ]
    if summary["graph_nodes_mean"].isna().all():
        main = [c for c in main if not c.startswith("graph_")]
    parts = [_table(summary, main, [_HEADERS[c] for c in main])]
    dels = [c for c in summary.columns if c.startswith("deletion_")]
    if dels:
        parts.append(
            "Deletion curve: share of users whose top-1 changed after removing the top-m "
            "ranked items.\n\n" + _table(summary, dels, [f"m={c.split('_')[1]}" for c in dels])
        )
    if (summary["optimum_users"] > 0).any():
        cols = ["optimum_users", "optimum_size_share", "optimum_set_share"]
        parts.append(
            "Agreement with the exhaustive optimum (users where exhaustive search found one).\n\n"
            + _table(summary, cols, ["users", "optimal size", "optimal set"])
        )
    if (summary["errors"] > 0).any():
        parts.append(
            "Errors (rows left out of the measures): "
            + ", ".join(f"{n}: {int(e)}" for n, e in summary["errors"].items() if e)
        )
    return "\n\n".join(parts) + "\n"
