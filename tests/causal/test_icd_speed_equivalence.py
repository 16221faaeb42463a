"""The fast paths of ICD and of the orientation rules against deliberately plain versions.

Each reference below follows its definition literally (full sweeps over sorted neighbour
lists, sets instead of bitmasks, no caches, no pruning); the optimised routine must give
exactly the same result: the same marks, separating sets, test counts and tie-breaks.
"""

from __future__ import annotations

from collections import deque
from itertools import combinations

import numpy as np
import pytest

from recausal.causal import _orient
from recausal.causal._graph import MarkBits, MarkGraph
from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.causal._orient import (
    _uncovered_pd_path,
    close_r1_r4,
    close_tail_rules,
    orient,
    sepset_deciders,
)
from recausal.causal._reference_order import r1_order
from recausal.causal.citest import (
    CORR_CLIP,
    CorrelationCITest,
    correlation_from_attention,
    critical_correlation,
)
from recausal.causal.icd import _r1_sweep, icd
from recausal.causal.icd_sep import ICDSepState, ICDSepTree
from recausal.causal.learn import _order1_decisions, learn_pags
from recausal.causal.skeleton import TestRunner as Runner
from recausal.testing.attention import random_softmax_attention

# --------------------------------------------------------------------------------------------
# plain orientation rules: full sweeps over sorted neighbour lists, marks read from g.m
# --------------------------------------------------------------------------------------------


def _ref_rule0(g, collider) -> None:
    m, adj = g.m, g.adj
    for b in range(g.n):
        nb = sorted(adj[b])
        for ia, a in enumerate(nb):
            for c in nb[ia + 1 :]:
                if c not in adj[a] and collider(a, b, c):
                    m[a][b] = m[c][b] = ARROW


def _ref_rule1(g) -> bool:
    m, adj, changed = g.m, g.adj, False
    for b in range(g.n):
        nb = sorted(adj[b])
        for a in nb:
            if m[a][b] != ARROW:
                continue
            for c in nb:
                if c != a and m[c][b] == CIRCLE and c not in adj[a]:
                    m[c][b], m[b][c], changed = TAIL, ARROW, True
    return changed


def _ref_rule2(g) -> bool:
    m, adj, changed = g.m, g.adj, False
    for a in range(g.n):
        for c in sorted(adj[a]):
            if m[a][c] != CIRCLE:
                continue
            for b in sorted(adj[a] & adj[c]):
                if m[a][b] == ARROW and m[b][c] == ARROW and (m[b][a] == TAIL or m[c][b] == TAIL):
                    m[a][c], changed = ARROW, True
                    break
    return changed


def _ref_rule3(g) -> bool:
    m, adj, changed = g.m, g.adj, False
    for b in range(g.n):
        for d in sorted(adj[b]):
            if m[d][b] != CIRCLE:
                continue
            cand = [x for x in sorted(adj[b] & adj[d]) if m[x][b] == ARROW and m[x][d] == CIRCLE]
            if any(c not in adj[a] for a, c in combinations(cand, 2)):
                m[d][b], changed = ARROW, True
    return changed


def _ref_discriminating_source(g, a: int, b: int, c: int) -> int | None:
    m, adj = g.m, g.adj
    visited, frontier = {a, b, c}, [a]
    while frontier:
        nxt = []
        for x in frontier:
            for d in sorted(adj[x]):
                if d in visited or m[d][x] != ARROW:
                    continue
                if d not in adj[c]:
                    return d
                if m[x][d] == ARROW and m[d][c] == ARROW and m[c][d] == TAIL:
                    visited.add(d)
                    nxt.append(d)
        frontier = nxt
    return None


def _ref_rule4(g, collider) -> bool:
    m, adj, changed = g.m, g.adj, False
    for b in range(g.n):
        for c in sorted(adj[b]):
            if m[c][b] != CIRCLE:
                continue
            for a in sorted(adj[b] & adj[c]):
                if not (m[a][c] == ARROW and m[c][a] == TAIL and m[b][a] == ARROW):
                    continue
                d = _ref_discriminating_source(g, a, b, c)
                if d is None:
                    continue
                if collider(d, a, b, c):
                    m[a][b] = m[b][a] = m[b][c] = m[c][b] = ARROW
                else:
                    m[b][c], m[c][b] = ARROW, TAIL
                changed = True
                break
    return changed


def _ref_rule8(g) -> bool:
    m, adj, changed = g.m, g.adj, False
    for a in range(g.n):
        for c in sorted(adj[a]):
            if not (m[c][a] == CIRCLE and m[a][c] == ARROW):
                continue
            for b in sorted(adj[a] & adj[c]):
                if (
                    m[b][a] == TAIL
                    and m[a][b] in (ARROW, CIRCLE)
                    and m[b][c] == ARROW
                    and m[c][b] == TAIL
                ):
                    m[c][a], changed = TAIL, True
                    break
    return changed


def _ref_rule9(g) -> bool:
    m, adj, changed = g.m, g.adj, False
    for a in range(g.n):
        for c in sorted(adj[a]):
            if not (m[c][a] == CIRCLE and m[a][c] == ARROW):
                continue
            for b in sorted(adj[a]):
                if b == c or b in adj[c] or not g.possibly_directed(a, b):
                    continue
                if _uncovered_pd_path(g, a, b, c, banned=-1):
                    m[c][a], changed = TAIL, True
                    break
    return changed


def _ref_rule10(g) -> bool:
    m, adj, changed = g.m, g.adj, False
    for c in range(g.n):
        parents = sorted(x for x in adj[c] if m[x][c] == ARROW and m[c][x] == TAIL)
        for a in sorted(adj[c]):
            if len(parents) < 2 or not (m[c][a] == CIRCLE and m[a][c] == ARROW):
                continue
            kids = sorted(x for x in adj[a] if x != c and g.possibly_directed(a, x))
            reach = {
                p: [mu for mu in kids if _uncovered_pd_path(g, a, mu, p, banned=c)]
                for p in parents
                if p != a
            }
            if any(
                mu != om and om not in adj[mu]
                for b, d in combinations([p for p in parents if p != a], 2)
                for mu in reach[b]
                for om in reach[d]
            ):
                m[c][a], changed = TAIL, True
    return changed


def _ref_close_r1_r4(g, c4) -> None:
    while _ref_rule1(g) | _ref_rule2(g) | _ref_rule3(g) | _ref_rule4(g, c4):
        pass


def _ref_close_tail_rules(g, c4) -> None:
    while _ref_rule8(g) | _ref_rule9(g) | _ref_rule10(g):
        _ref_close_r1_r4(g, c4)


def _random_skeleton(rng: np.random.Generator, n: int, p: float) -> np.ndarray:
    a = np.triu(rng.random((n, n)) < p, 1)
    return a | a.T


def _random_sepsets(rng: np.random.Generator, adjacency: np.ndarray, q: float) -> dict:
    n = len(adjacency)
    return {
        (i, j): tuple(int(k) for k in np.flatnonzero(rng.random(n) < q) if k not in (i, j))
        for i, j in combinations(range(n), 2)
        if not adjacency[i, j]
    }


@pytest.mark.parametrize("order_aware", [False, True])
def test_orient_equals_plain_sweeps(order_aware: bool) -> None:
    rng = np.random.default_rng(3)
    oriented = 0
    for _ in range(60):
        n = int(rng.integers(5, 16))
        adjacency = _random_skeleton(rng, n, rng.uniform(0.15, 0.5))
        c0, c4 = sepset_deciders(_random_sepsets(rng, adjacency, rng.uniform(0.0, 0.5)))
        for tail_rules in (False, True):
            fast = MarkGraph.from_array(np.where(adjacency, CIRCLE, NONE))
            plain = MarkGraph.from_array(np.where(adjacency, CIRCLE, NONE))
            orient(fast, c0, c4, order_aware=order_aware, tail_rules=tail_rules)
            plain.reset(order_aware)
            _ref_rule0(plain, c0)
            _ref_close_r1_r4(plain, c4)
            if tail_rules:
                _ref_close_tail_rules(plain, c4)
            np.testing.assert_array_equal(fast.to_array(), plain.to_array())
            oriented += int(np.isin(fast.to_array(), (ARROW, TAIL)).sum())
    assert oriented > 500


def test_each_rule_sweep_equals_plain_sweep() -> None:
    # one sweep, from arbitrary marks: the order in which a sweep applies a rule shows
    names = ["rule1", "rule2", "rule3", "rule4", "rule8", "rule9", "rule10"]
    rng = np.random.default_rng(7)
    changed = dict.fromkeys(names, 0)
    for _ in range(2000):
        n = int(rng.integers(4, 12))
        adjacency = _random_skeleton(rng, n, rng.uniform(0.3, 0.8))
        marks = np.where(adjacency, rng.choice([CIRCLE, ARROW, TAIL], size=(n, n)), NONE)
        _, c4 = sepset_deciders(_random_sepsets(rng, adjacency, 0.3))
        for name in names:
            fast, plain = MarkGraph.from_array(marks), MarkGraph.from_array(marks)
            args = (c4,) if name == "rule4" else ()
            got = getattr(_orient, name)(MarkBits(fast), *args)
            assert got == globals()[f"_ref_{name}"](plain, *args), name
            np.testing.assert_array_equal(fast.to_array(), plain.to_array(), err_msg=name)
            changed[name] += int((fast.to_array() != marks).sum())
    assert min(changed.values()) >= 20, changed  # every rule did fire


def test_closures_equal_plain_sweeps_from_any_marks() -> None:
    # arbitrary (even inconsistent) marks reach every branch of R1-R4 and R8-R10, including
    # R4 overwriting a non-circle mark and rules enabling each other within one sweep
    rng = np.random.default_rng(5)
    changed = 0
    for _ in range(150):
        n = int(rng.integers(4, 14))
        adjacency = _random_skeleton(rng, n, rng.uniform(0.2, 0.6))
        marks = np.where(adjacency, rng.choice([CIRCLE, ARROW, TAIL], size=(n, n)), NONE)
        _, c4 = sepset_deciders(_random_sepsets(rng, adjacency, 0.3))
        fast, plain = MarkGraph.from_array(marks), MarkGraph.from_array(marks)
        close_r1_r4(fast, c4)
        close_tail_rules(fast, c4)
        _ref_close_r1_r4(plain, c4)
        _ref_close_tail_rules(plain, c4)
        np.testing.assert_array_equal(fast.to_array(), plain.to_array())
        changed += int((fast.to_array() != marks).sum())
    assert changed > 300


# --------------------------------------------------------------------------------------------
# r = 1: the plain sweep over sorted neighbour lists, and the closed-form order-1 decisions
# --------------------------------------------------------------------------------------------


def _ref_order1(corr: np.ndarray, n_samples: int, alpha: float) -> np.ndarray:
    rc = min(critical_correlation(n_samples, 1, alpha), CORR_CLIP)
    num = corr[:, :, None] - corr[:, None, :] * corr[None, :, :]
    s = 1.0 - corr * corr
    return num * num < (rc * rc) * (s[:, None, :] * s[None, :, :])


def _ref_r1_sweep(adjacency: np.ndarray, ind1: np.ndarray, order_aware: bool):
    g = MarkGraph.from_array(np.where(adjacency, CIRCLE, NONE))
    adj, n = g.adj, g.n
    sepsets, removed, consulted, any_cand = {}, [], 0, False
    for i in range(n):
        nb_i = sorted(adj[i])
        for j in [x for x in nb_i if x > i]:
            lim = j if order_aware else n
            ci = [k for k in r1_order(nb_i, j) if k < lim]
            cand = ci + [k for k in r1_order(sorted(adj[j]), i) if k < lim and k not in ci]
            if not cand:
                continue
            any_cand = True
            for q, k in enumerate(cand):
                if ind1[i, j, k]:
                    consulted += q + 1
                    g.remove_edge(i, j)
                    sepsets[(i, j)] = (k,)
                    removed.append((i, j))
                    nb_i = sorted(adj[i])
                    break
            else:
                consulted += len(cand)
    return removed, sepsets, consulted, any_cand


@pytest.mark.parametrize("causal", [True, False])
def test_r1_sweep_equals_plain_sweep(causal: bool) -> None:
    n_samples, alpha = 64, 0.01
    # weak recency: denser neighbourhoods, so the hash-table simulation runs for large sets too
    attn = np.stack(
        [random_softmax_attention(50, causal=causal, seed=s, recency=0.05) for s in range(6)]
    )
    corr = correlation_from_attention(attn)
    pre0 = np.abs(corr) < critical_correlation(n_samples, 0, alpha)
    hits = _order1_decisions(corr, pre0, n_samples, alpha)
    n_removed = 0
    for u in range(len(corr)):
        ind1 = _ref_order1(corr[u], n_samples, alpha)
        adjacency = np.triu(~pre0[u], 1)
        ii, jj = np.nonzero(adjacency)
        assert hits[u] == [
            sum(1 << int(k) for k in np.flatnonzero(ind1[i, j]))
            for i, j in zip(ii, jj, strict=True)
        ]
        adjacency |= adjacency.T
        runner = Runner(CorrelationCITest(corr[u], n_samples=n_samples, alpha=alpha), 50)
        sepsets: dict = {}
        removed, any_cand = _r1_sweep(adjacency, hits[u], runner, sepsets, causal)
        want = _ref_r1_sweep(adjacency, ind1, causal)
        assert (removed, sepsets, runner.n_consulted, any_cand) == want
        n_removed += len(removed)
    assert n_removed > 500


# --------------------------------------------------------------------------------------------
# r >= 2: PDS trees and ICD-Sep candidate sets, without caches
# --------------------------------------------------------------------------------------------


def _ref_tree(g: MarkGraph, root: int, max_depth: int):
    """The PDS tree by its definition: (labels, depths, path bitmasks, enumeration order)."""
    adj, m = g.adj, g.m
    used = {(min(root, v), max(root, v)) for v in adj[root]}
    label, depth, req = sorted(adj[root]), [1] * len(adj[root]), [1 << v for v in sorted(adj[root])]
    queue = deque((root, v, t) for t, v in enumerate(label))
    while queue:
        a, b, t = queue.popleft()
        if depth[t] >= max_depth:
            continue
        for c in sorted(adj[b]):
            key = (min(b, c), max(b, c))
            if key in used or c == a:
                continue
            if c in adj[a] or (m[a][b] == ARROW and m[c][b] == ARROW):
                used.add(key)
                label.append(c)
                depth.append(depth[t] + 1)
                req.append(req[t] | (1 << c))
                queue.append((b, c, len(label) - 1))
    return label, depth, req, list(set(label))


def _ref_ancestors(g: MarkGraph, t: int) -> set[int]:
    seen, stack = set(), [t]
    while stack:
        y = stack.pop()
        for x in g.adj[y]:
            if g.m[y][x] != ARROW and g.m[x][y] != TAIL and x not in seen:
                seen.add(x)
                stack.append(x)
    return seen - {t}


def _ref_candidates(g: MarkGraph, i: int, j: int, size: int, order_aware: bool):
    allowed = (_ref_ancestors(g, i) | _ref_ancestors(g, j)) - {i, j}
    if order_aware:
        allowed = {k for k in allowed if k < max(i, j)}
    best = {}
    for side, root in enumerate((i, j)):
        label, depth, req, order = _ref_tree(g, root, size)
        legal = []
        for combo in combinations(order, size):
            mask = sum(1 << v for v in combo)
            if all(
                any(rq & ~mask == 0 for lv, rq in zip(label, req, strict=True) if lv == v)
                for v in combo
            ):
                legal.append((mask, combo))
        for rank, (mask, combo) in enumerate(legal):
            if set(combo) <= allowed:
                dist = sum(
                    min(d for lv, d in zip(label, depth, strict=True) if lv == v) for v in combo
                )
                key = (dist, side, rank, combo)
                if mask not in best or key < best[mask]:
                    best[mask] = key
    return [k[3] for k in sorted(best.values())]


def _icd_graph(n: int, causal: bool, seed: int) -> MarkGraph:
    """An oriented ICD graph after r = 1, from synthetic attention."""
    res = icd(
        CorrelationCITest(
            correlation_from_attention(random_softmax_attention(n, causal=causal, seed=seed)),
            n_samples=64,
        ),
        n,
        max_cond_size=1,
        order_aware=causal,
    )
    return MarkGraph.from_array(res.marks)


def test_pds_trees_equal_plain_breadth_first_search() -> None:
    checked = 0
    for seed in range(4):
        g = _icd_graph(40, seed % 2 == 0, seed)
        bits = MarkBits(g)
        for root in range(g.n):
            for radius in (2, 3, 4):
                tree = ICDSepTree(bits, root, radius)
                label, depth, req, order = _ref_tree(g, root, radius)
                assert (tree.label, tree.req, tree.order) == (label, req, order)
                assert tree.min_depth == {v: depth[label.index(v)] for v in set(label)}
                checked += len(label)
    assert checked > 2000


@pytest.mark.parametrize("causal", [True, False])
def test_candidates_equal_plain_definition_as_edges_go(causal: bool) -> None:
    # the memo, the tree and ancestor invalidation and the pruning of ICDSepState against the
    # definition recomputed from scratch, while edges (that edge, or any other) are removed
    rng = np.random.default_rng(11)
    nonempty = 0
    for seed in range(3):
        g = _icd_graph(30, causal, seed)
        for size in (2, 3):
            work = g.copy()
            state = ICDSepState(MarkBits(work), size, causal)
            edges = [(i, j) for i in range(work.n) for j in sorted(work.adj[i]) if j > i]
            for _ in range(2):  # a second pass sees the memo after the removals
                for i, j in edges:
                    if j not in work.adj[i]:
                        continue
                    got = [tuple(int(x) for x in c) for c in state.candidates(i, j)]
                    assert got == _ref_candidates(work, i, j, size, causal)
                    nonempty += bool(got)
                    left = [(u, v) for u, v in edges if v in work.adj[u]]
                    if rng.random() < 0.3:
                        state.remove_edge(*left[rng.integers(len(left))])
    assert nonempty >= 10


def test_candidates_drop_a_node_that_stops_being_a_possible_ancestor() -> None:
    # edge 0-1; 2 <-> 3 collider-continues 0 *-> 2, so {2, 3} is legal in the tree of 0, and
    # 3 is allowed only through 3 o-o 4 o-o 5 o-o 0. Removing 3-4 (outside both trees, so
    # they stay) takes 3 out of the allowed nodes: the remembered sets must not be reused.
    c, a = CIRCLE, ARROW
    edges = [(0, 1, c, c), (0, 2, a, c), (1, 2, c, c), (2, 3, a, a), (3, 4, c, c), (4, 5, c, c)]
    marks = np.zeros((6, 6), dtype=np.int8)
    for u, v, at_v, at_u in [*edges, (5, 0, c, c)]:  # (u, v, mark at v, mark at u)
        marks[u, v], marks[v, u] = at_v, at_u
    g = MarkGraph.from_array(marks)
    state = ICDSepState(MarkBits(g), 2, False)
    before = [tuple(int(x) for x in s) for s in state.candidates(0, 1)]
    assert before == _ref_candidates(g, 0, 1, 2, False) and (2, 3) in before
    tree = state.tree(0)
    state.remove_edge(3, 4)
    assert state.tree(0) is tree
    after = [tuple(int(x) for x in s) for s in state.candidates(0, 1)]
    assert after == _ref_candidates(g, 0, 1, 2, False) and (2, 3) not in after


# --------------------------------------------------------------------------------------------
# end to end: the batched, vectorised search against one scalar test at a time
# --------------------------------------------------------------------------------------------


class _ScalarTest:
    """Only ``independent``: ICD then tests one set at a time, in order, no look-ahead."""

    def __init__(self, inner: CorrelationCITest) -> None:
        self.inner = inner
        self.n_nodes = inner.n_nodes

    def independent(self, i: int, j: int, cond) -> bool:
        return self.inner.independent(i, j, cond)


@pytest.mark.parametrize("causal", [True, False])
def test_batched_vectorised_icd_equals_scalar_sequential_icd(causal: bool) -> None:
    n = 18
    attn = np.stack([random_softmax_attention(n, causal=causal, seed=40 + s) for s in range(4)])
    batched = learn_pags(attn, n_samples=64, order_aware=causal)
    reached = 0
    for a, fast in zip(attn, batched, strict=True):
        test = CorrelationCITest(correlation_from_attention(a), n_samples=64)
        slow = icd(_ScalarTest(test), n, order_aware=causal)
        np.testing.assert_array_equal(fast.marks, slow.marks)
        assert dict(fast.sepsets) == dict(slow.sepsets)
        assert fast.n_tests == slow.n_tests
        assert fast.max_cond_size_reached == slow.max_cond_size_reached
        reached += fast.max_cond_size_reached
    assert reached >= 8  # the searches went beyond r = 1
