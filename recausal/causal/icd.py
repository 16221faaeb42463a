"""ICD — Iterative Causal Discovery (Rohekar, Gurwicz, Nisimov & Shalit, NeurIPS 2021).

ICD learns a PAG by growing a single parameter r, which is at once the conditioning-set size
and the search radius. After iteration r the graph is an *r-representing* PAG, so the
algorithm can be stopped at any r (``max_cond_size``).

* r = 0: every pair is tested marginally.
* r = 1: each edge is tested given single neighbours of either end (neighbours of i first,
  then those of j; within each, the order in which the reference implementation iterates
  its Python sets — see ``_r1_order`` — so that both pick the same separating node).
* r ≥ 2: an edge ``i``–``j`` is tested given sets Z of size r that satisfy ICD-Sep:
  (1) |Z| = r; (2) Z lies in the Possible-D-Sep set of i (or of j) searched up to radius r,
  and every node of Z is reached from that end by a PDS path whose nodes are all in Z
  (legal sets of the "PDS tree"); (3) every node of Z is a possible ancestor of i or j.
  The sets are tried in order of the summed tree distance to the end (closest first).

A PDS tree of a node is a breadth-first search over the skeleton in which a step
``a – b – c`` is allowed when b is a possible collider (``a *-> b <-* c``, or a, c adjacent),
each skeleton edge is walked at most once, and depth is bounded by r. Within one iteration the
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
internal Python sets (their insertion history), which ``_r1_order`` only approximates.

Speed: the r = 0 and r = 1 decisions of all pairs are made in one vectorised call (for a batch
of users, one call for the whole batch, see ``recausal.causal.learn``). The r = 1 sweep reads
adjacencies only, so the r = 0 graph is not oriented when it follows; it runs on bitmasks (the
neighbours of each node, the separating nodes of each edge) and reads an edge's first
separating node off them, simulating ``_r1_order`` only where two keys share a hash slot.
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
from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np

from recausal.causal._graph import (
    MarkBits,
    MarkGraph,
    StructureResult,
    bit_nodes,
    bitmask_rows,
    combination_rows,
)
from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.causal._orient import close_tail_rules, orient, sepset_deciders
from recausal.causal.citest import CITest
from recausal.causal.fci import _check_common
from recausal.causal.skeleton import TestRunner

__all__ = ["icd"]

_NUMPY_MIN_SETS = 256  # below this many candidate combinations plain Python is faster
_AHEAD_SETS = 1024  # conditioning sets decided together, for the next edges (r >= 2)
_AHEAD_EDGES = 8  # at most this many edges with sets decided together
_AHEAD_PREFIX = 64  # at most this many sets of one edge among them

Candidates = list[tuple[int, ...]] | np.ndarray
"""Conditioning sets of one size, in test order: tuples, or an ``(m, size)`` array."""


class _PDSTree:
    """Possible-D-Sep tree of one root, as the legal conditioning sets it yields."""

    __slots__ = (
        "acache",
        "cache",
        "label",
        "min_depth",
        "nodes",
        "order",
        "req",
        "reqs",
        "root",
        "ucache",
    )

    def __init__(self, bits: MarkBits, root: int, max_depth: int) -> None:
        self.root = root
        adj, arrow_in = bits.adj, bits.at[ARROW]
        used = [0] * len(adj)  # skeleton edges already walked: used[a] has bit b for a–b
        label: list[int] = []
        depth: list[int] = []
        req: list[int] = []  # bitmask of the labels on the path root -> occurrence
        queue: list[tuple[int, int, int]] = []  # breadth first: (previous, node, occurrence)
        nodes = used[root] = adj[root]
        for v in bit_nodes(nodes):  # the neighbours of the root, ascending
            used[v] = 1 << root
            queue.append((root, v, len(label)))
            label.append(v)
            depth.append(1)
            req.append(1 << v)
        for a, b, t in queue:  # the loop also visits what it appends
            d = depth[t] + 1
            if d > max_depth:  # so are all later ones
                break
            # c continues the path if a *-> b <-* c or a and c are adjacent
            into_b = arrow_in[b]
            step = adj[a] | into_b if (into_b >> a) & 1 else adj[a]
            rest = adj[b] & step & ~used[b] & ~(1 << a)
            if not rest:
                continue
            used[b] |= rest
            nodes |= rest
            base, bit_b = req[t], 1 << b
            for c in bit_nodes(rest):  # ascending
                used[c] |= bit_b
                queue.append((b, c, len(label)))
                label.append(c)
                depth.append(d)
                req.append(base | (1 << c))
        self.order = list(set(label))  # reference tie-break order (see module docstring)
        self.min_depth: dict[int, int] = {}  # breadth first: the first occurrence is closest
        self.reqs: dict[int, list[int]] = {}
        for v, dv, rq in zip(label, depth, req, strict=True):
            got = self.reqs.get(v)
            if got is None:
                self.reqs[v] = [rq]
                self.min_depth[v] = dv
            else:
                got.append(rq)
        self.nodes = nodes
        self.label = label
        self.req = req
        self.cache: dict[tuple[int, int], list[tuple[int, int, tuple[int, ...]]]] = {}
        self.acache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self.ucache: dict[int, list[int]] = {}

    def usable(self, allowed: int) -> list[int]:
        """The nodes, in enumeration order, that can be in a legal set inside the bitmask
        ``allowed``: those in it with an occurrence whose path stays inside it.

        Restricting to them first is exact: the combinations of a sub-sequence of the node
        order come in the same relative order, and a set inside ``allowed`` is legal or not
        regardless of the nodes outside it.
        """
        hit = self.ucache.get(allowed)
        if hit is None:
            reqs = self.reqs
            hit = self.ucache[allowed] = [
                v
                for v in self.order
                if (allowed >> v) & 1 and any(rq & ~allowed == 0 for rq in reqs[v])
            ]
        return hit

    def legal_arrays(
        self, size: int, allowed: int = -1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised :meth:`legal_sets` (node ids < 64): ``(masks, distance sums, sets)``
        as arrays, in the same order."""
        order = self.usable(allowed)
        key = (size, sum(1 << v for v in order))
        hit = self.acache.get(key)
        if hit is not None:
            return hit
        n_lab = len(order)
        if n_lab < size:
            out = (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros((0, size), np.intp))
            self.acache[key] = out
            return out
        pos = combination_rows(n_lab, size)
        nodes = np.array(order, dtype=np.intp)
        bits = np.left_shift(np.uint64(1), nodes.astype(np.uint64))
        cm = np.bitwise_or.reduce(bits[pos], axis=1)
        md = np.array([self.min_depth[v] for v in order], dtype=np.int64)
        if md.max() == 1:  # every node is a neighbour of the root: every set is legal
            out = (cm, md[pos].sum(axis=1), nodes[pos])
            self.acache[key] = out
            return out
        # a node at depth 1 is reachable on its own; only sets with a deeper node need the
        # path check, and only the occurrences of deeper nodes matter for it
        deep = md >= 2
        deep_index = np.cumsum(deep) - 1
        deep_index[~deep] = -1
        has_deep = deep[pos].any(axis=1)
        legal = ~has_deep
        todo = np.flatnonzero(has_deep)
        if todo.size:
            where = {v: k for k, v in enumerate(order)}
            occ_pos = np.array([where.get(v, -1) for v in self.label], dtype=np.intp)
            sel = occ_pos >= 0
            sel[sel] = deep[occ_pos[sel]]
            occ_pos = occ_pos[sel]
            occ_req = np.array(self.req, dtype=np.uint64)[sel]
            srt = np.argsort(occ_pos, kind="stable")
            occ_req = occ_req[srt]
            starts = np.searchsorted(occ_pos[srt], np.flatnonzero(deep))
            step = max(1, 4_000_000 // max(len(occ_req), 1))
            for a in range(0, todo.size, step):
                rows = todo[a : a + step]
                covered = (occ_req[None, :] & ~cm[rows][:, None]) == 0
                label_ok = np.logical_or.reduceat(covered, starts, axis=1)
                dp = deep_index[pos[rows]]
                ok = label_ok[np.arange(len(rows))[:, None], np.maximum(dp, 0)] | (dp < 0)
                legal[rows] = ok.all(axis=1)
        out = (cm[legal], md[pos[legal]].sum(axis=1), nodes[pos[legal]])
        self.acache[key] = out
        return out

    def legal_sets(self, size: int, allowed: int = -1) -> list[tuple[int, int, tuple[int, ...]]]:
        """``(mask, distance sum, set)`` of every legal set of ``size`` nodes inside the bitmask
        ``allowed``, in order."""
        order = self.usable(allowed)
        key = (size, sum(1 << v for v in order))
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        out: list[tuple[int, int, tuple[int, ...]]] = []
        reqs, md = self.reqs, self.min_depth
        for combo in combinations(order, size):
            mask = 0
            for v in combo:
                mask |= 1 << v
            ok = True
            for v in combo:
                for rq in reqs[v]:
                    if rq & ~mask == 0:
                        break
                else:
                    ok = False
                    break
            if ok:
                out.append((mask, sum(md[v] for v in combo), combo))
        self.cache[key] = out
        return out


class _ICDState:
    """One r ≥ 2 iteration: the graph's bitmask mirror and caches (PDS trees, possible
    ancestors, each edge's sets), kept valid as edges are removed (the marks do not change
    within an iteration)."""

    def __init__(self, bits: MarkBits, radius: int, order_aware: bool) -> None:
        self.radius = radius
        self.order_aware = order_aware
        self.bits = bits
        self.trees: dict[int, _PDSTree] = {}
        self.panc: dict[int, int] = {}
        # (i, j) -> (allowed, the trees used, candidates): valid while allowed and trees are
        self.memo: dict[tuple[int, int], tuple[int, list[_PDSTree], Candidates]] = {}

    def remove_edge(self, i: int, j: int) -> None:
        """Delete the edge i–j and drop the cached results that may have used it.

        Building a PDS tree reads the neighbours of its nodes (root included) and whether two
        of them are adjacent. Reading i–j from i either adds j to the tree or decides nothing
        the removal changes (the step is not allowed anyway), and "j is adjacent to i" only
        decides a step that then adds j; so a tree that does not hold both i and j would be
        built the same without the edge. Likewise the possible ancestors of t can only lose a
        node when i and j both are t or possible ancestors of t.
        """
        self.bits.remove_edge(i, j)
        ends = (1 << i) | (1 << j)
        for root in [r for r, t in self.trees.items() if (t.nodes | (1 << r)) & ends == ends]:
            del self.trees[root]
        for t in [t for t, a in self.panc.items() if (a | (1 << t)) & ends == ends]:
            del self.panc[t]

    def tree(self, node: int) -> _PDSTree:
        """The PDS tree of ``node`` with depth up to the radius."""
        t = self.trees.get(node)
        if t is None:
            t = self.trees[node] = _PDSTree(self.bits, node, self.radius)
        return t

    def ancestors(self, t: int) -> int:
        """Bitmask of the nodes with a possibly directed path into ``t`` (not t)."""
        out = self.panc.get(t)
        if out is None:
            # the x whose edge to v could be x -> v: no arrowhead at x, no tail at v
            adj, arrow_from, tail_at = self.bits.adj, self.bits.out[ARROW], self.bits.at[TAIL]
            out = todo = adj[t] & ~arrow_from[t] & ~tail_at[t]
            while todo:
                low = todo & -todo
                todo ^= low
                v = low.bit_length() - 1
                new = adj[v] & ~arrow_from[v] & ~tail_at[v] & ~out
                out |= new
                todo |= new
            out = self.panc[t] = out & ~(1 << t)
        return out

    def _reaches(self, root: int, allowed: int, size: int) -> bool:
        """Whether ``size`` nodes of ``allowed`` are reached from ``root`` by PDS paths (each
        inner node a collider or in a triangle) that stay inside ``allowed``.

        Necessary for a legal set inside ``allowed``: each of its nodes is reached by such a
        path through its own nodes. The search does not build the tree (no depth bound, no
        edge walked only once), so it is cheap and only over-approximates.
        """
        adj, arrow_in = self.bits.adj, self.bits.at[ARROW]
        seen = adj[root] & allowed
        walked = {root: seen}  # walked[b]: the c with b -> c already on the stack
        stack = [(root, v) for v in bit_nodes(seen)]
        while stack and seen.bit_count() < size:
            a, b = stack.pop()
            step = adj[a] | (arrow_in[b] if (arrow_in[b] >> a) & 1 else 0)
            done = walked.get(b, 0)
            nxt = adj[b] & step & allowed & ~done & ~(1 << a)
            if nxt:
                walked[b] = done | nxt
                seen |= nxt
                stack.extend((b, c) for c in bit_nodes(nxt))
        return seen.bit_count() >= size

    def candidates(self, i: int, j: int) -> Candidates:
        """The ICD-Sep conditioning sets of the edge i–j (size: the radius), in test order.

        Remembered per edge: the sets only depend on ``allowed`` and the trees of the sides
        that pass :meth:`_reaches` (which, like ``allowed``, can only shrink as edges go).
        """
        size = self.radius
        allowed = (self.ancestors(i) | self.ancestors(j)) & ~((1 << i) | (1 << j))
        if self.order_aware:
            allowed &= (1 << max(i, j)) - 1
        if allowed.bit_count() < size:
            return []
        hit = self.memo.get((i, j))
        if (
            hit is not None
            and hit[0] == allowed
            and all(self.trees.get(t.root) is t for t in hit[1])
        ):
            return hit[2]
        trees = [self.tree(root) for root in (i, j) if self._reaches(root, allowed, size)]
        out = _legal_candidates(trees, (i, j), size, allowed, len(self.bits.adj))
        self.memo[(i, j)] = (allowed, trees, out)
        return out


def _legal_candidates(
    trees: list[_PDSTree], ends: tuple[int, int], size: int, allowed: int, n: int
) -> Candidates:
    """The legal sets inside ``allowed`` of the trees of the edge's ends, each set once (at
    its best ``(distance, side, rank)``), in that order."""
    sides = [(ends.index(t.root), t) for t in trees]
    if not sides:
        return []
    if n <= 64 and sum(comb(len(t.usable(allowed)), size) for _, t in sides) > _NUMPY_MIN_SETS:
        return _candidates_np(sides, size, allowed)
    best: dict[int, tuple[int, int, int, tuple[int, ...]]] = {}
    for side, tree in sides:
        for rank, (mask, dist, combo) in enumerate(tree.legal_sets(size, allowed)):
            key = (dist, side, rank, combo)
            old = best.get(mask)
            if old is None or key < old:
                best[mask] = key
    return [k[3] for k in sorted(best.values())]


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
    state = _ICDState(bits, r, order_aware)
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
    state: _ICDState,
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


def _candidates_np(sides: list[tuple[int, _PDSTree]], size: int, allowed: int) -> np.ndarray:
    """:func:`_legal_candidates` from the trees' :meth:`_PDSTree.legal_arrays`."""
    parts = []
    for side, tree in sides:
        cm, dist, sets = tree.legal_arrays(size, allowed)
        if cm.size:
            parts.append((cm, dist, np.full(cm.size, side), np.arange(cm.size), sets))
    if not parts:
        return np.zeros((0, size), dtype=np.intp)
    if len(parts) == 1:
        cm, dist, side, rank, sets = parts[0]
    else:
        cm, dist, side, rank, sets = (np.concatenate(x) for x in zip(*parts, strict=False))
    order = np.lexsort((rank, side, dist))
    _, first = np.unique(cm[order], return_index=True)
    return sets[order[np.sort(first)]]


def icd(
    test: CITest,
    n_nodes: int,
    *,
    max_cond_size: int | None = None,
    order_aware: bool = False,
    _pre0: np.ndarray | None = None,
    _pre1: Sequence[int] | None = None,
) -> StructureResult:
    """Learn a PAG with ICD from a CI test over nodes ``0..n_nodes-1``.

    ``max_cond_size`` stops the iterations after r = max_cond_size (ICD is any-time: the
    result is then the r-representing PAG, completed by the tail rules).
    """
    _check_common(n_nodes, max_cond_size)
    n = n_nodes
    runner = TestRunner(test, n)
    limit = n - 2 if max_cond_size is None else min(max_cond_size, n - 2)
    sepsets: dict[tuple[int, int], tuple[int, ...]] = {}

    # r = 0: all pairs at once
    iu, ju = np.triu_indices(n, 1)
    if _pre0 is not None:
        ind0 = np.asarray(_pre0, dtype=bool)[iu, ju]
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
        hits = _pre1 if _pre1 is not None else _all_order1(runner, g)
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


# ---- r = 1 tie-break: the iteration order of a CPython set of small ints -------------------
# The reference tries the neighbours of i (then of j) in the iteration order of the Python set
# ``neighbours(i) - {j}``. For ints that order is the slot order of the set's hash table, which
# is ascending only when the table is larger than the largest node id. ``_r1_order`` simulates
# the table (size rules of CPython 3.11 ``set_merge``/``set_add_entry``, linear probing then
# perturbation), inserting the neighbours in ascending order. It matches the reference except
# when a slot collision depends on the reference's internal insertion history (rare).


def _set_insert(table: list[int | None], mask: int, key: int) -> None:
    perturb = key
    i = key & mask
    while True:
        for jj in range(10 if i + 9 <= mask else 1):
            v = table[i + jj]
            if v is None:
                table[i + jj] = key
                return
            if v == key:
                return
        perturb >>= 5
        i = (i * 5 + 1 + perturb) & mask


def _table_size(minused: int) -> int:
    t = 8
    while t <= minused:
        t <<= 1
    return t


def _set_fill(keys: list[int], size: int) -> list[int]:
    table: list[int | None] = [None] * size
    mask = size - 1
    for k in keys:
        if table[k & mask] is None:  # the home slot is free (the common case)
            table[k & mask] = k
        else:
            _set_insert(table, mask, k)
    return [k for k in table if k is not None]


def _r1_tables(s: int, has_drop: bool) -> tuple[int, int]:
    """Sizes of the hash tables of ``set(neigh)`` (``s`` keys) and of the difference."""
    t_x = _table_size(2 * s) if s >= 5 else 8
    return t_x, t_x if s >= 8 else (8 if s - has_drop <= 4 else 32)


@lru_cache(maxsize=1024)
def _r1_slots(s: int) -> int:
    """Size of the final table of ``set(neigh) - {drop}``, ``s`` keys with drop among them."""
    return _r1_tables(s, True)[1]


def _fold(mask: int, size: int) -> int:
    """The slots (key mod ``size``) of the keys in ``mask``, as a bitmask."""
    out, low = 0, (1 << size) - 1
    while mask:
        out |= mask & low
        mask >>= size
    return out


def _r1_order(neigh: list[int], drop: int) -> list[int]:
    """Order of ``set(neigh) - {drop}`` as CPython iterates it (``neigh`` ascending)."""
    s = len(neigh)
    if s == 0:
        return []
    t_x, t_final = _r1_tables(s, drop in neigh)
    if neigh[-1] < min(t_x, t_final):  # no wrap-around: ascending
        return [k for k in neigh if k != drop]
    mask = t_final - 1
    rest = [k for k in neigh if k != drop]
    slots = [k & mask for k in rest]
    if len(set(slots)) == len(slots):  # no collision: every key sits in its home slot
        return [k for _, k in sorted(zip(slots, rest, strict=True))]
    return list(_r1_collided(tuple(neigh), drop))


def _r1_collided(neigh: tuple[int, ...], drop: int) -> Sequence[int]:
    """:func:`_r1_order` when two keys share a slot: the simulated table."""
    if len(neigh) >= 8:  # the table layout does not depend on drop: cache it per neighbour set
        return [k for k in _r1_order_full(neigh) if k != drop]
    return _r1_order_sim(neigh, drop)


@lru_cache(maxsize=16384)
def _r1_order_full(neigh: tuple[int, ...]) -> tuple[int, ...]:
    size = _table_size(2 * len(neigh))
    return tuple(_set_fill(_set_fill(list(neigh), size), size))


@lru_cache(maxsize=65536)
def _r1_order_sim(neigh: tuple[int, ...], drop: int) -> tuple[int, ...]:
    s = len(neigh)  # < 8: the difference is built by adding the keys one by one
    x = _set_fill(list(neigh), _table_size(2 * s) if s >= 5 else 8)
    table: list[int | None] = [None] * 8
    fill = 0
    for k in x:
        if k == drop:
            continue
        _set_insert(table, len(table) - 1, k)
        fill += 1
        if fill * 5 >= (len(table) - 1) * 3:
            old = [v for v in table if v is not None]
            table = [None] * _table_size(fill * 4)
            for v in old:
                _set_insert(table, len(table) - 1, v)
    return tuple(v for v in table if v is not None)


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
                q, k = _r1_first(nbm[i], j, mi, hit & mi)
            elif hit & mj:
                q, k = _r1_first(nbm[j], i, mj, hit & mj)
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


def _r1_first(mask: int, drop: int, sub: int, hits: int) -> tuple[int, int]:
    """Position and node of the first node of ``hits`` in ``_r1_order(nodes, drop)`` restricted
    to ``sub`` (``nodes``: the bitmask ``mask``, ``drop`` in it; ``hits`` non-empty, in ``sub``).

    Where the keys other than ``drop`` sit in distinct slots of the final table, that order is
    by slot (ascending when the table is larger than every key), read off the bitmasks folded
    to the table size; otherwise the set is simulated.
    """
    size = _r1_slots(mask.bit_count())
    if not mask >> size:
        first = hits & -hits
        return (sub & (first - 1)).bit_count(), first.bit_length() - 1
    rest = mask & ~(1 << drop)
    if _fold(rest, size).bit_count() == rest.bit_count():
        slots = _fold(hits, size)
        first = slots & -slots
        k = first.bit_length() - 1
        while not (hits >> k) & 1:
            k += size
        return (_fold(sub, size) & (first - 1)).bit_count(), k
    seq = [k for k in _r1_collided(tuple(bit_nodes(mask)), drop) if (sub >> k) & 1]
    q = next(q for q, k in enumerate(seq) if (hits >> k) & 1)
    return q, seq[q]


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
