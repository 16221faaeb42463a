"""Summary measures of an evaluation's rows, per explainer (docs/method.md §6, "Evaluation
measures"), with bootstrap confidence intervals and paired tests against the causal explainer.

Rows with an ``error`` are left out of every measure (their count is reported). Each measure is
defined once, as one value per user (:func:`user_measures`, NaN where it is undefined for that
user) and a statistic over users (:data:`FIGURES`); the summary's point estimate and its
bootstrap interval (:mod:`recausal.evaluate.stats`) both come from that. The per-user values:

- ``valid``: 1 if the explainer found an explanation up to ``max_size``, else 0.
- ``size`` (valid users): the explanation's size; ``size_is_1``: size = 1.
- ``replacement_rank`` (valid users whose replacement is in the original top-k): its 1-based
  rank there; ``replacement_outside`` (valid users): the replacement is not in the top-k;
  ``replacement_inside`` (every user): the explainer found a set and its replacement is in the
  top-k (a user without an explanation counts as 0: no small change was found for them).
- ``model_calls``, ``histories_scored``, ``seconds``; ``graph_nodes``, ``graph_edges`` (users
  with a graph: the causal explainer).
- ``optimal_size`` / ``optimal_set`` (users whose ``exhaustive`` row is valid): the
  explanation's size equals the optimum size / its set is one of the optimal sets.
- ``deletion_m`` (rankings of at least m items): the item is explained (its criterion met)
  once the top-m ranked items are removed.
- ``pos_auc_k`` / ``neg_auc_k`` (k in :data:`KS`; LXR): the mean over the 10 curve steps of
  "the item is still in the top-k once the most / least important items are removed";
  ``del_auc`` / ``ins_auc``: the mean over the steps of the item's probability once the most
  important items are removed / once only they are kept.
- ``pn_s_item``, ``pn_s_list``, ``pn_r`` (CFExpRec, at the run's k): the explanation set's
  removal moves the item out of the top-k; the share of the top-k replaced; that share with
  each newcomer weighted by the DCG discount of its rank.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from recausal.evaluate.chunk import CURVE_STEPS
from recausal.evaluate.stats import (
    N_BOOT,
    Statistic,
    bootstrap_cis,
    mcnemar_exact,
    statistic,
    wilcoxon_signed_rank,
)

EXHAUSTIVE = "exhaustive"
#: the explainer the others are tested against
REFERENCE = "causal"
#: the cut-offs of POS@k and NEG@k
KS: tuple[int, ...] = (1, 5, 10, 20)
#: curve kind -> the row column it is read from
CURVES: dict[str, str] = {
    "pos": "pos_ranks",
    "neg": "neg_ranks",
    "del": "del_probs",
    "ins": "ins_probs",
}
#: the AUC figures, in order
AUCS: tuple[str, ...] = (
    *(f"pos_auc_{k}" for k in KS),
    *(f"neg_auc_{k}" for k in KS),
    "del_auc",
    "ins_auc",
)
#: the summary figures before the deletion curve: (name, per-user value, statistic)
FIGURES: tuple[tuple[str, str, Statistic], ...] = (
    ("valid_share", "valid", "mean"),
    ("size_mean", "size", "mean"),
    ("size_median", "size", "median"),
    ("size_1_share", "size_is_1", "mean"),
    ("replacement_rank_mean", "replacement_rank", "mean"),
    ("replacement_outside_share", "replacement_outside", "mean"),
    ("replacement_inside_share", "replacement_inside", "mean"),
    ("model_calls_mean", "model_calls", "mean"),
    ("histories_scored_mean", "histories_scored", "mean"),
    ("seconds_mean", "seconds", "mean"),
    ("graph_nodes_mean", "graph_nodes", "mean"),
    ("graph_edges_mean", "graph_edges", "mean"),
    ("optimum_size_share", "optimal_size", "mean"),
    ("optimum_set_share", "optimal_set", "mean"),
)
#: the figures after the deletion curve (each the mean of the per-user value of its name)
NEW_FIGURES: tuple[str, ...] = (*AUCS, "pn_s_item", "pn_s_list", "pn_r")
#: the paired tests against :data:`REFERENCE`: (per-user value, test)
TESTS: tuple[tuple[str, str], ...] = (
    ("valid", "mcnemar"),
    ("size", "wilcoxon"),
    ("replacement_inside", "mcnemar"),
    *((auc, "wilcoxon") for auc in AUCS),
)


def _as_list(value: Any) -> list[Any] | None:
    """A list cell as a list (``None`` when missing: rows of an earlier version)."""
    if isinstance(value, list | tuple | np.ndarray):
        return list(value)
    return None


def _number(value: Any) -> float:
    """A scalar cell as a float (NaN when missing)."""
    return math.nan if value is None or pd.isna(value) else float(value)


def step_values(rows: pd.DataFrame, kind: str, k: int | None = None) -> np.ndarray:
    """The per-step values of one perturbation curve, one row per row of ``rows``.

    Args:
        rows: rows (without errors).
        kind: ``"pos"``, ``"neg"`` (then ``k``): 1 if the item's rank is at most ``k``, else
            0; ``"del"``, ``"ins"``: the item's probability.
        k: the cut-off of ``pos`` and ``neg``.

    Returns:
        An array ``(len(rows), CURVE_STEPS)``, NaN for rows without the curve.
    """
    out = np.full((len(rows), CURVE_STEPS), np.nan)
    for i, cell in enumerate(rows[CURVES[kind]]):
        values = _as_list(cell)
        if values is None or len(values) != CURVE_STEPS:
            continue
        arr = np.asarray(values, dtype=np.float64)
        out[i] = (arr <= k).astype(np.float64) if kind in ("pos", "neg") else arr
    return out


def _optimum(rows: pd.DataFrame) -> dict[str, tuple[int, list[tuple[int, ...]]]]:
    """User → (optimum size, optimal sets) from valid exhaustive rows."""
    ex = rows[(rows["explainer"] == EXHAUSTIVE) & rows["valid"] & rows["error"].isna()]
    return {
        str(u): (int(size), [tuple(s) for s in sets])
        for u, size, sets in zip(ex["user"], ex["size"], ex["sets"], strict=True)
    }


def _deletion_max(ok: pd.DataFrame) -> int:
    return max((len(d) for d in map(_as_list, ok["deletion"]) if d is not None), default=0)


def user_measures(rows: pd.DataFrame, deletion_max: int | None = None) -> pd.DataFrame:
    """The per-user values of every measure: one row per row of ``rows`` without an error.

    Args:
        rows: the rows (the columns of :data:`recausal.evaluate.schema.COLUMNS`).
        deletion_max: the longest deletion curve (default: the longest in the rows).

    Returns:
        Columns ``explainer``, ``user`` and the per-user values of the module docstring,
        floats with NaN where undefined.
    """
    ok = rows[rows["error"].isna()].reset_index(drop=True)
    optimum = _optimum(rows)
    if deletion_max is None:
        deletion_max = _deletion_max(ok)
    valid = ok["valid"].astype(bool).to_numpy()
    size = np.array([_number(v) for v in ok["size"]])
    size[~valid] = np.nan
    rank = np.array([_number(v) for v in ok["replacement_rank"]])
    rank[~valid] = np.nan
    out: dict[str, Any] = {
        "explainer": ok["explainer"].astype(str).to_numpy(),
        "user": ok["user"].astype(str).to_numpy(),
        "valid": valid.astype(np.float64),
        "size": size,
        "size_is_1": np.where(valid, (size == 1).astype(np.float64), np.nan),
        "replacement_rank": rank,
        "replacement_outside": np.where(valid, np.isnan(rank).astype(np.float64), np.nan),
        "replacement_inside": (valid & ~np.isnan(rank)).astype(np.float64),
    }
    for col in ("model_calls", "histories_scored", "seconds", "graph_nodes", "graph_edges"):
        out[col] = np.array([_number(v) for v in ok[col]])
    optimal_size, optimal_set = np.full(len(ok), np.nan), np.full(len(ok), np.nan)
    for i, (user, s, first) in enumerate(zip(ok["user"], size, ok["set_positions"], strict=True)):
        if str(user) in optimum:
            best, sets = optimum[str(user)]
            optimal_size[i] = float(not np.isnan(s) and int(s) == best)
            optimal_set[i] = float(bool(first) and tuple(first) in sets)
    out["optimal_size"], out["optimal_set"] = optimal_size, optimal_set
    flags = [_as_list(d) or [] for d in ok["deletion"]]
    for m in range(deletion_max):
        out[f"deletion_{m + 1}"] = np.array(
            [float(d[m]) if m < len(d) and d[m] is not None else np.nan for d in flags]
        )
    for kind in ("pos", "neg"):
        for k in KS:
            out[f"{kind}_auc_{k}"] = step_values(ok, kind, k).mean(axis=1)
    out["del_auc"] = step_values(ok, "del").mean(axis=1)
    out["ins_auc"] = step_values(ok, "ins").mean(axis=1)
    for col in ("pn_s_item", "pn_s_list", "pn_r"):
        out[col] = np.array([_number(v) for v in ok[col]])
    return pd.DataFrame(out)


def _figures(deletion_max: int) -> list[tuple[str, str, Statistic]]:
    """Every summary figure in column order: (name, per-user value, statistic)."""
    deletion = [(f"deletion_{m}", f"deletion_{m}", "mean") for m in range(1, deletion_max + 1)]
    return [*FIGURES, *deletion, *((f, f, "mean") for f in NEW_FIGURES)]  # type: ignore[misc]


def deletion_curve(rows: pd.DataFrame, deletion_max: int | None = None) -> pd.DataFrame:
    """Share of users whose item is explained once the top-m ranked items are removed.

    Args:
        rows: the rows.
        deletion_max: the longest curve (default: the longest in the rows).

    Returns:
        One row per explainer (in order of appearance), one column per m
        (``1..deletion_max``).
    """
    values = user_measures(rows, deletion_max)
    if deletion_max is None:
        deletion_max = _deletion_max(rows[rows["error"].isna()])
    out = {
        name: [statistic(group[f"deletion_{m}"].to_numpy()) for m in range(1, deletion_max + 1)]
        for name, group in values.groupby("explainer", sort=False)
    }
    return pd.DataFrame.from_dict(
        out, orient="index", columns=list(range(1, deletion_max + 1))
    ).rename_axis("explainer")


def perturbation_curve(
    rows: pd.DataFrame, kind: str, k: int | None = None, n_boot: int = N_BOOT, seed: int = 0
) -> pd.DataFrame:
    """One perturbation curve per explainer, step by step, with bootstrap intervals.

    Args:
        rows: the rows.
        kind: ``"pos"``, ``"neg"`` (share of users whose item is in the top-``k``), ``"del"``,
            ``"ins"`` (mean probability); see :func:`step_values`.
        k: the cut-off of ``pos`` and ``neg``.
        n_boot: bootstrap resamples (0: no intervals).
        seed: the bootstrap's seed.

    Returns:
        Columns ``explainer``, ``step`` (1..10), ``value``, ``ci_low``, ``ci_high``.
    """
    ok = rows[rows["error"].isna()]
    records = []
    for name, group in ok.groupby("explainer", sort=False):
        steps = step_values(group, kind, k)
        cis = bootstrap_cis(
            {str(j): (steps[:, j], "mean") for j in range(CURVE_STEPS)}, n_boot, seed
        )
        for j in range(CURVE_STEPS):
            value = statistic(steps[:, j])
            records.append((name, j + 1, value, *cis[str(j)]))
    return pd.DataFrame.from_records(
        records, columns=["explainer", "step", "value", "ci_low", "ci_high"]
    )


_TEST_COLUMNS = ["explainer", "measure", "test", "n", "reference", "other", "statistic", "p_value"]


def paired_tests(rows: pd.DataFrame, reference: str = REFERENCE) -> pd.DataFrame:
    """Paired tests of each explainer against ``reference`` over the users both explained
    without error: McNemar's exact test for validity, Wilcoxon's signed-rank test for sizes
    (users valid for both) and the AUCs (:func:`recausal.evaluate.stats.mcnemar_exact`,
    :func:`~recausal.evaluate.stats.wilcoxon_signed_rank`).

    Args:
        rows: the rows.
        reference: the explainer tested against.

    Returns:
        One row per (other explainer, measure of :data:`TESTS`): ``n`` pairs, the means over
        them of ``reference`` and ``other``, the test's statistic and two-sided p-value. Empty
        when ``reference`` has no rows.
    """
    values = user_measures(rows)
    if reference not in set(values["explainer"]):
        return pd.DataFrame(columns=_TEST_COLUMNS)
    ref = values[values["explainer"] == reference].set_index("user")
    records = []
    for name, group in values.groupby("explainer", sort=False):
        if name == reference:
            continue
        pairs = ref.join(group.set_index("user"), how="inner", lsuffix="_ref", rsuffix="_other")
        for measure, test in TESTS:
            a = pairs[f"{measure}_ref"].to_numpy(dtype=np.float64)
            b = pairs[f"{measure}_other"].to_numpy(dtype=np.float64)
            both = ~np.isnan(a) & ~np.isnan(b)
            a, b = a[both], b[both]
            if test == "mcnemar":
                result = mcnemar_exact(a > 0.5, b > 0.5)
            else:
                result = wilcoxon_signed_rank(a, b)
            records.append(
                (
                    name,
                    measure,
                    test,
                    int(a.size),
                    statistic(a),
                    statistic(b),
                    result.statistic,
                    result.p_value,
                )
            )
    return pd.DataFrame.from_records(records, columns=_TEST_COLUMNS)


def summarize(
    rows: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0, reference: str = REFERENCE
) -> pd.DataFrame:
    """The summary table: one row per explainer (in order of appearance).

    Args:
        rows: the rows.
        n_boot: bootstrap resamples over users for the intervals (0: none, NaN).
        seed: the bootstrap's seed.
        reference: the explainer the others are tested against.

    Returns:
        Columns ``users``, ``errors``, ``optimum_users`` (counts), every figure of
        :data:`FIGURES`, ``deletion_m``, :data:`NEW_FIGURES`; then ``<figure>_ci_low`` and
        ``<figure>_ci_high`` (95% percentile bootstrap); then, when ``reference`` has rows,
        ``p_vs_<reference>_<measure>`` for each measure of :data:`TESTS` (NaN in the
        reference's own row).
    """
    deletion_max = _deletion_max(rows[rows["error"].isna()])
    figures = _figures(deletion_max)
    values = user_measures(rows, deletion_max)
    records = []
    for name, group in rows.groupby("explainer", sort=False):
        mine = values[values["explainer"] == name]
        rec: dict[str, Any] = {
            "explainer": name,
            "users": len(mine),
            "errors": len(group) - len(mine),
        }
        for figure, column, kind in figures:
            if figure == "optimum_size_share":
                rec["optimum_users"] = int(mine["optimal_size"].notna().sum())
            rec[figure] = statistic(mine[column].to_numpy(), kind)
        cis = bootstrap_cis(
            {f: (mine[c].to_numpy(dtype=np.float64), kind) for f, c, kind in figures},
            n_boot,
            seed,
        )
        for figure, _, _ in figures:
            rec[f"{figure}_ci_low"], rec[f"{figure}_ci_high"] = cis[figure]
        records.append(rec)
    summary = pd.DataFrame.from_records(records).set_index("explainer")
    tests = paired_tests(rows, reference)
    if len(tests):
        for measure, _ in TESTS:
            col = f"p_vs_{reference}_{measure}"
            found = tests[tests["measure"] == measure].set_index("explainer")["p_value"]
            summary[col] = [float(found.get(n, math.nan)) for n in summary.index]
    return summary
