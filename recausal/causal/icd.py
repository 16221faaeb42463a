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
of users, one call for the whole batch, see ``recausal.causal.learn``); for r ≥ 2 the legal
sets of a PDS tree are enumerated with numpy bitmasks (restricted first to the possible
ancestors of the edge's ends), trees are rebuilt only when a removed edge touches them, and
the candidate sets of an edge are decided in growing vectorised chunks.

``order_aware``: nodes are in token order; a later node is never an ancestor of an earlier
one. Edges ``i``–``j``, ``i < j`` carry an arrowhead at ``j`` from the start and through every
orientation; no rule can then orient ``j → i``. Conditioning sets only use nodes earlier than
``max(i, j)`` (for r ≥ 2 this is implied by the possible-ancestor condition).
"""

from __future__ import annotations

from collections import deque
from functools import lru_cache
from itertools import chain, combinations
from math import comb

import numpy as np

from recausal.causal._graph import MarkGraph, StructureResult
from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.causal._orient import close_tail_rules, orient, sepset_deciders
from recausal.causal.citest import CITest
from recausal.causal.fci import _check_common
from recausal.causal.skeleton import TestRunner

__all__ = ["icd"]

_NUMPY_MIN_SETS = 256  # below this many candidate combinations plain Python is faster


class _PDSTree:
    """Possible-D-Sep tree of one root, as the legal conditioning sets it yields."""

    __slots__ = ("acache", "cache", "label", "min_depth", "order", "req", "reqs")

    def __init__(self, g: MarkGraph, root: int, max_depth: int) -> None:
        adj, m = g.adj, g.m
        n = g.n
        used: set[int] = set()  # undirected skeleton edges already walked, as a*n+b (a<b)
        nbrs = sorted(adj[root])
        depth: list[int] = []
        req: list[int] = []  # bitmask of the labels on the path root -> occurrence
        label: list[int] = []
        queue: deque[tuple[int, int, int]] = deque()
        for v in nbrs:
            used.add(root * n + v if root < v else v * n + root)
            label.append(v)
            depth.append(1)
            req.append(1 << v)
            queue.append((root, v, len(label) - 1))
        found = list(nbrs)
        while queue:
            a, b, t = queue.popleft()
            if depth[t] >= max_depth:
                continue
            row_a = m[a]
            for c in sorted(adj[b]):
                key = b * n + c if b < c else c * n + b
                if key in used or c == a:
                    continue
                if c in adj[a] or (row_a[b] == ARROW and m[c][b] == ARROW):
                    used.add(key)
                    label.append(c)
                    depth.append(depth[t] + 1)
                    req.append(req[t] | (1 << c))
                    queue.append((b, c, len(label) - 1))
                    found.append(c)
        self.order = list(set(found))  # reference tie-break order (see module docstring)
        self.min_depth: dict[int, int] = {}
        self.reqs: dict[int, list[int]] = {}
        for v, d, rq in zip(label, depth, req, strict=False):
            if d < self.min_depth.get(v, 1 << 30):
                self.min_depth[v] = d
            self.reqs.setdefault(v, []).append(rq)
        self.label = label
        self.req = req
        self.cache: dict[int, list[tuple[int, int, tuple[int, ...]]]] = {}
        self.acache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}

    def touches(self, i: int, j: int) -> bool:
        """Whether node i or j occurs in the tree."""
        return i in self.min_depth or j in self.min_depth

    def legal_arrays(
        self, size: int, allowed: int = -1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised :meth:`legal_sets` (node ids < 64): ``(masks, distance sums, sets)``
        as arrays, in the same order, restricted to sets inside the bitmask ``allowed``.

        Restricting first is exact: the combinations of a sub-sequence of the node order come
        in the same relative order, and a set inside ``allowed`` is legal or not regardless
        of the nodes outside it.
        """
        order = [v for v in self.order if (allowed >> v) & 1]
        key = (size, sum(1 << v for v in order))
        hit = self.acache.get(key)
        if hit is not None:
            return hit
        n_lab = len(order)
        if n_lab < size:
            out = (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros((0, size), np.intp))
            self.acache[key] = out
            return out
        pos = _combo_index(n_lab, size)
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

    def legal_sets(self, size: int) -> list[tuple[int, int, tuple[int, ...]]]:
        """``(mask, distance sum, set)`` of every legal set of ``size`` nodes, in order."""
        hit = self.cache.get(size)
        if hit is not None:
            return hit
        out: list[tuple[int, int, tuple[int, ...]]] = []
        reqs, md = self.reqs, self.min_depth
        for combo in combinations(self.order, size):
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
        self.cache[size] = out
        return out


class _ICDState:
    """Caches (PDS trees, possible ancestors) valid until the skeleton changes."""

    def __init__(self, g: MarkGraph) -> None:
        self.g = g
        self.trees: dict[int, _PDSTree] = {}
        self.panc: list[int] | None = None
        self.radius = -1

    def invalidate(self, i: int, j: int) -> None:
        """The edge i–j was removed: drop the trees that could have walked or tested it.

        A PDS tree only looks at edges incident to its root or to nodes it reached (and at
        adjacency between a reached node and a neighbour of a reached node), so a tree in
        which neither i nor j occurs is unchanged.
        """
        for root in [r for r, t in self.trees.items() if r in (i, j) or t.touches(i, j)]:
            del self.trees[root]
        self.panc = None

    def tree(self, node: int, radius: int) -> _PDSTree:
        if radius != self.radius:
            self.trees.clear()
            self.radius = radius
        t = self.trees.get(node)
        if t is None:
            t = _PDSTree(self.g, node, radius)
            self.trees[node] = t
        return t

    def candidates(self, i: int, j: int, size: int, order_aware: bool) -> list[tuple[int, ...]]:
        if self.panc is None:
            self.panc = (
                _possible_ancestor_masks_np(self.g)
                if self.g.n <= 64
                else self.g.possible_ancestor_masks()
            )
        allowed = int(self.panc[i]) | int(self.panc[j])
        allowed &= ~((1 << i) | (1 << j))
        if order_aware:
            allowed &= (1 << max(i, j)) - 1
        small = (
            comb(len(self.tree(i, size).order), size) + comb(len(self.tree(j, size).order), size)
            <= _NUMPY_MIN_SETS
        )
        if self.g.n <= 64 and not small:
            return self._candidates_np(i, j, size, allowed)
        best: dict[int, tuple[int, int, int, tuple[int, ...]]] = {}
        for side, root in enumerate((i, j)):
            for rank, (mask, dist, combo) in enumerate(self.tree(root, size).legal_sets(size)):
                if mask & ~allowed:
                    continue
                key = (dist, side, rank, combo)
                old = best.get(mask)
                if old is None or key < old:
                    best[mask] = key
        return [k[3] for k in sorted(best.values())]

    def _candidates_np(self, i: int, j: int, size: int, allowed: int) -> np.ndarray:
        parts = []
        for side, root in enumerate((i, j)):
            cm, dist, sets = self.tree(root, size).legal_arrays(size, allowed)
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
    _pre1: np.ndarray | None = None,
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
    c0, c4 = sepset_deciders(sepsets)
    orient(g, c0, c4, order_aware=order_aware, tail_rules=False)
    reached = 0
    done = limit < 1

    # r = 1: one vectorised call for every (edge, node), then the sequential sweep
    if not done:
        ind1 = np.asarray(_pre1, dtype=bool) if _pre1 is not None else _all_order1(runner, g)
        any_cand = False
        adj = g.adj
        for i in range(n):
            nb_i = sorted(adj[i])  # refreshed when an edge of i is removed
            for j in [x for x in nb_i if x > i]:
                lim = j if order_aware else n
                ci = [k for k in _r1_order(nb_i, j) if k < lim]
                seen = set(ci)
                cand = ci + [k for k in _r1_order(sorted(adj[j]), i) if k < lim and k not in seen]
                if not cand:
                    continue
                any_cand = True
                row = ind1[i, j]
                for q, k in enumerate(cand):
                    if row[k]:
                        runner.n_consulted += q + 1
                        g.remove_edge(i, j)
                        sepsets[(i, j)] = (k,)
                        nb_i = sorted(adj[i])
                        break
                else:
                    runner.n_consulted += len(cand)
        if any_cand:
            reached = 1
        c0, c4 = sepset_deciders(sepsets)
        orient(g, c0, c4, order_aware=order_aware, tail_rules=True)
        done = not any_cand

    # r >= 2: ICD-Sep conditioning sets from PDS trees
    r = 2
    while not done and r <= limit:
        state = _ICDState(g)
        any_cand = False
        for i in range(n):
            for j in range(i + 1, n):
                if j not in g.adj[i]:
                    continue
                cand = state.candidates(i, j, r, order_aware)
                if len(cand) == 0:
                    continue
                any_cand = True
                q = runner.first_independent(i, j, cand)
                if q >= 0:
                    g.remove_edge(i, j)
                    sepsets[(i, j)] = tuple(sorted(int(x) for x in cand[q]))
                    state.invalidate(i, j)
        if not any_cand:
            done = True
            break
        reached = r
        c0, c4 = sepset_deciders(sepsets)
        orient(g, c0, c4, order_aware=order_aware, tail_rules=False)
        r += 1

    _, c4 = sepset_deciders(sepsets)
    close_tail_rules(g, c4)
    return StructureResult(
        marks=g.to_array(),
        sepsets=sepsets,
        n_tests=runner.n_consulted,
        max_cond_size_reached=reached,
        algorithm="icd",
        order_aware=order_aware,
        params={"max_cond_size": max_cond_size},
    )


def _possible_ancestor_masks_np(g: MarkGraph) -> list[int]:
    """As :meth:`MarkGraph.possible_ancestor_masks`, by boolean matrix closure (n <= 64)."""
    m = np.array(g.m, dtype=np.int8)
    # pd[x, y]: the edge x *-* y could be x -> y (no arrowhead at x, no tail at y)
    pd = (m != 0) & (m != TAIL) & (m.T != ARROW)
    reach = pd.copy()
    while True:
        nxt = reach | ((reach.astype(np.uint8) @ reach.astype(np.uint8)) > 0)
        if np.array_equal(nxt, reach):
            break
        reach = nxt
    np.fill_diagonal(reach, False)
    bits = np.left_shift(np.uint64(1), np.arange(g.n, dtype=np.uint64))
    return (reach.T.astype(np.uint64) * bits).sum(axis=1, dtype=np.uint64).tolist()


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
    for k in keys:
        _set_insert(table, size - 1, k)
    return [k for k in table if k is not None]


def _r1_order(neigh: list[int], drop: int) -> list[int]:
    """Order of ``set(neigh) - {drop}`` as CPython iterates it (``neigh`` ascending)."""
    s = len(neigh)
    if s == 0:
        return []
    t_x = _table_size(2 * s) if s >= 5 else 8
    t_final = t_x if s >= 8 else (8 if s - (drop in neigh) <= 4 else 32)
    if neigh[-1] < min(t_x, t_final):  # no wrap-around: ascending
        return [k for k in neigh if k != drop]
    mask = t_final - 1
    rest = [k for k in neigh if k != drop]
    slots = [k & mask for k in rest]
    if len(set(slots)) == len(slots):  # no collision: every key sits in its home slot
        return [k for _, k in sorted(zip(slots, rest, strict=True))]
    if s >= 8:  # the table layout does not depend on drop: cache it per neighbour set
        return [k for k in _r1_order_full(tuple(neigh)) if k != drop]
    return list(_r1_order_sim(tuple(neigh), drop))


@lru_cache(maxsize=16384)
def _r1_order_full(neigh: tuple[int, ...]) -> tuple[int, ...]:
    size = _table_size(2 * len(neigh))
    return tuple(_set_fill(_set_fill(list(neigh), size), size))


@lru_cache(maxsize=65536)
def _r1_order_sim(neigh: tuple[int, ...], drop: int) -> tuple[int, ...]:
    s = len(neigh)
    neigh = list(neigh)
    x = _set_fill(neigh, _table_size(2 * s) if s >= 5 else 8)
    if s >= 8:  # set_copy_and_difference: one table sized for all of x, then discard
        return tuple(k for k in _set_fill(x, _table_size(2 * s)) if k != drop)
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


@lru_cache(maxsize=256)
def _combo_index(n: int, size: int) -> np.ndarray:
    """All ``size``-combinations of ``range(n)`` in itertools order, as an array."""
    count = comb(n, size)
    flat = np.fromiter(
        chain.from_iterable(combinations(range(n), size)), dtype=np.intp, count=count * size
    )
    out = flat.reshape(count, size)
    out.setflags(write=False)
    return out


def _all_order1(runner: TestRunner, g: MarkGraph) -> np.ndarray:
    """``ind[i, j, k]``: decision of ``i ⫫ j | k`` for every remaining edge and every k."""
    n = g.n
    ind = np.zeros((n, n, n), dtype=bool)
    pairs = [(i, j) for i in range(n) for j in g.adj[i] if j > i]
    if not pairs or n < 3:
        return ind
    p = np.array(pairs, dtype=np.intp)
    e = len(p)
    ii = np.repeat(p[:, 0], n)
    jj = np.repeat(p[:, 1], n)
    kk = np.tile(np.arange(n, dtype=np.intp), e)
    keep = (kk != ii) & (kk != jj)
    res = np.zeros(e * n, dtype=bool)
    res[keep] = runner.decide(ii[keep], jj[keep], kk[keep, None])
    ind[ii, jj, kk] = res
    return ind
