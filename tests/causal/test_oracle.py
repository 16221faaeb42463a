"""Oracle tests: with a perfect d-separation CI test, ICD and FCI must return exactly the true
PAG (derived independently of their adjacency searches, see recausal.testing.oracle)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from recausal.causal._marks import ARROW, NONE, TAIL
from recausal.causal.fci import fci
from recausal.causal.icd import icd
from recausal.errors import InvalidInputError
from recausal.testing.oracle import (
    DSeparationOracle,
    chain_dag,
    pag_by_enumeration,
    random_dag_with_latents,
    textbook_cases,
    true_mag,
    true_pag,
)

# (n_observed, n_latent, avg_degree, seed): 5-15 observed nodes, 1-3 latents, fixed seeds
RANDOM_CASES = [(5 + s % 11, 1 + s % 3, 2.0 + 0.5 * (s % 2), s) for s in range(36)]
# FCI's Possible-D-Sep phase is exponential in the PDS size: keep its cases smaller
FCI_CASES = [c for c in RANDOM_CASES if c[0] <= 10]
# small graphs (<= 6 MAG edges) for the brute-force equivalence-class check
ENUM_SEEDS = [0, 1, 3, 4, 6, 7]


def _graph(case: tuple[int, int, float, int]) -> tuple[nx.DiGraph, list[int]]:
    n_obs, n_lat, deg, seed = case
    return random_dag_with_latents(n_obs, n_lat, avg_degree=deg, seed=seed)


def _diff(got: np.ndarray, want: np.ndarray) -> list[tuple[int, int, int, int]]:
    return [(int(i), int(j), int(got[i, j]), int(want[i, j])) for i, j in np.argwhere(got != want)]


@pytest.mark.parametrize("name", sorted(textbook_cases()))
def test_textbook_cases(name: str) -> None:
    dag, obs, expected = textbook_cases()[name]
    assert np.array_equal(true_pag(dag, obs), expected)
    for alg in (icd, fci):
        res = alg(DSeparationOracle(dag, obs), len(obs))
        assert np.array_equal(res.marks, expected), (alg.__name__, _diff(res.marks, expected))


def test_chain_gives_circles_and_sepsets() -> None:
    dag, obs = chain_dag(5)
    res = icd(DSeparationOracle(dag, obs), 5)
    assert res.sepsets[(0, 2)] == (1,)
    assert res.sepsets[(0, 4)] in {(1,), (2,), (3,)}
    assert int((res.marks != NONE).sum()) == 8  # 4 edges, all o-o
    assert set(np.unique(res.marks)) == {0, 1}
    assert res.max_cond_size_reached == 1


@pytest.mark.parametrize("case", RANDOM_CASES, ids=lambda c: f"n{c[0]}-l{c[1]}-s{c[3]}")
def test_icd_recovers_true_pag(case: tuple[int, int, float, int]) -> None:
    dag, obs = _graph(case)
    expected = true_pag(dag, obs)
    res = icd(DSeparationOracle(dag, obs), len(obs))
    assert np.array_equal(res.marks, expected), _diff(res.marks, expected)
    for (i, j), sep in res.sepsets.items():  # every recorded sepset really separates
        assert i < j and expected[i, j] == NONE
        assert nx.is_d_separator(dag, {obs[i]}, {obs[j]}, {obs[k] for k in sep})


@pytest.mark.parametrize("case", FCI_CASES, ids=lambda c: f"n{c[0]}-l{c[1]}-s{c[3]}")
def test_fci_recovers_true_pag(case: tuple[int, int, float, int]) -> None:
    dag, obs = _graph(case)
    expected = true_pag(dag, obs)
    res = fci(DSeparationOracle(dag, obs), len(obs))
    assert np.array_equal(res.marks, expected), _diff(res.marks, expected)


@pytest.mark.parametrize("case", RANDOM_CASES[::3], ids=lambda c: f"n{c[0]}-s{c[3]}")
def test_order_aware_is_consistent_and_at_least_as_informative(
    case: tuple[int, int, float, int],
) -> None:
    # random_dag_with_latents labels nodes topologically, so observed index order is causal
    dag, obs = _graph(case)
    expected = true_pag(dag, obs)
    mag = true_mag(dag, obs)
    for alg in (icd, fci):
        if alg is fci and case[0] > 10:
            continue
        res = alg(DSeparationOracle(dag, obs), len(obs), order_aware=True)
        got = res.marks
        assert np.array_equal(got != NONE, expected != NONE)
        # every mark the plain PAG commits to is kept
        fixed = (expected != NONE) & (expected != 1)
        assert np.array_equal(got[fixed], expected[fixed])
        # and every committed mark agrees with the true MAG (sound)
        committed = (got != NONE) & (got != 1)
        assert np.array_equal(got[committed], mag[committed])
        # never an edge from a later to an earlier position
        later_to_earlier = (np.tril(got == ARROW, -1)) & (np.triu(got == TAIL, 1).T)
        assert not later_to_earlier.any()
        assert np.all(got[np.triu(got != NONE, 1)] == ARROW)


def test_true_mag_lemma_matches_exhaustive_search() -> None:
    for seed in range(12):
        dag, obs = random_dag_with_latents(6, 2, avg_degree=2.5, seed=seed)
        assert np.array_equal(true_mag(dag, obs), true_mag(dag, obs, exhaustive=True))


@pytest.mark.parametrize("seed", ENUM_SEEDS)
def test_true_pag_matches_brute_force_equivalence_class(seed: int) -> None:
    dag, obs = random_dag_with_latents(4 + seed % 3, 1 + seed % 2, avg_degree=2.0, seed=seed)
    mag = true_mag(dag, obs)
    assert int((mag != NONE).sum()) // 2 <= 6
    assert np.array_equal(true_pag(dag, obs), pag_by_enumeration(mag))


def test_oracle_counts_and_validates() -> None:
    dag, obs = chain_dag(3)
    o = DSeparationOracle(dag, obs)
    assert o.independent(0, 2, (1,)) and not o.independent(0, 2)
    assert o.independent(2, 0, [1])  # cached, symmetric
    assert o.n_tests == 2
    with pytest.raises(InvalidInputError, match="not in the DAG"):
        DSeparationOracle(dag, [0, 7])
    with pytest.raises(InvalidInputError, match="cycles"):
        DSeparationOracle(nx.DiGraph([(0, 1), (1, 0)]), [0, 1])


def test_any_time_bound() -> None:
    dag, obs = _graph(RANDOM_CASES[10])
    full = icd(DSeparationOracle(dag, obs), len(obs))
    capped = icd(DSeparationOracle(dag, obs), len(obs), max_cond_size=0)
    assert capped.max_cond_size_reached == 0
    assert all(len(s) == 0 for s in capped.sepsets.values())
    # fewer tests, and a superset of the true skeleton (edges are only ever removed)
    assert capped.n_tests < full.n_tests
    assert np.all((capped.marks != NONE) >= (full.marks != NONE))
    with pytest.raises(InvalidInputError, match="max_cond_size"):
        icd(DSeparationOracle(dag, obs), len(obs), max_cond_size=-1)
    with pytest.raises(InvalidInputError, match="n_nodes"):
        fci(DSeparationOracle(dag, obs), len(obs) + 1)
