"""Tests of the possible-d-separation tree of a PAG (:mod:`recausal.causal.pds`)."""

from __future__ import annotations

import json
from itertools import combinations, product

import numpy as np
import pytest

import recausal.causal.pds as pds_module
from recausal.causal.pag import PAG
from recausal.errors import InvalidInputError
from recausal.testing.graphs import marks_from_edges as make


def test_pds_chain_of_non_colliders_stops_at_the_neighbour() -> None:
    pag = PAG.from_marks(make(4, [(0, 1, "o-o"), (1, 2, "o-o"), (2, 3, "o-o")]))
    tree = pag.pds_tree()
    assert tree.root == 3
    assert dict(tree.nodes) == {3: 0, 2: 1}
    assert dict(tree.parent) == {2: 3}
    assert tree.members == (2,)


def test_pds_chain_of_colliders_reaches_everything() -> None:
    # 0 o-> 1 <-> 2 <-o 3: every middle node is a collider
    pag = PAG.from_marks(make(4, [(0, 1, "o->"), (1, 2, "<->"), (2, 3, "<-o")]))
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {3: 0, 2: 1, 1: 2, 0: 3}
    assert dict(tree.parent) == {2: 3, 1: 2, 0: 1}
    assert tree.path(0) == (3, 2, 1, 0)
    assert tree.depth == 3
    limited = pag.pds_tree(max_depth=2)
    assert dict(limited.nodes) == {3: 0, 2: 1, 1: 2}
    assert dict(pag.pds_tree(max_depth=0).nodes) == {3: 0}


def test_pds_collider_versus_non_collider() -> None:
    collider = PAG.from_marks(make(3, [(0, 1, "o->"), (1, 2, "<-o")]))
    assert dict(collider.pds_tree().nodes) == {2: 0, 1: 1, 0: 2}
    assert dict(collider.pds_tree(root=0).nodes) == {0: 0, 1: 1, 2: 2}
    # the same skeleton with a non-collider at 1 (1 --> 2)
    chain = PAG.from_marks(make(3, [(0, 1, "o->"), (1, 2, "-->")]))
    assert dict(chain.pds_tree().nodes) == {2: 0, 1: 1}


def test_pds_triangle() -> None:
    # 0, 1, 2 a triangle of circles, 3 hangs off 2 and 1; root 0
    pag = PAG.from_marks(
        make(4, [(0, 1, "o-o"), (1, 2, "o-o"), (0, 2, "o-o"), (2, 3, "o-o")]), target=0
    )
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {0: 0, 1: 1, 2: 1}  # <1, 2, 3>: no triangle, no collider
    closed = PAG.from_marks(
        make(4, [(0, 1, "o-o"), (1, 2, "o-o"), (0, 2, "o-o"), (2, 3, "o-o"), (1, 3, "o-o")]),
        target=0,
    )
    tree = closed.pds_tree()
    # 0-1-2 and 1-2-3 are triangles: 3 is reached along 0, 1, 2, 3 (neighbours in order)
    assert dict(tree.nodes) == {0: 0, 1: 1, 2: 1, 3: 3}
    assert tree.parent[3] == 2
    assert tree.path(3) == (0, 1, 2, 3)


def test_pds_node_only_reachable_through_a_collider_after_a_triangle() -> None:
    # target 3: 3 o-o 2, 3 o-o 1, 2 o-> 1 <-o 0. 3, 1, 0 is not a pds path (3 o-o 1 has a
    # circle at 1, 3 and 0 not adjacent); 3, 2, 1, 0 is (triangle 3-2-1, then 2 *-> 1 <-* 0).
    pag = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "<-o"), (0, 1, "o->")]))
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {3: 0, 1: 1, 2: 1, 0: 3}
    assert tree.parent[0] == 1
    assert tree.nodes[tree.parent[0]] == 1  # smaller than 3 - 1: the tree records the approach
    assert tree.path(0) == (3, 2, 1, 0)
    # without the collider at 1 node 0 is out of reach
    blocked = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "o-o"), (0, 1, "o->")]))
    assert 0 not in blocked.pds_tree().nodes
    with pytest.raises(InvalidInputError, match="not in the PDS tree"):
        blocked.pds_tree().path(0)


def test_pds_bad_arguments(mixed: PAG) -> None:
    with pytest.raises(InvalidInputError, match="root"):
        mixed.pds_tree(root=6)
    with pytest.raises(InvalidInputError, match="max_depth"):
        mixed.pds_tree(max_depth=-1)


def test_candidate_sets_star_order() -> None:
    # all four history nodes adjacent to the target: equal distances, more recent first
    pag = PAG.from_marks(make(5, [(k, 4, "o->") for k in range(4)]))
    tree = pag.pds_tree()
    assert tree.members == (3, 2, 1, 0)
    assert list(tree.candidate_sets(1)) == [(3,), (2,), (1,), (0,)]
    assert list(tree.candidate_sets(2)) == [(2, 3), (1, 3), (0, 3), (1, 2), (0, 2), (0, 1)]
    assert list(tree.candidate_sets(4)) == [(0, 1, 2, 3)]
    assert list(tree.candidate_sets(5)) == []
    with pytest.raises(InvalidInputError, match="size"):
        tree.candidate_sets(0)


def test_candidate_sets_distance_first() -> None:
    # 0 o-> 1 <-> 2 <-o 3 (target) plus 0 o-> 3: distances 2:1, 0:1, 1:2
    pag = PAG.from_marks(make(4, [(0, 1, "o->"), (1, 2, "<->"), (2, 3, "<-o"), (0, 3, "o->")]))
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {3: 0, 0: 1, 2: 1, 1: 2}
    assert list(tree.candidate_sets(1)) == [(2,), (0,), (1,)]
    assert list(tree.candidate_sets(2)) == [(0, 2), (1, 2), (0, 1)]


def _brute_force_order(tree) -> list[list[tuple[int, ...]]]:
    out = []
    members = tree.members
    for size in range(1, len(members) + 1):
        sets = [tuple(sorted(c)) for c in combinations(members, size)]
        sets.sort(
            key=lambda s: (
                sum(tree.nodes[v] for v in s),
                tuple(-v for v in sorted(s, reverse=True)),
            )
        )
        out.append(sets)
    return out


def _random_pag(rng: np.random.Generator, n: int, density: float) -> PAG:
    """Random edges with random marks (not necessarily a valid PAG: fine for tree searches)."""
    m = np.zeros((n, n), dtype=np.int8)
    for i, j in combinations(range(n), 2):
        if rng.random() < density:
            m[i, j], m[j, i] = rng.integers(1, 4, size=2)
    return PAG.from_marks(m)


@pytest.mark.parametrize(
    "sort_all", [0, 10**6], ids=["split by the most recent member", "sort all"]
)
def test_candidate_sets_match_brute_force_on_random_pags(sort_all, monkeypatch) -> None:
    monkeypatch.setattr(pds_module, "_SORT_ALL_SETS", sort_all)
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(20):
        tree = _random_pag(rng, 9, 0.4).pds_tree()
        expected = _brute_force_order(tree)
        for size, sets in enumerate(expected, start=1):
            assert list(tree.candidate_sets(size)) == sets
            checked += 1
    assert checked > 40  # the random graphs were not all trivial


@pytest.mark.parametrize("sort_all", [0, 3, 10**6], ids=["split", "split past a few", "sort"])
def test_candidate_sets_skip_within_leaves_out_exactly_the_sets_inside(sort_all, monkeypatch):
    # a cap of 3 sorts the small groups of equal summed distance and splits the larger ones
    monkeypatch.setattr(pds_module, "_SORT_ALL_SETS", sort_all)
    rng = np.random.default_rng(11)
    for _ in range(15):
        tree = _random_pag(rng, 9, 0.4).pds_tree()
        members = tree.members
        skip = frozenset(members[: len(members) // 2 + 1])
        for size, sets in enumerate(_brute_force_order(tree), start=1):
            assert list(tree.candidate_sets(size)) == sets
            expected = [s for s in sets if not skip.issuperset(s)]
            assert list(tree.candidate_sets(size, skip_within=skip)) == expected


def test_candidate_sets_sorting_splitting_and_walking_agree_on_a_large_tree(monkeypatch) -> None:
    tree = _random_pag(np.random.default_rng(3), 40, 0.15).pds_tree()
    assert len(tree.members) > 20 and tree.depth > 1
    for size in (1, 2, 3):
        fast = list(tree.candidate_sets(size))
        assert list(tree._walk(tree.members, size)) == fast  # the walk closed=True filters
        monkeypatch.setattr(pds_module, "_SORT_ALL_SETS", 0)
        assert list(tree.candidate_sets(size)) == fast
        monkeypatch.undo()


def test_candidate_sets_closed() -> None:
    pag = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "<-o"), (0, 1, "o->")]))
    tree = pag.pds_tree()
    assert list(tree.candidate_sets(2)) == [(1, 2), (0, 2), (0, 1)]
    # 0 needs both 2 and 1 on its path
    assert list(tree.candidate_sets(2, closed=True)) == [(1, 2)]
    assert list(tree.candidate_sets(3, closed=True)) == [(0, 1, 2)]


def test_pds_tree_to_dict() -> None:
    pag = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "<-o"), (0, 1, "o->")]))
    d = pag.pds_tree().to_dict()
    assert d == {
        "root": 3,
        "max_depth": None,
        "nodes": [
            {"id": 3, "distance": 0, "parent": None, "path": [3]},
            {"id": 2, "distance": 1, "parent": 3, "path": [3, 2]},
            {"id": 1, "distance": 1, "parent": 3, "path": [3, 1]},
            {"id": 0, "distance": 3, "parent": 1, "path": [3, 2, 1, 0]},
        ],
    }
    json.dumps(d)


def test_totals_are_every_achievable_summed_distance() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        available = [int(x) for x in rng.integers(1, 5, size=rng.integers(1, 7))]
        dists = [int(x) for x in rng.choice(20, size=len(available), replace=False)]
        size = int(rng.integers(1, 6))
        expected = {
            sum(c * d for c, d in zip(counts, dists, strict=True))
            for counts in product(*(range(n + 1) for n in available))
            if sum(counts) == size
        }
        assert pds_module._totals(list(zip(dists, available, strict=True)), size) == sorted(
            expected
        )
