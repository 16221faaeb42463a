"""The summary of an evaluation as markdown tables, each figure with its 95% bootstrap interval.

The figures are computed by :func:`recausal.evaluate.measures.summarize`; this module only
lays them out: the main measures, the deletion curve, the perturbation curves (LXR), the
counterfactual measures (CFExpRec), the paired tests, the agreement with the exhaustive
optimum and the errors.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from recausal.evaluate.measures import KS, REFERENCE, TESTS

_HEADERS = {
    "users": "users",
    "valid_share": "valid",
    "size_mean": "size mean",
    "size_median": "size median",
    "size_1_share": "size 1",
    "replacement_rank_mean": "repl. rank",
    "replacement_outside_share": "repl. outside top-k",
    "replacement_inside_share": "repl. inside top-k (all users)",
    "model_calls_mean": "model calls",
    "seconds_mean": "s/user",
    "graph_nodes_mean": "graph nodes",
    "graph_edges_mean": "graph edges",
    "optimum_size_share": "optimal size",
    "optimum_set_share": "optimal set",
}
_CURVE_HEADERS = {
    **{f"pos_auc_{k}": f"POS@{k} ↓" for k in KS},
    **{f"neg_auc_{k}": f"NEG@{k} ↑" for k in KS},
    "del_auc": "DEL ↓",
    "ins_auc": "INS ↑",
}
_CF_HEADERS = {
    "pn_s_item": "PN_S@k item ↑",
    "pn_s_list": "PN_S@k list ↑",
    "pn_r": "PN_R@k ↑",
    "valid_share": "valid ↑",
    "size_mean": "size ↓",
    "replacement_rank_mean": "repl. rank",
}
_PERCENT = {
    "valid_share",
    "size_1_share",
    "replacement_outside_share",
    "replacement_inside_share",
    "pn_s_item",
}
_PERCENT_PREFIX = ("deletion_", "optimum_size", "optimum_set", "pos_auc_", "neg_auc_")
_COUNTS = ("users", "optimum_users", "errors")


def _fmt_one(col: str, value: Any) -> str:
    if col in _PERCENT or col.startswith(_PERCENT_PREFIX):
        return f"{100 * value:.1f}%"
    if col in _COUNTS:
        return str(int(value))
    if col == "seconds_mean":
        return f"{value:.4f}"
    if col.startswith("p_vs_"):
        return f"{value:.3g}"
    if col in ("del_auc", "ins_auc", "pn_s_list", "pn_r"):
        return f"{value:.3f}"
    return f"{value:.2f}"


def _fmt(col: str, rec: pd.Series) -> str:
    """A cell: the value, then its 95% interval when the summary has one."""
    value = rec[col]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = _fmt_one(col, value)
    lo, hi = rec.get(f"{col}_ci_low"), rec.get(f"{col}_ci_high")
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        text += f" [{_fmt_one(col, lo).rstrip('%')}, {_fmt_one(col, hi).rstrip('%')}]"
    return text


def _table(frame: pd.DataFrame, columns: list[str], headers: list[str]) -> str:
    lines = [
        "| explainer | " + " | ".join(headers) + " |",
        "|---|" + "---:|" * len(headers),
    ]
    for name, rec in frame.iterrows():
        lines.append(f"| {name} | " + " | ".join(_fmt(c, rec) for c in columns) + " |")
    return "\n".join(lines)


def summary_markdown(summary: pd.DataFrame, reference: str = REFERENCE) -> str:
    """The summary as markdown tables, each figure with its 95% bootstrap interval.

    Args:
        summary: the output of :func:`summarize`.
        reference: the explainer of its paired tests.

    Returns:
        The main measures, the deletion curve, the perturbation curves (LXR), the
        counterfactual measures (CFExpRec), the paired tests against ``reference``, the
        agreement with the exhaustive optimum (when it was computed), the errors.
    """
    main = [
        c
        for c in _HEADERS
        if c in summary.columns and c not in ("optimum_size_share", "optimum_set_share")
    ]
    if summary["graph_nodes_mean"].isna().all():
        main = [c for c in main if not c.startswith("graph_")]
    parts = [_table(summary, main, [_HEADERS[c] for c in main])]
    dels = [c for c in summary.columns if c.startswith("deletion_") and "_ci_" not in c]
    if dels:
        parts.append(
            "Deletion curve: share of users whose item is explained once the top-m ranked "
            "items are removed.\n\n" + _table(summary, dels, [f"m={c.split('_')[1]}" for c in dels])
        )
    curves = [c for c in _CURVE_HEADERS if c in summary.columns]
    if curves and not summary[curves].isna().all().all():
        parts.append(
            "Perturbation curves (LXR): area under each curve, the mean over 10 steps that "
            "remove the top (POS, DEL), the bottom (NEG) or all but the top (INS) 10%, 20%, "
            "... of the ranked window. POS@k / NEG@k: share of users whose item stays in the "
            "top-k; DEL / INS: its probability.\n\n"
            + _table(summary, curves, [_CURVE_HEADERS[c] for c in curves])
        )
    cfs = [c for c in _CF_HEADERS if c in summary.columns]
    if "pn_s_item" in summary.columns and not summary["pn_s_item"].isna().all():
        parts.append(
            "Counterfactual measures (CFExpRec), once the explanation set is removed (no set: "
            "nothing removed): PN_S item = the item leaves the top-k; PN_S list = share of "
            "the top-k replaced; PN_R = that share, DCG-weighted by the newcomers' ranks.\n\n"
            + _table(summary, cfs, [_CF_HEADERS[c] for c in cfs])
        )
    ps = [f"p_vs_{reference}_{m}" for m, _ in TESTS if f"p_vs_{reference}_{m}" in summary]
    others = summary[summary.index != reference]
    if ps and len(others):
        names = {
            **_CURVE_HEADERS,
            "valid": "valid (McNemar)",
            "size": "size",
            "replacement_inside": "repl. inside top-k (McNemar)",
        }
        headers = [names[m].rstrip(" ↑↓") for m, _ in TESTS if f"p_vs_{reference}_{m}" in ps]
        parts.append(
            f"Paired tests against `{reference}`: two-sided p-values over the users both "
            "explained (McNemar exact for validity and replacement inside the top-k, Wilcoxon "
            "signed-rank for sizes and AUCs).\n\n" + _table(others, ps, headers)
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


__all__ = ["summary_markdown"]
