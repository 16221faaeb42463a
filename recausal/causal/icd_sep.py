"""ICD-Sep: the conditioning sets ICD tests an edge against at an iteration r >= 2.

A set Z is legal for the edge i–j when (1) |Z| = r; (2) Z lies in the PDS tree of i (or of j)
searched up to radius r, and every node of Z is reached from that end by a PDS path whose
nodes are all in Z; (3) every node of Z is a possible ancestor of i or j. The sets are tried
in order of the summed tree distance to the end (closest first); ties by (tree of i before
tree of j, enumeration order of the tree's nodes: the reference's, see
:mod:`recausal.causal._reference_order`).

:class:`ICDSepTree` enumerates the legal sets of one tree (with numpy for many combinations);
:class:`ICDSepState` keeps the trees, possible ancestors and each edge's sets of an iteration
until a removed edge can have changed them.
"""

from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

from recausal.causal._graph import MarkBits, combination_rows
from recausal.causal._marks import ARROW, TAIL
from recausal.causal._reference_order import tree_order
from recausal.causal.pds import edge_walk, reaches

__all__ = ["Candidates", "ICDSepState", "ICDSepTree"]

_NUMPY_MIN_SETS = 256  # below this many candidate combinations plain Python is faster

Candidates = list[tuple[int, ...]] | np.ndarray
"""Conditioning sets of one size, in test order: tuples, or an ``(m, size)`` array."""


class ICDSepTree:
    """ICD's PDS tree of one root (:func:`~recausal.causal.pds.edge_walk`), as the legal
    conditioning sets it yields.

    Args:
        bits: the graph's bitmask mirror.
        root: the root node.
        max_depth: the radius r (most edges from the root).
    """

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
        label, depth, req, nodes = edge_walk(bits, root, max_depth)
        self.order = tree_order(label)  # the reference's tie-break order
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

        Args:
            allowed: bitmask of the nodes a set may hold.

        Returns:
            The usable nodes, in enumeration order.
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
        """Vectorised :meth:`legal_sets` (node ids < 64), in the same order.

        Args:
            size: the set size.
            allowed: bitmask of the nodes a set may hold (-1: all).

        Returns:
            ``(masks, distance sums, sets)`` as arrays.
        """
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
        """Every legal set of ``size`` nodes inside the bitmask ``allowed``, in order.

        Args:
            size: the set size.
            allowed: bitmask of the nodes a set may hold (-1: all).

        Returns:
            ``(mask, distance sum, set)`` per legal set.
        """
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


class ICDSepState:
    """One r ≥ 2 iteration: the graph's bitmask mirror and caches (PDS trees, possible
    ancestors, each edge's sets), kept valid as edges are removed (the marks do not change
    within an iteration).

    Args:
        bits: the graph's bitmask mirror (edges are removed through :meth:`remove_edge`).
        radius: the iteration's r (set size and tree depth).
        order_aware: only nodes earlier than ``max(i, j)`` may condition.
    """

    def __init__(self, bits: MarkBits, radius: int, order_aware: bool) -> None:
        self.radius = radius
        self.order_aware = order_aware
        self.bits = bits
        self.trees: dict[int, ICDSepTree] = {}
        self.panc: dict[int, int] = {}
        # (i, j) -> (allowed, the trees used, candidates): valid while allowed and trees are
        self.memo: dict[tuple[int, int], tuple[int, list[ICDSepTree], Candidates]] = {}

    def remove_edge(self, i: int, j: int) -> None:
        """Delete the edge i–j and drop the cached results that may have used it.

        Building a PDS tree reads the neighbours of its nodes (root included) and whether two
        of them are adjacent. Reading i–j from i either adds j to the tree or decides nothing
        the removal changes (the step is not allowed anyway), and "j is adjacent to i" only
        decides a step that then adds j; so a tree that does not hold both i and j would be
        built the same without the edge. Likewise the possible ancestors of t can only lose a
        node when i and j both are t or possible ancestors of t.

        Args:
            i: one end of the edge.
            j: the other end.
        """
        self.bits.remove_edge(i, j)
        ends = (1 << i) | (1 << j)
        for root in [r for r, t in self.trees.items() if (t.nodes | (1 << r)) & ends == ends]:
            del self.trees[root]
        for t in [t for t, a in self.panc.items() if (a | (1 << t)) & ends == ends]:
            del self.panc[t]

    def tree(self, node: int) -> ICDSepTree:
        """The PDS tree of ``node`` with depth up to the radius (cached).

        Args:
            node: the root.

        Returns:
            The tree.
        """
        t = self.trees.get(node)
        if t is None:
            t = self.trees[node] = ICDSepTree(self.bits, node, self.radius)
        return t

    def ancestors(self, t: int) -> int:
        """The nodes with a possibly directed path into ``t`` (cached).

        Args:
            t: the node.

        Returns:
            Their bitmask (``t`` excluded).
        """
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

    def candidates(self, i: int, j: int) -> Candidates:
        """The ICD-Sep conditioning sets of the edge i–j (size: the radius), in test order.

        Remembered per edge: the sets only depend on ``allowed`` and the trees of the sides
        that pass :func:`~recausal.causal.pds.reaches` (which, like ``allowed``, can only
        shrink as edges go).

        Args:
            i: one end of the edge.
            j: the other end.

        Returns:
            The sets, tuples or an ``(m, size)`` array.
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
        trees = [self.tree(root) for root in (i, j) if reaches(self.bits, root, allowed, size)]
        out = _legal_candidates(trees, (i, j), size, allowed, len(self.bits.adj))
        self.memo[(i, j)] = (allowed, trees, out)
        return out


def _legal_candidates(
    trees: list[ICDSepTree], ends: tuple[int, int], size: int, allowed: int, n: int
) -> Candidates:
    """The legal sets inside ``allowed`` of the trees of the edge's ends, each set once (at
    its best ``(distance, side, rank)``), in that order.

    Args:
        trees: the trees of (some of) the edge's ends.
        ends: the edge ``(i, j)``.
        size: the set size.
        allowed: bitmask of the nodes a set may hold.
        n: number of nodes of the graph.

    Returns:
        The sets, tuples or an ``(m, size)`` array.
    """
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


def _candidates_np(sides: list[tuple[int, ICDSepTree]], size: int, allowed: int) -> np.ndarray:
    """:func:`_legal_candidates` from the trees' :meth:`ICDSepTree.legal_arrays`."""
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
