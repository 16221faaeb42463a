"""Attention-as-SEM correlation, partial correlations, Fisher z, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from recausal.causal.citest import (
    CORR_CLIP,
    AttentionCITest,
    CITest,
    CorrelationCITest,
    FisherZTest,
    correlation_from_attention,
    fisher_z_pvalues,
    partial_correlations,
)
from recausal.errors import InvalidInputError


def _softmax_rows(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_correlation_hand_computed() -> None:
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    # C = A A^T = [[1, .5], [.5, .5]] -> R_01 = .5 / sqrt(.5) = sqrt(.5)
    r = correlation_from_attention(a)
    assert r == pytest.approx(np.array([[1.0, np.sqrt(0.5)], [np.sqrt(0.5), 1.0]]))


def test_correlation_identity_and_batch() -> None:
    assert np.array_equal(correlation_from_attention(np.eye(4)), np.eye(4))
    rng = np.random.default_rng(0)
    batch = _softmax_rows(rng.normal(size=(3, 5, 5)))
    r = correlation_from_attention(batch)
    assert r.shape == (3, 5, 5)
    for b in range(3):
        assert r[b] == pytest.approx(correlation_from_attention(batch[b]))
        assert np.allclose(np.diag(r[b]), 1.0)


def test_aggregate_heads_sums_covariances() -> None:
    rng = np.random.default_rng(1)
    heads = _softmax_rows(rng.normal(size=(4, 6, 6)))
    cov = sum(h @ h.T for h in heads)
    d = np.sqrt(np.diag(cov))
    expected = cov / np.outer(d, d)
    assert correlation_from_attention(heads, aggregate_heads=True) == pytest.approx(expected)
    both = correlation_from_attention(np.stack([heads, heads[::-1]]), aggregate_heads=True)
    assert both.shape == (2, 6, 6)
    assert both[1] == pytest.approx(expected)  # head order does not matter
    with pytest.raises(InvalidInputError, match="head axis"):
        correlation_from_attention(heads[0], aggregate_heads=True)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.ones((2, 3)) / 3, "square"),
        (np.ones((1, 1)), "at least 2"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), "non-negative"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), "NaN"),
        (np.array([[np.inf, 1.0], [0.5, 0.5]]), "NaN or infinite"),
        (np.array([[0.0, 0.0], [0.5, 0.5]]), "all-zero row"),
        (np.array([[0.7, 0.7], [0.5, 0.5]]), "sum to 1"),
        (np.ones(3), "shape"),
    ],
)
def test_bad_attention_raises(bad: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        correlation_from_attention(bad)


def test_row_check_tolerance_and_flag() -> None:
    a = np.array([[0.6, 0.4], [0.5, 0.5001]])
    correlation_from_attention(a)  # within the default tolerance 1e-3
    with pytest.raises(InvalidInputError, match="row_tol"):
        correlation_from_attention(a, row_tol=1e-6)
    unnormalised = np.array([[2.0, 1.0], [1.0, 3.0]])
    r = correlation_from_attention(unnormalised, check_rows=False)
    # rows scaled to sum 1 give the same correlation (row scaling rescales each Z_i only)
    normalised = unnormalised / unnormalised.sum(axis=1, keepdims=True)
    assert r == pytest.approx(correlation_from_attention(normalised))


def _residual_pcorr(x: np.ndarray, i: int, j: int, cond: tuple[int, ...]) -> float:
    if not cond:
        return float(np.corrcoef(x[:, i], x[:, j])[0, 1])
    z = np.column_stack([np.ones(len(x)), x[:, list(cond)]])
    ri = x[:, i] - z @ np.linalg.lstsq(z, x[:, i], rcond=None)[0]
    rj = x[:, j] - z @ np.linalg.lstsq(z, x[:, j], rcond=None)[0]
    return float(np.corrcoef(ri, rj)[0, 1])


def test_partial_correlations_match_regression_residuals() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6))
    corr = np.corrcoef(x, rowvar=False)
    queries = [(0, 1, ()), (0, 1, (2,)), (3, 5, (0, 4)), (1, 4, (0, 2, 5)), (2, 3, (0, 1, 4, 5))]
    for i, j, cond in queries:
        got = partial_correlations(
            corr, np.array([i]), np.array([j]), np.array([cond], dtype=int).reshape(1, -1)
        )[0]
        assert got == pytest.approx(_residual_pcorr(x, i, j, cond), abs=1e-9)


def test_partial_correlations_vectorised_and_batched() -> None:
    rng = np.random.default_rng(3)
    corrs = np.stack([np.corrcoef(rng.normal(size=(50, 5)), rowvar=False) for _ in range(3)])
    i = np.array([0, 1, 2, 0])
    j = np.array([1, 3, 4, 4])
    conds = np.array([[2, 3], [0, 4], [1, 3], [2, 1]])
    b = np.array([0, 2, 1, 2])
    many = partial_correlations(corrs, i, j, conds, batch=b)
    for q in range(4):
        one = partial_correlations(corrs[b[q]], i[q : q + 1], j[q : q + 1], conds[q : q + 1])
        assert many[q] == pytest.approx(one[0])


def test_fisher_z_two_sided_hand_value() -> None:
    # r = 0.5, N = 64, |S| = 0: z = atanh(0.5) * sqrt(61)
    z = np.arctanh(0.5) * np.sqrt(61)
    expected = 2 * stats.norm.sf(z)
    assert fisher_z_pvalues(np.array([0.5]), 64, 0)[0] == pytest.approx(expected)
    assert fisher_z_pvalues(np.array([-0.5]), 64, 0)[0] == pytest.approx(expected)  # two-sided
    # one conditioning node costs one degree of freedom
    z1 = np.arctanh(0.5) * np.sqrt(60)
    assert fisher_z_pvalues(np.array([0.5]), 64, 1)[0] == pytest.approx(2 * stats.norm.sf(z1))
    # no degrees of freedom left: never independent
    assert fisher_z_pvalues(np.array([0.01]), 5, 2)[0] == 0.0


def test_independence_threshold_and_counting() -> None:
    r = np.array([[1.0, 0.3, 0.0], [0.3, 1.0, 0.0], [0.0, 0.0, 1.0]])
    t = CorrelationCITest(r, n_samples=64, alpha=0.01)
    assert isinstance(t, CITest)
    p = t.pvalue(0, 1)
    assert p == pytest.approx(2 * stats.norm.sf(np.arctanh(0.3) * np.sqrt(61)))
    assert t.independent(0, 1) is (p > 0.01)
    assert t.independent(0, 2)
    assert t.n_tests == 3
    assert t.n_tests_by_size == {0: 3}
    t.independent_many(np.array([0, 1]), np.array([1, 2]), np.array([[2], [0]]))
    assert t.n_tests_by_size == {0: 3, 1: 2}


def test_degenerate_attention_is_clipped_and_dependent() -> None:
    # rows 0 and 1 identical: |r| = 1, clipped, finite statistic, read as dependent
    a = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    t = AttentionCITest(a)
    assert t.corr[0, 1] == pytest.approx(1.0)
    assert not t.independent(0, 1)
    assert np.isfinite(t.pvalue(0, 1))
    assert (
        abs(partial_correlations(t.corr, np.array([0]), np.array([1]), np.zeros((1, 0)))[0])
        <= CORR_CLIP
    )


def test_fisherz_on_chain_data() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=3000)
    y = 0.8 * x + rng.normal(size=3000)
    z = 0.8 * y + rng.normal(size=3000)
    t = FisherZTest(np.column_stack([x, y, z]), alpha=0.01)
    assert not t.independent(0, 2)
    assert t.independent(0, 2, (1,))
    assert not t.independent(0, 1, (2,))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n_samples": 3}, "n_samples"), ({"alpha": 0.0}, "alpha"), ({"alpha": 1.5}, "alpha")],
)
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        AttentionCITest(np.eye(3), **kwargs)


def test_bad_data_for_fisherz() -> None:
    with pytest.raises(InvalidInputError, match="constant column"):
        FisherZTest(np.column_stack([np.ones(10), np.arange(10.0)]))
    with pytest.raises(InvalidInputError, match="shape"):
        FisherZTest(np.ones(10))
