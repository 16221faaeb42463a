"""Conditional-independence tests: attention read as a linear SEM, and Fisher z on data.

Self-attention computes ``Z = A·V``. With the values ``V`` independent exogenous noise of
unit variance, ``Cov(Z) ∝ A·Aᵀ``; normalising gives a correlation matrix over the token
positions, and conditional independence is tested with partial correlations and Fisher's z.

Every test here implements :class:`CITest`: ``independent(i, j, cond) -> bool``, plus the
vectorised ``pvalues(i, j, conds)`` that the algorithms use to decide many conditioning
sets of one size at once. Any object with ``n_nodes`` and ``independent`` works as a test.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
from scipy.special import ndtr, ndtri

from recausal._checks import is_int
from recausal.errors import InvalidInputError

__all__ = [
    "CORR_CLIP",
    "AttentionCITest",
    "CITest",
    "CorrelationCITest",
    "FisherZTest",
    "correlation_from_attention",
    "critical_correlation",
    "fisher_z_pvalues",
    "partial_correlations",
    "validate_attention",
]

CORR_CLIP = 1.0 - 1e-7
"""Partial correlations are clipped to ``[-CORR_CLIP, CORR_CLIP]`` before Fisher's z.

Degenerate attention (for example one-hot rows, or two identical rows) gives ``|r| = 1``
and an infinite z. Clipping keeps the statistic finite; with ``1 - 1e-7`` the clipped value
is far beyond any usable threshold (z ≈ 8.4·sqrt(N − |S| − 3)), so ``|r| = 1`` always reads
as *dependent*, which is also what the reference implementation decides.
"""


@runtime_checkable
class CITest(Protocol):
    """What the structure-learning algorithms need from a conditional-independence test."""

    n_nodes: int

    def independent(self, i: int, j: int, cond: Sequence[int]) -> bool:
        """Whether node ``i`` is independent of node ``j`` given the nodes ``cond``."""
        ...


# --------------------------------------------------------------------------------------------
# validation and the attention -> correlation map
# --------------------------------------------------------------------------------------------


def validate_attention(
    attention: np.ndarray, *, check_rows: bool = True, row_tol: float = 1e-3
) -> np.ndarray:
    """Check an attention array of shape ``(..., n, n)`` and return it as float64.

    Raises :class:`~recausal.errors.InvalidInputError` for: fewer than 2 dimensions, a
    non-square last pair of axes, ``n < 2``, NaN or infinite entries, negative entries, an
    all-zero row, or (when ``check_rows``) a row whose sum differs from 1 by more than
    ``row_tol``.
    """
    try:
        a = np.asarray(attention, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"attention must be a numeric array; got {attention!r}") from exc
    if a.ndim < 2:
        raise InvalidInputError(f"attention must have shape (..., n, n); got shape {a.shape}")
    if a.shape[-1] != a.shape[-2]:
        raise InvalidInputError(
            f"attention must be square in its last two axes; got shape {a.shape}"
        )
    n = a.shape[-1]
    if n < 2:
        raise InvalidInputError(f"attention needs at least 2 positions; got n={n}")
    if a.size == 0:
        raise InvalidInputError(f"attention is empty; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise InvalidInputError("attention contains NaN or infinite entries")
    if np.any(a < 0):
        raise InvalidInputError(
            f"attention must be non-negative (softmax probabilities); min entry is {a.min():.3g}"
        )
    sums = a.sum(axis=-1)
    if np.any(sums <= 0):
        idx = np.argwhere(sums <= 0)[0]
        raise InvalidInputError(f"attention has an all-zero row at index {tuple(idx)}")
    if check_rows:
        if not (row_tol >= 0):
            raise InvalidInputError(f"row_tol must be >= 0; got {row_tol!r}")
        bad = np.abs(sums - 1.0) > row_tol
        if np.any(bad):
            idx = tuple(np.argwhere(bad)[0])
            raise InvalidInputError(
                f"attention rows must sum to 1 (softmax over keys); row {idx} sums to "
                f"{sums[idx]:.6g} (tolerance row_tol={row_tol}); pass check_rows=False to skip"
            )
    return a


def correlation_from_attention(
    attention: np.ndarray,
    *,
    aggregate_heads: bool = False,
    check_rows: bool = True,
    row_tol: float = 1e-3,
) -> np.ndarray:
    """Correlation matrix ``R`` of the linear SEM ``Z = A·V`` for attention ``A``.

    ``C = A·Aᵀ`` and ``R_ij = C_ij / sqrt(C_ii·C_jj)``. ``attention`` is ``(n, n)`` or a
    batch ``(..., n, n)``; the result has the same shape.

    With ``aggregate_heads=True`` the third-from-last axis is the head axis (``(H, n, n)`` or
    ``(B, H, n, n)``) and the heads are combined by summing covariances ``Σ_h A_h·A_hᵀ``
    before normalising: the multi-head output is the concatenation of the ``A_h·V_h``, and
    with independent exogenous values per head its covariance is the sum of the per-head
    covariances. The result then has shape ``(n, n)`` or ``(B, n, n)``.
    """
    a = validate_attention(attention, check_rows=check_rows, row_tol=row_tol)
    cov = a @ np.swapaxes(a, -1, -2)
    if aggregate_heads:
        if a.ndim < 3:
            raise InvalidInputError(
                f"aggregate_heads=True needs a head axis, shape (H, n, n) or (B, H, n, n); "
                f"got shape {a.shape}"
            )
        cov = cov.sum(axis=-3)
    return _cov_to_corr(cov)


def _cov_to_corr(cov: np.ndarray) -> np.ndarray:
    d = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    r = cov / (d[..., :, None] * d[..., None, :])
    r = np.clip(r, -1.0, 1.0)
    idx = np.arange(r.shape[-1])
    r[..., idx, idx] = 1.0
    return r


# --------------------------------------------------------------------------------------------
# partial correlations and Fisher's z (vectorised)
# --------------------------------------------------------------------------------------------


def partial_correlations(
    corr: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    conds: np.ndarray,
    batch: np.ndarray | None = None,
) -> np.ndarray:
    """Partial correlations ``r(i, j | S)`` for many queries of one conditioning-set size.

    ``corr`` is ``(n, n)`` or ``(B, n, n)``; ``i`` and ``j`` are index arrays of shape
    ``(m,)``; ``conds`` is ``(m, s)`` (``s`` may be 0); ``batch`` (``(m,)``) picks the matrix
    of each query when ``corr`` is a batch. Sizes 0 and 1 use closed forms; larger sets invert
    the ``(s+2)×(s+2)`` sub-matrix's conditioning block (``r = −P_01 / sqrt(P_00·P_11)``,
    ``P`` the inverse); a singular conditioning block reads as dependent (r = 1). The result
    is clipped to ``±CORR_CLIP``.
    """
    i = np.asarray(i, dtype=np.intp)
    j = np.asarray(j, dtype=np.intp)
    conds = np.asarray(conds, dtype=np.intp).reshape(len(i), -1)
    s = conds.shape[1]
    if corr.ndim == 3:
        if batch is None:
            raise InvalidInputError("partial_correlations: batch indices needed for a batch of R")
        b = np.asarray(batch, dtype=np.intp)

        def pick(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return corr[b.reshape(b.shape + (1,) * (x.ndim - 1)), x, y]
    else:

        def pick(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return corr[x, y]

    if s == 0:
        r = pick(i, j)
    elif s == 1:
        k = conds[:, 0]
        rij, rik, rjk = pick(i, j), pick(i, k), pick(j, k)
        denom = (1.0 - rik * rik) * (1.0 - rjk * rjk)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = (rij - rik * rjk) / np.sqrt(denom)
        r = np.where(denom > 0, r, 1.0)  # conditioning on a copy of i or j: treat as dependent
    else:
        idx = np.concatenate([i[:, None], j[:, None], conds], axis=1)
        sub = pick(idx[:, :, None], idx[:, None, :])
        cov = _conditional_cov(sub)
        c00, c11, c01 = cov[:, 0, 0], cov[:, 1, 1], cov[:, 0, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            r = c01 / np.sqrt(c00 * c11)
        r = np.where(np.isfinite(r), r, 1.0)  # singular (degenerate) sets: dependent
    return np.clip(r, -CORR_CLIP, CORR_CLIP)


def _conditional_cov(sub: np.ndarray) -> np.ndarray:
    """Conditional covariance of the first two variables given the rest, for a batch.

    ``sub`` is ``(m, s+2, s+2)``; returns ``A − B·D⁻¹·Bᵀ`` (``(m, 2, 2)``), whose correlation
    is the partial correlation (equal to ``−P01/sqrt(P00·P11)`` for ``P = sub⁻¹``). ``D`` is
    a correlation sub-matrix (symmetric positive definite), so elimination without pivoting is
    stable; it runs on the batch axis in numpy, which for many tiny matrices is much faster
    than LAPACK (and unaffected by BLAS threading).
    """
    s = sub.shape[1] - 2
    d = sub[:, 2:, 2:].copy()
    bt = sub[:, 2:, :2].copy()
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(s - 1):  # forward elimination
            f = d[:, k + 1 :, k] / d[:, k, k, None]
            d[:, k + 1 :, k:] -= f[:, :, None] * d[:, k, None, k:]
            bt[:, k + 1 :, :] -= f[:, :, None] * bt[:, k, None, :]
        x = np.empty_like(bt)
        for k in range(s - 1, -1, -1):  # back substitution: x = D^-1 B^T
            acc = bt[:, k, :]
            if k + 1 < s:
                acc = acc - np.einsum("mj,mjc->mc", d[:, k, k + 1 :], x[:, k + 1 :, :])
            x[:, k, :] = acc / d[:, k, k, None]
    return sub[:, :2, :2] - np.einsum("mkc,mkd->mcd", sub[:, 2:, :2], x)


def fisher_z_pvalues(r: np.ndarray, n_samples: int, cond_size: int) -> np.ndarray:
    """Two-sided p-values of Fisher's z for partial correlations ``r`` given ``cond_size`` nodes.

    ``z = 0.5·ln((1+r)/(1−r))·sqrt(N − |S| − 3)`` and ``p = 2·(1 − Φ(|z|))``. When
    ``N − |S| − 3 ≤ 0`` the test has no degrees of freedom left and every p-value is 0
    (dependent): an edge is never removed on a test that cannot be run.
    """
    dof = n_samples - cond_size - 3
    r = np.clip(np.asarray(r, dtype=np.float64), -CORR_CLIP, CORR_CLIP)
    if dof <= 0:
        return np.zeros_like(r)
    z = np.arctanh(r) * np.sqrt(dof)
    return 2.0 * ndtr(-np.abs(z))


def critical_correlation(n_samples: int, cond_size: int, alpha: float) -> float:
    """The ``|r|`` below which Fisher's z calls ``i ⫫ j | S`` (p > alpha), ``|S| = cond_size``.

    ``p > alpha  ⟺  |z| < z*  ⟺  |r| < tanh(z* / sqrt(N − |S| − 3))`` with
    ``z* = Φ⁻¹(1 − alpha/2)``; 0 (never independent) when no degrees of freedom are left.
    """
    dof = n_samples - cond_size - 3
    if dof <= 0:
        return 0.0
    return float(np.tanh(-ndtri(alpha / 2.0) / np.sqrt(dof)))


# --------------------------------------------------------------------------------------------
# tests
# --------------------------------------------------------------------------------------------


class CorrelationCITest:
    """Partial-correlation / Fisher-z test on a correlation matrix ``R`` of ``n`` variables.

    ``n_samples`` is the (effective) sample size ``N``; ``alpha`` the significance level:
    ``i ⫫ j | S`` iff the two-sided p-value is ``> alpha``. ``n_tests`` counts the
    ``(i, j, S)`` triples evaluated, ``n_tests_by_size`` the same per ``|S|``.
    """

    def __init__(self, corr: np.ndarray, *, n_samples: int = 64, alpha: float = 0.01) -> None:
        corr = np.asarray(corr, dtype=np.float64)
        if corr.ndim != 2 or corr.shape[0] != corr.shape[1] or corr.shape[0] < 2:
            raise InvalidInputError(
                f"corr must be a square matrix with n >= 2; got shape {corr.shape}"
            )
        if not np.all(np.isfinite(corr)):
            raise InvalidInputError("corr contains NaN or infinite entries")
        _check_params(n_samples, alpha)
        self.corr = corr
        self.n_nodes = int(corr.shape[0])
        self.n_samples = int(n_samples)
        self.alpha = float(alpha)
        self.n_tests = 0
        self.n_tests_by_size: dict[int, int] = {}

    def _count(self, size: int, m: int) -> None:
        self.n_tests += m
        self.n_tests_by_size[size] = self.n_tests_by_size.get(size, 0) + m

    def pvalue(self, i: int, j: int, cond: Sequence[int] = ()) -> float:
        """Two-sided Fisher-z p-value of ``i ⫫ j | cond``."""
        cond = tuple(int(c) for c in cond)
        return float(self.pvalues(np.array([i]), np.array([j]), np.array([cond]).reshape(1, -1))[0])

    def independent(self, i: int, j: int, cond: Sequence[int] = ()) -> bool:
        """Whether ``i ⫫ j | cond`` at level ``alpha`` (p-value > alpha)."""
        return self.pvalue(i, j, cond) > self.alpha

    def pvalues(self, i: np.ndarray, j: np.ndarray, conds: np.ndarray) -> np.ndarray:
        """Vectorised p-values for queries ``(i[q], j[q], conds[q])``, all of one set size."""
        i = np.asarray(i, dtype=np.intp)
        conds = np.asarray(conds, dtype=np.intp).reshape(len(i), -1)
        self._count(conds.shape[1], len(i))
        r = partial_correlations(self.corr, i, j, conds)
        return fisher_z_pvalues(r, self.n_samples, conds.shape[1])

    def independent_many(self, i: np.ndarray, j: np.ndarray, conds: np.ndarray) -> np.ndarray:
        """Vectorised decisions (``p > alpha``) for queries of one conditioning-set size.

        Decided as ``|r| < critical_correlation(...)``, the same decision as ``p > alpha``
        without computing p-values.
        """
        i = np.asarray(i, dtype=np.intp)
        conds = np.asarray(conds, dtype=np.intp).reshape(len(i), -1)
        size = conds.shape[1]
        self._count(size, len(i))
        r = partial_correlations(self.corr, i, j, conds)
        return np.abs(r) < critical_correlation(self.n_samples, size, self.alpha)


class AttentionCITest(CorrelationCITest):
    """CI test on the token positions of one attention matrix (attention as a linear SEM).

    ``attention``: ``(n, n)`` softmax probabilities (or ``(H, n, n)`` with
    ``aggregate_heads=True``); ``n_samples``: effective sample size, the model's hidden size
    (64 by default, as in the reference); ``alpha``: significance level (0.01).
    """

    def __init__(
        self,
        attention: np.ndarray,
        *,
        n_samples: int = 64,
        alpha: float = 0.01,
        aggregate_heads: bool = False,
        check_rows: bool = True,
        row_tol: float = 1e-3,
    ) -> None:
        corr = correlation_from_attention(
            attention, aggregate_heads=aggregate_heads, check_rows=check_rows, row_tol=row_tol
        )
        if corr.ndim != 2:
            raise InvalidInputError(
                f"AttentionCITest takes one matrix (n, n), or (H, n, n) with aggregate_heads; "
                f"got shape {np.shape(attention)}"
            )
        super().__init__(corr, n_samples=n_samples, alpha=alpha)


class FisherZTest(CorrelationCITest):
    """Fisher-z partial-correlation test on raw data of shape ``(samples, variables)``."""

    def __init__(self, data: np.ndarray, *, alpha: float = 0.01) -> None:
        x = np.asarray(data, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < 2 or x.shape[0] < 4:
            raise InvalidInputError(
                f"data must have shape (samples >= 4, variables >= 2); got shape {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            raise InvalidInputError("data contains NaN or infinite entries")
        if np.any(x.std(axis=0) == 0):
            raise InvalidInputError("data has a constant column; its correlations are undefined")
        super().__init__(np.corrcoef(x, rowvar=False), n_samples=x.shape[0], alpha=alpha)


def _check_params(n_samples: int, alpha: float) -> None:
    if not is_int(n_samples) or n_samples < 4:
        raise InvalidInputError(f"n_samples must be an integer >= 4; got {n_samples!r}")
    if not (isinstance(alpha, (int, float, np.floating)) and 0.0 < float(alpha) < 1.0):
        raise InvalidInputError(f"alpha must be in (0, 1); got {alpha!r}")
