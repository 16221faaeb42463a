"""Entry points from attention matrices to PAGs: one matrix, or a batch of users."""

from __future__ import annotations

import numpy as np

from recausal.causal._graph import StructureResult
from recausal.causal.citest import (
    CORR_CLIP,
    CorrelationCITest,
    correlation_from_attention,
    critical_correlation,
)
from recausal.causal.fci import fci
from recausal.causal.icd import icd
from recausal.errors import InvalidInputError

__all__ = ["ALGORITHMS", "learn_pags", "pag_from_attention"]

ALGORITHMS = ("icd", "fci")


def _check_algorithm(algorithm: str) -> None:
    if algorithm not in ALGORITHMS:
        raise InvalidInputError(f"algorithm must be one of {ALGORITHMS}; got {algorithm!r}")


def pag_from_attention(
    attention: np.ndarray,
    *,
    n_samples: int = 64,
    alpha: float = 0.01,
    algorithm: str = "icd",
    order_aware: bool = False,
    max_cond_size: int | None = None,
    aggregate_heads: bool = False,
    check_rows: bool = True,
) -> StructureResult:
    """Learn the PAG over the token positions of one attention matrix ``(n, n)`` (or
    ``(H, n, n)`` with ``aggregate_heads``). See :func:`learn_pags` for the parameters."""
    a = np.asarray(attention)
    expected = 3 if aggregate_heads else 2
    if a.ndim != expected:
        want = "(H, n, n)" if aggregate_heads else "(n, n)"
        raise InvalidInputError(
            f"attention must have {expected} axes here {want}; got shape {a.shape}; "
            "use learn_pags for a batch"
        )
    return learn_pags(
        a[None],
        n_samples=n_samples,
        alpha=alpha,
        algorithm=algorithm,
        order_aware=order_aware,
        max_cond_size=max_cond_size,
        aggregate_heads=aggregate_heads,
        check_rows=check_rows,
    )[0]


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
    """One PAG per attention matrix of a batch ``(B, n, n)`` (``(B, H, n, n)`` with
    ``aggregate_heads``: heads combined by summed covariances).

    ``n_samples``: effective sample size of the Fisher-z test (the model's hidden size);
    ``alpha``: significance level; ``algorithm``: ``"icd"`` or ``"fci"``; ``order_aware``:
    positions are in token order (for causal, SASRec-like attention); ``max_cond_size``:
    largest conditioning set (ICD stops there: any-time).

    The correlation matrices, the marginal tests and (for ICD) every order-1 test of every
    user are computed in a few vectorised calls shared by the batch; the searches over larger
    conditioning sets then run per user.
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
        pre1 = _order1_decisions(block, n_samples, alpha) if n >= 3 else None
        for u, t in enumerate(tests):
            out.append(
                icd(
                    t,
                    n,
                    max_cond_size=max_cond_size,
                    order_aware=order_aware,
                    _pre0=pre0[u],
                    _pre1=None if pre1 is None else pre1[u],
                )
            )
    return out


def _order1_decisions(corr: np.ndarray, n_samples: int, alpha: float) -> np.ndarray:
    """``ind[b, i, j, k]``: ``i ⫫ j | k`` for every user b and triple, closed form.

    ``r_ij·k² < r*²`` written without division: ``(r_ij − r_ik·r_jk)² < r*²·(1−r_ik²)(1−r_jk²)``
    (a zero denominator, k a copy of i or j, reads as dependent, as in the scalar test).
    """
    rc = min(critical_correlation(n_samples, 1, alpha), CORR_CLIP)
    out = np.empty((*corr.shape, corr.shape[-1]), dtype=bool)
    for b in range(corr.shape[0]):
        c = corr[b]
        num = c[:, :, None] - c[:, None, :] * c[None, :, :]
        s = 1.0 - c * c
        den = s[:, None, :] * s[None, :, :]
        np.less(num * num, (rc * rc) * den, out=out[b])
    return out
