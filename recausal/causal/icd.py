"""ICD — Iterative Causal Discovery (Rohekar, Nisimov, Gurwicz & Novik, NeurIPS 2021).

ICD learns a PAG by growing a single parameter r, which is at once the conditioning-set size
and the search radius. After iteration r the graph is an *r-representing* PAG, so the
algorithm can be stopped at any r (``max_cond_size``).

* r = 0: every pair is tested marginally.
* r = 1: each edge is tested given single neighbours of either end (neighbours of i first,
  then those of j; within each, the order in which the reference implementation iterates
  its Python sets — see :mod:`recausal.causal._reference_order` — so that both pick the
  same separating node).
* r ≥ 2: an edge ``i``–``j`` is tested given sets Z of size r that satisfy ICD-Sep:
  (1) |Z| = r; (2) Z lies in the Possible-D-Sep set of i (or of j) searched up to radius r,
  and every node of Z is reached from that end by a PDS path whose nodes are all in Z
  (legal sets of the "PDS tree"); (3) every node of Z is a possible ancestor of i or j.
  The sets are tried in order of the summed tree distance to the end (closest first); they
  are enumerated by :mod:`recausal.causal.icd_sep`.

A PDS tree of a node is a breadth-first search over the skeleton in which a step
``a – b – c`` is allowed when b is a possible collider (``a *-> b <-* c``, or a, c adjacent),
each skeleton edge is walked at most once, and depth is bounded by r
(:func:`recausal.causal.pds.edge_walk`). Within one iteration the
adjacencies change as edges are removed (later edges see the earlier removals), the marks do
not. After each iteration that removed or tested something the PAG is re-oriented from
scratch with R0–R4 (and, at r = 1, R8–R10); when no edge has a legal conditioning set the
algorithm stops and the tail rules R8–R10 complete the orientation (no selection bias: R5–R7
are not needed).

Ties between conditioning sets of equal distance are broken by (tree of i before tree of j,
enumeration order of the tree's node set). The enumeration order is the iteration order of a
Python ``set`` built from the breadth-first discovery list, the same order the reference
implementation (IntelLabs/causality-lab) uses, so both choose the same separating sets. On
synthetic softmax attention the PAGs are identical to the reference's for most matrices; the
rare differences come from r = 1 tie-breaks that depend on the layout of the reference's
internal Python sets (their insertion history), which
:func:`~recausal.causal._reference_order.r1_order` only approximates.

Speed: the r = 0 and r = 1 decisions of all pairs are made in one vectorised call (for a batch
of users, one call for the whole batch, see ``recausal.causal.learn``). The r = 1 sweep reads
adjacencies only, so the r = 0 graph is not oriented when it follows; it runs on bitmasks (the
neighbours of each node, the separating nodes of each edge) and reads an edge's first
separating node off them, simulating the reference's set only where two keys share a hash
slot.
The rules and the r ≥ 2 searches work on the graph's bitmask mirror (``MarkBits``). An edge
whose ends have fewer than r possible ancestors, or reach fewer than r of them by PDS paths
inside them, has no legal set and builds no tree; the legal sets of a tree are enumerated
over the nodes that can be in one (with numpy for many combinations); trees, possible
ancestors and each edge's sets are kept until a removed edge can have changed them; and the
first sets of an edge and of the next edges are decided in one vectorised call (a decision
does not depend on the other queries), the rest of a long list in growing chunks.

``order_aware``: nodes are in token order; a later node is never an ancestor of an earlier
one. Edges ``i``–``j``, ``i < j`` carry an arrowhead at ``j`` from the start and through every
orientation; no rule can then orient ``j → i``. Conditioning sets only use nodes earlier than
``max(i, j)`` (for r ≥ 2 this is implied by the possible-ancestor condition).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recausal.causal._graph import MarkBits, MarkGraph, bit_nodes, bitmask_rows
from recausal.causal._marks import CIRCLE, NONE
from recausal.causal._orient import close_tail_rules, orient, sepset_deciders
from recausal.causal._reference_order import first_in_r1_order
from recausal.causal.citest import CITest
from recausal.causal.icd_sep import Candidates, ICDSepState
from recausal.causal.result import StructureResult
from recausal.causal.skeleton import TestRunner, check_learner_args

__all__ = ["icd"]

_AHEAD_SETS = 1024  # conditioning sets decided together, for the next edges (r >= 2)
_AHEAD_EDGES = 8  # at most this many edges with sets decided together
_AHEAD_PREFIX = 64  # at most this many sets of one edge among them


def _search_level(
    bits: MarkBits,
    runner: TestRunner,
    r: int,
    sepsets: dict[tuple[int, int], tuple[int, ...]],
    order_aware: bool,
) -> bool:
    """One iteration r ≥ 2: each edge (ascending) tested given its ICD-Sep sets until the
    first independence; removes the separated edges. Returns whether any edge had a set.

    With a vectorised test, the first sets of an edge and of the next edges with sets (as
    the graph is now) are decided in one call; an edge whose sets are still the same when it
    is reached uses those decisions (a decision does not depend on the other queries). After
    a removal, which can change the next edges' sets, only the edge itself is decided, then
    twice as many edges each time one stays, up to ``_AHEAD_EDGES``.
    """
    state = ICDSepState(bits, r, order_aware)
    adj = bits.adj
    edges = [(i, j) for i in range(len(adj)) for j in bit_nodes(adj[i] >> (i + 1) << (i + 1))]
    known: dict[tuple[int, int], tuple[Candidates, np.ndarray]] = {}
    any_cand = False
    ahead = _AHEAD_EDGES  # edges decided together (see above)
    for e, (i, j) in enumerate(edges):
        cand = state.candidates(i, j)
        if len(cand) == 0:
            continue
        any_cand = True
        prior = None
        if runner.vectorised:
            got = known.get((i, j))
            if got is None or not _same_sets(got[0], cand):
                _decide_ahead(state, runner, edges, e, cand, known, ahead)
                got = known[(i, j)]
            prior = got[1]
        q = runner.first_independent(i, j, cand, known=prior)
        if q >= 0:
            state.remove_edge(i, j)
            sepsets[(i, j)] = tuple(sorted(int(x) for x in cand[q]))
            ahead = 1
        else:
            ahead = min(2 * ahead, _AHEAD_EDGES)
    return any_cand


def _decide_ahead(
    state: ICDSepState,
    runner: TestRunner,
    edges: list[tuple[int, int]],
    e: int,
    cand: Candidates,
    known: dict[tuple[int, int], tuple[Candidates, np.ndarray]],
    ahead: int,
) -> None:
    """Decide (up to ``_AHEAD_PREFIX``) sets of edge ``edges[e]`` and of the edges after it
    with sets, ``ahead`` edges and about ``_AHEAD_SETS`` sets in all, in one call; record
    them in ``known``."""
    batch = [(edges[e], cand)]
    total = min(len(cand), _AHEAD_PREFIX)
    for u, v in edges[e + 1 :]:
        if total >= _AHEAD_SETS or len(batch) >= ahead:
            break
        more = state.candidates(u, v)
        if len(more):
            batch.append(((u, v), more))
            total += min(len(more), _AHEAD_PREFIX)
    counts = [min(len(c), _AHEAD_PREFIX) for _, c in batch]
    conds = np.concatenate(
        [
            np.asarray(c[:k], dtype=np.intp).reshape(k, state.radius)
            for (_, c), k in zip(batch, counts, strict=True)
        ]
    )
    ends = np.repeat(np.array([ij for ij, _ in batch], dtype=np.intp), counts, axis=0)
    res = runner.decide(ends[:, 0], ends[:, 1], conds)
    for (ij, c), lo, hi in zip(batch, np.cumsum([0, *counts[:-1]]), np.cumsum(counts), strict=True):
        known[ij] = (c, res[lo:hi])


def _same_sets(a: Candidates, b: Candidates) -> bool:
    """Whether two lists of conditioning sets are the same, in the same order."""
    return a is b or (len(a) == len(b) and np.array_equal(np.asarray(a), np.asarray(b)))


def icd(
    test: CITest,
    n_nodes: int,
    *,
    max_cond_size: int | None = None,
    order_aware: bool = False,
    known_marginal: np.ndarray | None = None,
    known_order1: Sequence[int] | None = None,
) -> StructureResult:
    """Learn a PAG with ICD from a CI test over nodes ``0..n_nodes-1``.

    Args:
        test: the CI test (vectorised when it has ``independent_many``).
        n_nodes: number of nodes, >= 2.
        max_cond_size: stop after the iteration r = max_cond_size (ICD is any-time: the
            result is then the r-representing PAG, completed by the tail rules); ``None``:
            run to the end.
        order_aware: nodes are in token order (see the module docstring).
        known_marginal: the test's r = 0 decisions made beforehand, ``(n, n)`` booleans
            (true: independent), as :func:`recausal.causal.learn.learn_pags` batches them.
        known_order1: the test's r = 1 decisions made beforehand: per edge left after r = 0
            (``i < j``, ascending), the bitmask of the k with ``i ⫫ j | k``.

    Returns:
        The learned structure.
    """
    check_learner_args(n_nodes, max_cond_size)
    n = n_nodes
    runner = TestRunner(test, n)
    limit = n - 2 if max_cond_size is None else min(max_cond_size, n - 2)
    sepsets: dict[tuple[int, int], tuple[int, ...]] = {}

    # r = 0: all pairs at once
    iu, ju = np.triu_indices(n, 1)
    if known_marginal is not None:
        ind0 = np.asarray(known_marginal, dtype=bool)[iu, ju]
    else:
        ind0 = runner.decide(iu, ju, np.zeros((len(iu), 0), dtype=np.intp))
    runner.n_consulted += len(iu)
    sepsets.update(dict.fromkeys(zip(iu[ind0].tolist(), ju[ind0].tolist(), strict=True), ()))
    keep = np.zeros((n, n), dtype=bool)
    keep[iu[~ind0], ju[~ind0]] = True
    keep |= keep.T
    g = MarkGraph.from_array(np.where(keep, CIRCLE, NONE))
    # r = 1: one vectorised call for every (edge, node), then the sequential sweep. The sweep
    # reads adjacencies only, so the r = 0 graph is oriented only when the search stops there.
    reached = 0
    if limit < 1:
        c0, c4 = sepset_deciders(sepsets)
        bits = orient(g, c0, c4, order_aware=order_aware, tail_rules=False)
        done = True
    else:
        hits = known_order1 if known_order1 is not None else _all_order1(runner, g)
        removed, any_cand = _r1_sweep(keep, hits, runner, sepsets, order_aware)
        for i, j in removed:
            g.remove_edge(i, j)
        reached = int(any_cand)
        c0, c4 = sepset_deciders(sepsets)
        bits = orient(g, c0, c4, order_aware=order_aware, tail_rules=True)
        done = not any_cand

    # r >= 2: ICD-Sep conditioning sets from PDS trees
    r = 2
    while not done and r <= limit:
        if not _search_level(bits, runner, r, sepsets, order_aware):
            break
        reached = r
        c0, c4 = sepset_deciders(sepsets)
        bits = orient(g, c0, c4, order_aware=order_aware, tail_rules=False)
        r += 1

    _, c4 = sepset_deciders(sepsets)
    close_tail_rules(bits, c4)
    return StructureResult(
        marks=g.to_array(),
        sepsets=sepsets,
        n_tests=runner.n_consulted,
        max_cond_size_reached=reached,
        algorithm="icd",
        order_aware=order_aware,
        params={"max_cond_size": max_cond_size},
    )


def _r1_sweep(
    adjacency: np.ndarray,
    hits: Sequence[int],
    runner: TestRunner,
    sepsets: dict[tuple[int, int], tuple[int, ...]],
    order_aware: bool,
) -> tuple[list[tuple[int, int]], bool]:
    """The r = 1 iteration on the skeleton ``adjacency``: edges in ascending order, each
    tested given single nodes in the order of the module docstring until the first
    independence (``hits``: per edge, in that order, the bitmask of the k with
    ``i ⫫ j | k``). Returns the separated edges, in order, and whether any edge had a
    candidate node.

    Adjacencies and decisions are bitmasks; an edge's candidate order is only materialised
    when it is not by slot and a separating node lies in that part.
    """
    n = len(adjacency)
    nbm = bitmask_rows(adjacency)
    every = (1 << n) - 1
    any_cand = False
    consulted = 0
    removed = []
    edge_hits = iter(hits)
    for i in range(n):
        # the edges i–j, j > i, are all still there: only the current edge is ever removed
        for j in bit_nodes(nbm[i] >> (i + 1) << (i + 1)):
            hit = next(edge_hits)
            low = ((1 << j) - 1) if order_aware else every
            mi = nbm[i] & low & ~(1 << j)  # candidates from the neighbours of i
            mj = nbm[j] & low & ~(1 << i) & ~mi  # then those of j not already tried
            if not (mi | mj):
                continue
            any_cand = True
            if hit & mi:
                q, k = first_in_r1_order(nbm[i], j, mi, hit & mi)
            elif hit & mj:
                q, k = first_in_r1_order(nbm[j], i, mj, hit & mj)
                q += mi.bit_count()
            else:
                consulted += mi.bit_count() + mj.bit_count()
                continue
            consulted += q + 1
            nbm[i] &= ~(1 << j)
            nbm[j] &= ~(1 << i)
            sepsets[(i, j)] = (k,)
            removed.append((i, j))
    runner.n_consulted += consulted
    return removed, any_cand


def _all_order1(runner: TestRunner, g: MarkGraph) -> list[int]:
    """For each edge i–j (i < j, ascending), the bitmask of the k with ``i ⫫ j | k``."""
    n = g.n
    pairs = [(i, j) for i in range(n) for j in sorted(g.adj[i]) if j > i]
    if not pairs or n < 3:
        return [0] * len(pairs)
    p = np.array(pairs, dtype=np.intp)
    e = len(p)
    ii = np.repeat(p[:, 0], n)
    jj = np.repeat(p[:, 1], n)
    kk = np.tile(np.arange(n, dtype=np.intp), e)
    keep = (kk != ii) & (kk != jj)
    res = np.zeros(e * n, dtype=bool)
    res[keep] = runner.decide(ii[keep], jj[keep], kk[keep, None])
    return bitmask_rows(res.reshape(e, n))
