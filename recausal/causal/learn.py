"""Entry points from attention matrices to PAGs: one matrix, or a batch of users."""

from __future__ import annotations

from typing import TypedDict, Unpack

import numpy as np

from recausal.causal._graph import bitmask_rows
from recausal.causal.citest import (
    CORR_CLIP,
    CorrelationCITest,
    correlation_from_attention,
    critical_correlation,
)
from recausal.causal.fci import fci
from recausal.causal.icd import icd
from recausal.causal.result import StructureResult
from recausal.errors import InvalidInputError

__all__ = ["ALGORITHMS", "LearnOptions", "learn_pags", "pag_from_attention"]

ALGORITHMS = ("icd", "fci")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")


class LearnOptions(TypedDict, total=False):
    """Keyword options of :func:`learn_pags` that :func:`pag_from_attention` passes on."""

    n_samples: int
    alpha: float
    algorithm: str
    order_aware: bool
    max_cond_size: int | None
    check_rows: bool


def pag_from_attention(
    attention: np.ndarray, *, aggregate_heads: bool = False, **options: Unpack[LearnOptions]
) -> StructureResult:
    """Learn the PAG over the token positions of one attention matrix.

    Args:
        attention: ``(n, n)``, or ``(H, n, n)`` with ``aggregate_heads``.
        aggregate_heads: combine the heads by summed covariances.
        **options: as for :func:`learn_pags`.

    Returns:
        The learned structure.
    """
    a = np.asarray(attention)
    expected = 3 if aggregate_heads else 2
    if a.ndim != expected:
        want = "(H, n, n)" if aggregate_heads else "(n, n)"
        raise InvalidInputError(
            f"attention must have {expected} axes here {want}; got shape {a.shape}; "
            "use learn_pags for a batch"
        )
    return learn_pags(a[None], aggregate_heads=aggregate_heads, **options)[0]


def learn_pags(
    attn_batch: np.ndarray,
    *,
    n_samples: int = 64,
    alpha: float = 0.01,
    algorithm: str = "icd",
    order_aware: bool = False,
    max_cond_size: int | None = None,
    aggregate_heads: bool = False,
    check_rows: bool = True,
    _users_per_chunk: int = 16,
) -> list[StructureResult]:
    """One PAG per attention matrix of a batch.

    The correlation matrices, the marginal tests and (for ICD) every order-1 test of every
    user are computed in a few vectorised calls shared by the batch; the searches over larger
    conditioning sets then run per user.

    Args:
        attn_batch: ``(B, n, n)``, or ``(B, H, n, n)`` with ``aggregate_heads``.
        n_samples: effective sample size of the Fisher-z test (the model's hidden size).
        alpha: significance level.
        algorithm: ``"icd"`` or ``"fci"``.
        order_aware: positions are in token order (for causal, SASRec-like attention).
        max_cond_size: largest conditioning set (ICD stops there: any-time).
        aggregate_heads: combine the heads by summed covariances.
        check_rows: check that every attention row sums to 1.

    Returns:
        One learned structure per matrix, in batch order.
    """
    _check_algorithm(algorithm)
    a = np.asarray(attn_batch)
    expected = 4 if aggregate_heads else 3
    if a.ndim != expected:
        raise InvalidInputError(
            f"attn_batch must have shape {'(B, H, n, n)' if aggregate_heads else '(B, n, n)'}; "
            f"got shape {a.shape}"
        )
    corr = correlation_from_attention(a, aggregate_heads=aggregate_heads, check_rows=check_rows)
    b, n, _ = corr.shape
    out: list[StructureResult] = []
    for start in range(0, b, _users_per_chunk):
        block = corr[start : start + _users_per_chunk]
        tests = [CorrelationCITest(c, n_samples=n_samples, alpha=alpha) for c in block]
        if algorithm == "fci":
            out.extend(
                fci(t, n, max_cond_size=max_cond_size, order_aware=order_aware) for t in tests
            )
            continue
        pre0 = np.abs(block) < critical_correlation(n_samples, 0, alpha)
        pre1 = _order1_decisions(block, pre0, n_samples, alpha)
        for u, t in enumerate(tests):
            out.append(
                icd(
                    t,
                    n,
                    max_cond_size=max_cond_size,
                    order_aware=order_aware,
                    known_marginal=pre0[u],
                    known_order1=pre1[u],
                )
            )
    return out


def _order1_decisions(
    corr: np.ndarray, pre0: np.ndarray, n_samples: int, alpha: float
) -> list[list[int]]:
    """Per user b, for each pair i < j not separated at order 0 (``pre0[b, i, j]`` false, in
    ascending order), the bitmask of the k with ``i ⫫ j | k``, closed form.

    ``r_ij·k² < r*²`` written without division: ``(r_ij − r_ik·r_jk)² < r*²·(1−r_ik²)(1−r_jk²)``
    (a zero denominator, k a copy of i or j, reads as dependent, as in the scalar test).
    """
    rc = min(critical_correlation(n_samples, 1, alpha), CORR_CLIP)
    bb, ii, jj = np.nonzero(np.triu(~pre0, 1))
    s = 1.0 - corr * corr
    num = corr[bb, ii, jj][:, None] - corr[bb, ii] * corr[bb, jj]
    ind = num * num < (rc * rc) * (s[bb, ii] * s[bb, jj])
    rows = bitmask_rows(ind) if len(bb) else []
    ends = np.cumsum(np.bincount(bb, minlength=len(corr))).tolist()
    return [rows[lo:hi] for lo, hi in zip([0, *ends[:-1]], ends, strict=True)]
