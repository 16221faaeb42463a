"""Uncertainty of the summary figures: bootstrap confidence intervals over users, and paired
tests between two explainers on the same users (docs/method.md §6).

Every figure of the summary is a statistic (mean or median) of one value per user, NaN where
the value is undefined for that user (a size for a user without explanation, say). Its
bootstrap resamples users with replacement, recomputes the statistic over the defined values
of the resample, and takes the percentile interval.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

Statistic = Literal["mean", "median"]

#: resamples of the bootstrap
N_BOOT = 1000
#: coverage of the intervals
LEVEL = 0.95


def statistic(values: np.ndarray, kind: Statistic = "mean") -> float:
    """The mean or median of the defined (non-NaN) values.

    Args:
        values: one value per user, NaN where undefined.
        kind: ``"mean"`` or ``"median"``.

    Returns:
        The statistic, NaN when no value is defined.
    """
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return math.nan
    return float(defined.mean() if kind == "mean" else np.median(defined))


def resample_indices(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Bootstrap resamples of ``n`` users: ``n_boot`` rows of ``n`` indices drawn with
    replacement, from ``numpy.random.default_rng(seed)``.

    Args:
        n: the number of users.
        n_boot: the number of resamples.
        seed: the seed.

    Returns:
        An int64 array ``(n_boot, n)``.
    """
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n), dtype=np.int64)


def bootstrap_cis(
    columns: Mapping[str, tuple[np.ndarray, Statistic]],
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of several figures over the same users, all from the
    same resamples (so that they stay comparable).

    Args:
        columns: figure name -> (one value per user, NaN where undefined; the statistic).
            Every array has the same length (the users, in one order).
        n_boot: the number of resamples (0: no intervals, NaN).
        seed: the resamples' seed.
        level: the coverage.

    Returns:
        Figure name -> (low, high): the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles
        of the figure over the resamples (resamples where it is undefined are skipped); NaN
        when it is undefined in all of them.
    """
    names = list(columns)
    nan = (math.nan, math.nan)
    if not names:
        return {}
    n = len(columns[names[0]][0])
    if n == 0 or n_boot <= 0:
        return dict.fromkeys(names, nan)
    idx = resample_indices(n, n_boot, seed)
    flat = (idx + (np.arange(n_boot) * n)[:, None]).ravel()
    counts = np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)
    quantiles = [50 * (1 - level), 50 * (1 + level)]
    out: dict[str, tuple[float, float]] = {}
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        means = [m for m in names if columns[m][1] == "mean"]
        if means:
            values = np.column_stack([np.asarray(columns[m][0], dtype=np.float64) for m in means])
            defined = ~np.isnan(values)
            sums = counts @ np.where(defined, values, 0.0)
            stats = sums / (counts @ defined.astype(np.float64))  # NaN where 0 / 0
            lows, highs = np.nanpercentile(stats, quantiles, axis=0)
            out.update(
                (m, (float(lo), float(hi))) for m, lo, hi in zip(means, lows, highs, strict=True)
            )
        for m in names:
            if columns[m][1] == "median":
                stats = np.nanmedian(np.asarray(columns[m][0], dtype=np.float64)[idx], axis=1)
                lo, hi = np.nanpercentile(stats, quantiles)
                out[m] = (float(lo), float(hi))
    return {m: out[m] for m in names}


def bootstrap_ci(
    values: np.ndarray,
    kind: Statistic = "mean",
    n_boot: int = N_BOOT,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[float, float]:
    """The percentile bootstrap interval of one figure (see :func:`bootstrap_cis`).

    Args:
        values: one value per user, NaN where undefined.
        kind: the statistic.
        n_boot: the number of resamples.
        seed: the seed.
        level: the coverage.

    Returns:
        (low, high).
    """
    return bootstrap_cis({"x": (np.asarray(values), kind)}, n_boot, seed, level)["x"]


@dataclass(frozen=True)
class PairedTest:
    """A paired two-sided test.

    Attributes:
        n: the pairs used (for McNemar: all pairs; for Wilcoxon: pairs with a nonzero
            difference).
        statistic: McNemar: the smaller discordant count; Wilcoxon: the smaller of the
            positive and negative rank sums.
        p_value: the two-sided p-value (NaN without pairs).
    """

    n: int
    statistic: float
    p_value: float


def mcnemar_exact(first: np.ndarray, second: np.ndarray) -> PairedTest:
    """McNemar's exact test of paired successes (e.g. two explainers' validity per user).

    With ``b`` the pairs where only ``first`` succeeds and ``c`` those where only ``second``
    does, the p-value is ``min(1, 2 P(X <= min(b, c)))`` for ``X ~ Binomial(b + c, 1/2)``
    (1 when ``b + c = 0``).

    Args:
        first: the first member's outcomes (bool), one per pair.
        second: the second member's outcomes, in the same order.

    Returns:
        The :class:`PairedTest` (``n`` = pairs).
    """
    from scipy.stats import binom

    first, second = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    b = int(np.count_nonzero(first & ~second))
    c = int(np.count_nonzero(~first & second))
    if first.size == 0:
        return PairedTest(0, math.nan, math.nan)
    p = 1.0 if b + c == 0 else min(1.0, 2.0 * float(binom.cdf(min(b, c), b + c, 0.5)))
    return PairedTest(int(first.size), float(min(b, c)), p)


def wilcoxon_signed_rank(first: np.ndarray, second: np.ndarray) -> PairedTest:
    """Wilcoxon's signed-rank test of paired values (e.g. two explainers' sizes per user).

    Zero differences are dropped (Wilcoxon's convention); ``scipy.stats.wilcoxon`` then gives
    the two-sided p-value, exact for up to 50 pairs without tied differences, else from the
    normal approximation. All differences zero: p = 1.

    Args:
        first: the first member's values, one per pair.
        second: the second member's values, in the same order.

    Returns:
        The :class:`PairedTest` (``n`` = pairs with a nonzero difference).
    """
    from scipy.stats import wilcoxon

    diff = np.asarray(first, dtype=np.float64) - np.asarray(second, dtype=np.float64)
    if diff.size == 0:
        return PairedTest(0, math.nan, math.nan)
    diff = diff[diff != 0]
    if diff.size == 0:
        return PairedTest(0, 0.0, 1.0)
    with warnings.catch_warnings():  # small samples, ties: scipy says which method it used
        warnings.simplefilter("ignore")
        result = wilcoxon(diff)
    return PairedTest(int(diff.size), float(result.statistic), float(result.pvalue))
