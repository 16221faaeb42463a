"""Possible-d-separation (PDS) searches: every walk over possible-d-separating paths of the
causal core lives here.

A path from a root is possible-d-separating when every inner node ``v`` of a step
``u – v – w`` is a collider (``u *-> v <-* w``) or sits in a triangle (``u``, ``w`` adjacent)
(Spirtes, Glymour & Scheines). Two walking disciplines are in use, and both are kept because
each one is fixed by what it must reproduce:

* each *ordered* edge expanded once, breadth first (:func:`pds_search`): Possible-D-Sep for
  FCI (:func:`possible_dsep`) and the :class:`PDSTree` the CLEANN explainer searches
  (:func:`pds_tree`; see ``docs/pag-schema.md``);
* each *skeleton* edge walked once, in either direction, breadth first on bitmasks
  (:func:`edge_walk`): the PDS tree of ICD, as the reference implementation
  (IntelLabs/causality-lab) builds it, so that ICD chooses the same separating sets.
  :func:`reaches` is its cheap, unbounded over-approximation, used to skip trees.

A little over 400 lines because every PDS walk is kept here, in one place, as said above.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np

from recausal._checks import is_int
from recausal.causal._graph import MarkBits, adjacency_sets, bit_nodes, combination_rows
from recausal.causal._marks import ARROW, NONE
from recausal.causal._validate import validate_node
from recausal.errors import InvalidInputError

__all__ = ["EdgeWalk", "PDSTree", "edge_walk", "pds_search", "pds_tree", "possible_dsep", "reaches"]

Marks = Sequence[Sequence[int]]
"""A mark matrix read as ``marks[u][v]``: a numpy ``(n, n)`` array or a list of lists."""
Adjacency = Mapping[int, Iterable[int]] | Sequence[Iterable[int]]
"""The neighbours of each node, indexed by node."""

#: up to this many subsets of one summed distance are built and sorted at once (numpy); more
#: are split by their most recent member
_SORT_ALL_SETS = 200_000


# ---------------------------------------------------------------------------------------------
# each ordered edge once: FCI's Possible-D-Sep and the explainer's tree
# ---------------------------------------------------------------------------------------------


def pds_search(
    marks: Marks,
    adjacency: Adjacency,
    root: int,
    max_depth: int | None = None,
    allowed: frozenset[int] | None = None,
) -> tuple[dict[int, int], dict[int, int], dict[int, tuple[int, ...]]]:
    """Breadth-first search over possible-d-separating paths starting at ``root``.

    A state is an ordered edge ``(u, v)`` (arrived at ``v`` from ``u``); each state is expanded
    once, the usual edge-based way to compute Possible-D-Sep. From ``(u, v)`` the search moves
    to ``w`` (``w`` not ``u``, not the root) when ``u *-> v <-* w`` (``v`` a collider) or ``u``
    and ``w`` are adjacent (a triangle). Neighbours are visited in ascending order. Being
    edge-based, a recorded route may in principle pass a node twice (a walk); every step on it
    satisfies the condition.

    Args:
        marks: the mark matrix (``marks[u][v]``: the mark at ``v``).
        adjacency: the neighbours of each node (consistent with ``marks``).
        root: the start node.
        max_depth: most edges from the root, or ``None`` (unbounded).
        allowed: only nodes in this set may be reached (``None``: all).

    Returns:
        ``(distance, parent, path)`` per reached node (the root at distance 0, without a
        parent), for the first route found to each.
    """
    dist = {root: 0}
    parent: dict[int, int] = {}
    paths = {root: (root,)}
    queue: deque[tuple[int, ...]] = deque()
    visited: set[tuple[int, int]] = set()
    if max_depth == 0:
        return dist, parent, paths
    for v in sorted(adjacency[root]):
        if allowed is not None and v not in allowed:
            continue
        visited.add((root, v))
        dist[v], parent[v], paths[v] = 1, root, (root, v)
        queue.append((root, v))
    while queue:
        path = queue.popleft()
        if max_depth is not None and len(path) - 1 >= max_depth:
            continue
        u, v = path[-2], path[-1]
        for w in sorted(adjacency[v]):
            if w in (u, root) or (v, w) in visited:
                continue
            if allowed is not None and w not in allowed:
                continue
            triangle = marks[u][w] != NONE
            collider = marks[u][v] == ARROW and marks[w][v] == ARROW
            if not (triangle or collider):
                continue
            visited.add((v, w))
            new_path = (*path, w)
            if w not in dist:
                dist[w], parent[w], paths[w] = len(new_path) - 1, v, new_path
            queue.append(new_path)
    return dist, parent, paths


def possible_dsep(marks: Marks, adjacency: Adjacency, x: int) -> set[int]:
    """Possible-D-Sep(x): the nodes reachable from x on a possible-d-separating path.

    Args:
        marks: the mark matrix (``marks[u][v]``: the mark at ``v``).
        adjacency: the neighbours of each node.
        x: the node.

    Returns:
        The reached nodes, ``x`` excluded.
    """
    reached = pds_search(marks, adjacency, x)[0]
    del reached[x]
    return set(reached)


def pds_tree(
    marks: np.ndarray,
    root: int | None = None,
    max_depth: int | None = None,
    *,
    adjacency: Mapping[int, frozenset[int]] | None = None,
) -> PDSTree:
    """Possible-d-separation tree rooted at ``root``.

    A node is reached along a path from the root on which every consecutive triple
    ``<x, y, z>`` has ``y`` a collider (``x *-> y <-* z``) or ``x, z`` adjacent (a triangle).

    Args:
        marks: a valid ``(n, n)`` mark matrix (e.g. a learned structure's; not validated).
        root: the root node (default: the last node, the target).
        max_depth: most edges from the root, or ``None`` (unbounded).
        adjacency: the neighbours of each node, if already known.

    Returns:
        The tree.
    """
    arr = np.asarray(marks)
    n = arr.shape[0]
    root = n - 1 if root is None else validate_node(root, n, "root")
    if max_depth is not None and (not is_int(max_depth) or max_depth < 0):
        raise InvalidInputError(f"max_depth must be a non-negative int or None; got {max_depth!r}")
    max_depth = None if max_depth is None else int(max_depth)
    if adjacency is None:
        adjacency = adjacency_sets(arr)
    rows = arr.tolist()  # fast scalar reads
    dist, parent, paths = pds_search(rows, adjacency, root, max_depth)
    return PDSTree(
        root=root,
        nodes=MappingProxyType(dist),
        parent=MappingProxyType(parent),
        max_depth=max_depth,
        _paths=MappingProxyType(paths),
        _adjacency=MappingProxyType(dict(adjacency)),
        _marks=rows,
    )


@dataclass(frozen=True, eq=False)
class PDSTree:
    """Breadth-first possible-d-separation tree rooted at one node of a PAG (see
    :func:`pds_tree`; fields beyond ``parent`` are filled in by it).

    ``nodes`` maps every reached node (the root included, at 0) to its tree depth: the number
    of edges of the first, shortest possible-d-separating path the search found to it.
    ``parent`` maps every non-root node to the node before it on that path (the root has no
    entry). Distances strictly decrease along ``parent`` links, so they form a tree; a parent's
    own distance can be *smaller* than its child's minus one when the child is only reachable
    through the parent from a longer approach (see ``docs/pag-schema.md``).
    """

    root: int
    nodes: Mapping[int, int]
    parent: Mapping[int, int]
    max_depth: int | None = None
    _paths: Mapping[int, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _adjacency: Mapping[int, Iterable[int]] = field(default_factory=dict, repr=False)
    _marks: Marks | None = field(default=None, repr=False)

    @property
    def members(self) -> tuple[int, ...]:
        """Non-root nodes, closest first; ties: more recent (higher position) first."""
        return tuple(sorted((v for v in self.nodes if v != self.root), key=self._node_key))

    @property
    def depth(self) -> int:
        """Largest distance of a node in the tree (0 for a root alone)."""
        return max(self.nodes.values())

    def path(self, node: int) -> tuple[int, ...]:
        """The route (root first) along which the search first reached ``node``.

        Every consecutive triple on it is a collider or a triangle; as the search is
        edge-based the route is a path in all but contrived graphs (it could repeat a node).

        Args:
            node: a node of the tree.

        Returns:
            The nodes of the route, the root first and ``node`` last.
        """
        if node not in self.nodes:
            raise InvalidInputError(f"node {node!r} is not in the PDS tree rooted at {self.root}")
        return self._paths[node]

    def _node_key(self, v: int) -> tuple[int, int]:
        return (self.nodes[v], -v)

    def candidate_sets(
        self, size: int, *, closed: bool = False, skip_within: frozenset[int] | None = None
    ) -> Iterator[tuple[int, ...]]:
        """Subsets of the non-root tree nodes with ``size`` members, best first.

        Order: by the summed distance of the members (smaller first); ties by the members'
        positions compared from the most recent down (the set holding the most recent node
        comes first, then by the next most recent, ...). Each set is a tuple in ascending node
        order. Enumeration is lazy, one summed distance at a time, so taking the first few
        sets of a large tree is cheap.

        With ``closed=True`` only sets where every member is reachable from the root along a
        possible-d-separating path whose other nodes all lie in the set are yielded (the
        ICD-Sep condition the reference CLEANN explainer applies to candidate sets).

        Args:
            size: number of members, >= 1.
            closed: only sets closed under the members' paths (see above).
            skip_within: leave out the sets whose members all lie in it.

        Returns:
            A lazy iterator of ascending node tuples.
        """
        if not is_int(size) or size < 1:
            raise InvalidInputError(f"size must be a positive int; got {size!r}")
        order = self.members
        if int(size) > len(order):
            return iter(())
        if not closed:
            return self._by_total(order, int(size), skip_within or frozenset())
        sets = (c for c in self._walk(order, int(size)) if self._is_closed(c))
        if skip_within:
            sets = (c for c in sets if not skip_within.issuperset(c))
        return sets

    def _walk(self, order: tuple[int, ...], size: int) -> Iterator[tuple[int, ...]]:
        """Every subset in key order, best-first over a heap (see :meth:`candidate_sets`)."""
        m = len(order)
        dist = [self.nodes[v] for v in order]

        def key(idx: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
            nodes = sorted((order[k] for k in idx), reverse=True)
            return (sum(dist[k] for k in idx), tuple(-v for v in nodes))

        # `order` is sorted by (distance, -position): moving one member to a later index never
        # lowers the key, so a best-first walk over such moves yields subsets in key order.
        start = tuple(range(size))
        heap = [(key(start), start)]
        seen = {start}
        while heap:
            _, idx = heapq.heappop(heap)
            yield tuple(sorted(order[k] for k in idx))
            taken = set(idx)
            for pos, k in enumerate(idx):
                nxt = k + 1
                if nxt < m and nxt not in taken:
                    cand = tuple(sorted((*idx[:pos], nxt, *idx[pos + 1 :])))
                    if cand not in seen:
                        seen.add(cand)
                        heapq.heappush(heap, (key(cand), cand))

    def _by_total(
        self, order: tuple[int, ...], size: int, skip: frozenset[int]
    ) -> Iterator[tuple[int, ...]]:
        """Every subset not inside ``skip`` in key order, one summed distance at a time."""
        groups = _groups(order, self.nodes)
        for total in _totals([(d, len(groups[d])) for d in groups], size):
            yield from self._of_total(list(order), size, total, skip)

    def _of_total(
        self, nodes: list[int], size: int, total: int, skip: frozenset[int]
    ) -> Iterator[tuple[int, ...]]:
        """The subsets of ``nodes`` with ``size`` members and summed distance ``total``, not
        inside ``skip``, in tie order (members from the most recent down, larger first). Up to
        ``_SORT_ALL_SETS`` of them are built and sorted at once (numpy); more are split by
        their most recent member, each part in turn, so only the parts asked for are built."""
        if size == 0:
            if total == 0 and not skip:  # the empty set lies inside any set
                yield ()
            return
        groups = _groups(nodes, self.nodes)
        dists = sorted(groups)
        parts = _compositions_of([len(groups[d]) for d in dists], dists, size, total)
        count = sum(
            math.prod(math.comb(len(groups[d]), c) for d, c in zip(dists, p, strict=True))
            for p in parts
        )
        if count == 0:
            return
        if count <= _SORT_ALL_SETS:
            sets = np.concatenate([_subsets_of(groups, dists, p) for p in parts])
            if skip:
                sets = sets[~np.isin(sets, list(skip)).all(axis=1)]
            sets.sort(axis=1)
            rank = np.lexsort(tuple(-sets[:, k] for k in range(size)))
            yield from map(tuple, sets[rank].tolist())
            return
        for v in sorted(nodes, reverse=True):
            below = [w for w in nodes if w < v]
            rest = self._of_total(
                below, size - 1, total - self.nodes[v], skip if v in skip else frozenset()
            )
            yield from ((*tail, v) for tail in rest)

    def _is_closed(self, subset: tuple[int, ...]) -> bool:
        if self._marks is None:
            return True
        reached = pds_search(
            self._marks, self._adjacency, self.root, self.max_depth, allowed=frozenset(subset)
        )[0]
        return all(v in reached for v in subset)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form.

        Returns:
            ``{"root", "max_depth", "nodes": [{"id", "distance", "parent", "path"}, ...]}``.
        """
        return {
            "root": self.root,
            "max_depth": self.max_depth,
            "nodes": [
                {
                    "id": v,
                    "distance": self.nodes[v],
                    "parent": self.parent.get(v),
                    "path": list(self._paths[v]),
                }
                for v in (self.root, *self.members)
            ],
        }


# ---------------------------------------------------------------------------------------------
# each skeleton edge once, on bitmasks: ICD's tree
# ---------------------------------------------------------------------------------------------


class EdgeWalk(NamedTuple):
    """The occurrences of an ICD PDS-tree walk, in breadth-first order.

    ``label[t]``: the node of occurrence ``t``; ``depth[t]``: its distance from the root;
    ``req[t]``: bitmask of the nodes on its path (root excluded, the node included);
    ``nodes``: bitmask of every reached node.
    """

    label: list[int]
    depth: list[int]
    req: list[int]
    nodes: int


def edge_walk(bits: MarkBits, root: int, max_depth: int) -> EdgeWalk:
    """ICD's PDS tree of ``root``: breadth first, each skeleton edge walked at most once.

    Args:
        bits: the graph's bitmask mirror.
        root: the root node.
        max_depth: most edges from the root.

    Returns:
        The walk's occurrences (neighbours visited in ascending order).
    """
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
    return EdgeWalk(label, depth, req, nodes)


def reaches(bits: MarkBits, root: int, allowed: int, size: int) -> bool:
    """Whether ``size`` nodes of ``allowed`` are reached from ``root`` by PDS paths (each
    inner node a collider or in a triangle) that stay inside ``allowed``.

    Necessary for a legal ICD set inside ``allowed``: each of its nodes is reached by such a
    path through its own nodes. The search does not build the tree (no depth bound, no
    edge walked only once), so it is cheap and only over-approximates.

    Args:
        bits: the graph's bitmask mirror.
        root: the start node.
        allowed: bitmask of the nodes the paths may use.
        size: how many nodes must be reached.

    Returns:
        True if at least ``size`` nodes are reached.
    """
    adj, arrow_in = bits.adj, bits.at[ARROW]
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


def _totals(groups: list[tuple[int, int]], size: int) -> list[int]:
    """The summed distances a set of ``size`` members can have, drawing from groups of
    ``(distance, number of nodes)``; ascending."""
    reach: list[set[int]] = [{0}] + [set() for _ in range(size)]
    for dist, n in groups:
        for have in range(size - 1, -1, -1):  # from the top: each group is drawn from once
            for c in range(1, min(n, size - have) + 1):
                reach[have + c] |= {t + c * dist for t in reach[have]}
    return sorted(reach[size])


def _groups(nodes: Iterable[int], dist: Mapping[int, int]) -> dict[int, list[int]]:
    """``nodes`` by their distance."""
    groups: dict[int, list[int]] = {}
    for v in nodes:
        groups.setdefault(dist[v], []).append(v)
    return groups


def _compositions_of(
    available: list[int], dists: list[int], size: int, total: int
) -> list[tuple[int, ...]]:
    """The tuples of counts (one per group of ``available`` nodes at ``dists``, at most its
    size) that draw ``size`` members with summed distance ``total``."""
    out: list[tuple[int, ...]] = []

    def draw(i: int, left: int, budget: int, counts: tuple[int, ...]) -> None:
        if i == len(available):
            if left == 0 and budget == 0:
                out.append(counts)
            return
        for c in range(min(available[i], left), -1, -1):
            if c * dists[i] <= budget:
                draw(i + 1, left - c, budget - c * dists[i], (*counts, c))

    draw(0, size, total, ())
    return out


def _subsets_of(
    groups: dict[int, list[int]], dists: list[int], counts: tuple[int, ...]
) -> np.ndarray:
    """Every subset taking ``counts[i]`` members of the group at ``dists[i]``: a
    ``(count, size)`` array (members unsorted)."""
    out = np.zeros((1, 0), dtype=np.int64)
    for d, c in zip(dists, counts, strict=True):
        if c == 0:
            continue
        picks = np.asarray(groups[d], dtype=np.int64)[combination_rows(len(groups[d]), c)]
        out = np.concatenate(
            [np.repeat(out, len(picks), axis=0), np.tile(picks, (len(out), 1))], axis=1
        )
    return out
