"""The partial ancestral graph (PAG) over one user's sequence, and its possible-d-separation tree.

Node ``k`` is history position ``k`` (oldest first); by default the last node ``n - 1`` is the
target (the recommended item). Edge marks follow :mod:`recausal.causal._marks`:
``marks[i, j]`` is the mark **at node j** on the edge ``i *-* j``.

The serialised form is described in ``docs/pag-schema.md``.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from os import PathLike
from types import MappingProxyType
from typing import Any

import networkx as nx
import numpy as np

from recausal.causal._graph import combination_rows
from recausal.causal._marks import ARROW, CIRCLE, NAME, NONE, TAIL
from recausal.errors import InvalidInputError

__all__ = [
    "MARK_CODES",
    "PAG",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "PDSTree",
    "aggregate_pags",
]

SCHEMA_NAME = "recausal.pag"
SCHEMA_VERSION = 1

MARK_CODES: Mapping[str, int] = MappingProxyType({v: k for k, v in NAME.items()})
"""Mark name (``"circle"``, ``"arrow"``, ``"tail"``) → code."""

# Symbols of an edge written from its lower-numbered end to its higher-numbered end.
_LEFT = {CIRCLE: "o", ARROW: "<", TAIL: "-"}
_RIGHT = {CIRCLE: "o", ARROW: ">", TAIL: "-"}
_VALID_CODES = (NONE, CIRCLE, ARROW, TAIL)
_AGGREGATE_RULES = ("majority", "union", "all")


def edge_text(mark_at_low: int, mark_at_high: int) -> str:
    """The 3-character text of an edge read from its lower to its higher node, e.g. ``"o->"``."""
    return f"{_LEFT[mark_at_low]}-{_RIGHT[mark_at_high]}"


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def _validate_marks(marks: Any) -> np.ndarray:
    try:
        arr = np.asarray(marks)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInputError(
            f"marks must be a square (n, n) integer matrix; got {marks!r}"
        ) from exc
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InvalidInputError(f"marks must be a square (n, n) matrix; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InvalidInputError("marks must have at least one node; got shape (0, 0)")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InvalidInputError("marks must hold integer mark codes; got non-integer floats")
    elif arr.dtype.kind not in "iu":
        raise InvalidInputError(f"marks must hold integer mark codes; got dtype {arr.dtype}")
    codes = arr.astype(np.int64)
    bad = np.argwhere(~np.isin(codes, _VALID_CODES))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise InvalidInputError(
            f"marks[{i}, {j}] = {codes[i, j]} is not an edge-mark code "
            "(allowed: 0=none, 1=circle, 2=arrow, 3=tail)"
        )
    diag = np.flatnonzero(np.diag(codes))
    if diag.size:
        i = int(diag[0])
        raise InvalidInputError(
            f"marks[{i}, {i}] = {codes[i, i]}: a node cannot have an edge to itself "
            "(the diagonal must be 0)"
        )
    asym = np.argwhere((codes == NONE) != (codes.T == NONE))
    if asym.size:
        i, j = (int(x) for x in asym[0])
        raise InvalidInputError(
            f"marks[{i}, {j}] = {codes[i, j]} but marks[{j}, {i}] = {codes[j, i]}: an edge needs "
            "a mark at both ends (both codes zero, or both non-zero)"
        )
    out = codes.astype(np.int8)
    out.flags.writeable = False
    return out


def _validate_node(value: Any, n: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidInputError(f"{name} must be a node index (int); got {value!r}")
    if not 0 <= int(value) < n:
        raise InvalidInputError(f"{name} = {value} is out of range for {n} nodes (0..{n - 1})")
    return int(value)


def _validate_items(items: Sequence[Any] | None, n: int) -> tuple[str, ...] | None:
    if items is None:
        return None
    if isinstance(items, str | bytes):
        raise InvalidInputError(f"items must be a list of item tokens, one per node; got {items!r}")
    items = tuple(items)
    if len(items) != n:
        raise InvalidInputError(
            f"items has {len(items)} entries but marks has {n} nodes; give one item token per node"
        )
    return tuple(str(x) for x in items)


def _validate_sepsets(
    sepsets: Mapping[Any, Iterable[int]] | None, marks: np.ndarray
) -> dict[tuple[int, int], tuple[int, ...]]:
    if sepsets is None:
        return {}
    if not isinstance(sepsets, Mapping):
        raise InvalidInputError(f"sepsets must be a dict {{(i, j): (k, ...)}}; got {sepsets!r}")
    n = marks.shape[0]
    out: dict[tuple[int, int], tuple[int, ...]] = {}
    for key, value in sepsets.items():
        if not isinstance(key, tuple | list) or len(key) != 2:
            raise InvalidInputError(f"sepsets key {key!r} must be a pair of node indices (i, j)")
        i = _validate_node(key[0], n, f"sepsets key {key!r}: node")
        j = _validate_node(key[1], n, f"sepsets key {key!r}: node")
        if i == j:
            raise InvalidInputError(f"sepsets key {key!r} pairs a node with itself")
        i, j = min(i, j), max(i, j)
        if marks[i, j] != NONE:
            raise InvalidInputError(
                f"sepsets[{key!r}] is given but nodes {i} and {j} are adjacent in marks"
            )
        if (i, j) in out:
            raise InvalidInputError(f"sepsets has the pair ({i}, {j}) twice")
        try:
            members = tuple(value)
        except TypeError as exc:
            raise InvalidInputError(
                f"sepsets[{key!r}] must be a tuple of node indices; got {value!r}"
            ) from exc
        nodes = sorted({_validate_node(k, n, f"sepsets[{key!r}] member") for k in members})
        if i in nodes or j in nodes:
            raise InvalidInputError(f"sepsets[{key!r}] = {value!r} contains one of its own pair")
        out[(i, j)] = tuple(nodes)
    return dict(sorted(out.items()))


def _validate_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise InvalidInputError(f"meta must be a JSON-serialisable dict; got {type(meta).__name__}")
    try:
        # a deep, JSON-shaped copy: later changes to the caller's dict do not leak in
        return json.loads(json.dumps(dict(meta)))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"meta must be JSON-serialisable: {exc}") from exc


_SORT_ALL_SETS = 50_000  # up to this many subsets, sort them all at once rather than walk


def _adjacency_of(marks: np.ndarray) -> dict[int, frozenset[int]]:
    rows, cols = np.nonzero(marks)
    out: dict[int, set[int]] = {i: set() for i in range(marks.shape[0])}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        out[i].add(j)
    return {i: frozenset(s) for i, s in out.items()}


# ---------------------------------------------------------------------------------------------
# the PDS tree
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PDSTree:
    """Breadth-first possible-d-separation tree rooted at one node of a :class:`PAG`.

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
    _adjacency: Mapping[int, frozenset[int]] = field(default_factory=dict, repr=False)
    _marks: np.ndarray | None = field(default=None, repr=False)

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
        """
        if node not in self.nodes:
            raise InvalidInputError(f"node {node!r} is not in the PDS tree rooted at {self.root}")
        return self._paths[node]

    def _node_key(self, v: int) -> tuple[int, int]:
        return (self.nodes[v], -v)

    def candidate_sets(self, size: int, *, closed: bool = False) -> Iterator[tuple[int, ...]]:
        """Subsets of the non-root tree nodes with ``size`` members, best first.

        Order: by the summed distance of the members (smaller first); ties by the members'
        positions compared from the most recent down (the set holding the most recent node
        comes first, then by the next most recent, ...). Each set is a tuple in ascending node
        order. Enumeration is lazy (best-first over a heap), so large trees are cheap to start.

        With ``closed=True`` only sets where every member is reachable from the root along a
        possible-d-separating path whose other nodes all lie in the set are yielded (the
        ICD-Sep condition the reference CLEANN explainer applies to candidate sets).
        """
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise InvalidInputError(f"size must be a positive int; got {size!r}")
        return self._iter_sets(int(size), closed)

    def _iter_sets(self, size: int, closed: bool) -> Iterator[tuple[int, ...]]:
        order = self.members
        m = len(order)
        if size > m:
            return
        if not closed and math.comb(m, size) <= _SORT_ALL_SETS:
            yield from self._sorted_sets(order, size)
            return
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
            chosen = tuple(sorted(order[k] for k in idx))
            if not closed or self._is_closed(chosen):
                yield chosen
            taken = set(idx)
            for pos, k in enumerate(idx):
                nxt = k + 1
                if nxt < m and nxt not in taken:
                    cand = tuple(sorted((*idx[:pos], nxt, *idx[pos + 1 :])))
                    if cand not in seen:
                        seen.add(cand)
                        heapq.heappush(heap, (key(cand), cand))

    def _sorted_sets(self, order: tuple[int, ...], size: int) -> Iterator[tuple[int, ...]]:
        """Every subset at once, in the order of the best-first walk (numpy sort)."""
        combos = combination_rows(len(order), size)
        sets = np.array(order, dtype=np.int64)[combos]
        sets.sort(axis=1)
        total = np.array([self.nodes[v] for v in order], dtype=np.int64)[combos].sum(axis=1)
        # key: summed distance, then members from the most recent down, larger first
        rank = np.lexsort((*(-sets[:, k] for k in range(size)), total))
        yield from map(tuple, sets[rank].tolist())

    def _is_closed(self, subset: tuple[int, ...]) -> bool:
        if self._marks is None:
            return True
        reached = _pds_search(
            self._marks, self._adjacency, self.root, self.max_depth, allowed=frozenset(subset)
        )[0]
        return all(v in reached for v in subset)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form: root, max_depth, nodes (id, distance, parent, path)."""
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


def _pds_search(
    marks: np.ndarray,
    adjacency: Mapping[int, frozenset[int]],
    root: int,
    max_depth: int | None,
    allowed: frozenset[int] | None = None,
) -> tuple[dict[int, int], dict[int, int], dict[int, tuple[int, ...]]]:
    """Breadth-first search over possible-d-separating paths starting at ``root``.

    A state is an ordered edge ``(u, v)`` (arrived at ``v`` from ``u``); each state is expanded
    once, the usual edge-based way to compute Possible-D-Sep. From ``(u, v)`` the search moves
    to ``w`` (``w`` not ``u``, not the root) when ``u *-> v <-* w`` (``v`` a collider) or ``u``
    and ``w`` are adjacent (a triangle). Neighbours are visited in ascending order. Being
    edge-based, a recorded route may in principle pass a node twice (a walk); every step on it
    satisfies the condition.
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
            triangle = marks[u, w] != NONE
            collider = marks[u, v] == ARROW and marks[w, v] == ARROW
            if not (triangle or collider):
                continue
            visited.add((v, w))
            new_path = (*path, w)
            if w not in dist:
                dist[w], parent[w], paths[w] = len(new_path) - 1, v, new_path
            queue.append(new_path)
    return dist, parent, paths


# ---------------------------------------------------------------------------------------------
# the PAG
# ---------------------------------------------------------------------------------------------


class PAG:
    """A partial ancestral graph over the positions of one user's sequence.

    Build it with :meth:`from_marks` (or :meth:`from_dict`). The object is immutable: ``marks``
    is a read-only copy and ``graph`` a frozen networkx graph.
    """

    __slots__ = ("_adjacency", "_graph", "_items", "_marks", "_meta", "_sepsets", "_target")

    def __init__(
        self,
        marks: Any,
        items: Sequence[Any] | None = None,
        target: int | None = None,
        sepsets: Mapping[Any, Iterable[int]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Validate and store; same arguments as :meth:`from_marks`."""
        self._marks = _validate_marks(marks)
        n = self._marks.shape[0]
        self._items = _validate_items(items, n)
        self._target = n - 1 if target is None else _validate_node(target, n, "target")
        self._sepsets = _validate_sepsets(sepsets, self._marks)
        self._meta = _validate_meta(meta)
        self._adjacency = _adjacency_of(self._marks)
        self._graph: nx.Graph | None = None

    @classmethod
    def from_marks(
        cls,
        marks: Any,
        items: Sequence[Any] | None = None,
        target: int | None = None,
        sepsets: Mapping[Any, Iterable[int]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> PAG:
        """Wrap a marks matrix (see :mod:`recausal.causal._marks`) as a PAG.

        ``items``: one item token per node (stored as strings); ``target``: the target node
        (default: the last); ``sepsets``: ``{(i, j): (k, ...)}`` for non-adjacent pairs;
        ``meta``: a JSON-serialisable dict describing how the graph was made.
        """
        return cls(marks, items=items, target=target, sepsets=sepsets, meta=meta)

    @classmethod
    def _from_learned(
        cls,
        marks: np.ndarray,
        items: Sequence[str] | None = None,
        sepsets: Mapping[tuple[int, int], tuple[int, ...]] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> PAG:
        """A PAG from a structure recausal's own learners produced (target: the last node).

        Skips the validation of :meth:`from_marks`, which costs ~10 ms per graph at 50 nodes:
        such marks are valid codes and such sepsets name non-adjacent pairs by construction.
        The result equals ``from_marks`` on the same arguments (tested).
        """
        pag = cls.__new__(cls)
        pag._marks = np.array(marks, dtype=np.int8)
        pag._marks.flags.writeable = False
        pag._items = None if items is None else tuple(str(x) for x in items)
        pag._target = pag._marks.shape[0] - 1
        pag._sepsets = dict(
            sorted(
                ((min(i, j), max(i, j)), tuple(sorted(s))) for (i, j), s in (sepsets or {}).items()
            )
        )
        pag._meta = _validate_meta(meta)
        pag._adjacency = _adjacency_of(pag._marks)
        pag._graph = None
        return pag

    def _build_graph(self) -> nx.Graph:
        g = nx.Graph(target=self._target)
        for k in range(self.n_nodes):
            g.add_node(
                k,
                position=k,
                item=None if self._items is None else self._items[k],
                is_target=k == self._target,
            )
        for i, j, text in self.edges():
            g.add_edge(
                i,
                j,
                marks={i: NAME[int(self._marks[j, i])], j: NAME[int(self._marks[i, j])]},
                text=text,
            )
        return nx.freeze(g)

    # ----- basic accessors ----------------------------------------------------------------

    @property
    def marks(self) -> np.ndarray:
        """A read-only copy of the ``(n, n)`` int8 marks matrix."""
        out = self._marks.copy()
        out.flags.writeable = False
        return out

    @property
    def graph(self) -> nx.Graph:
        """Frozen ``nx.Graph``; see ``docs/pag-schema.md`` for node and edge attributes."""
        if self._graph is None:  # built on first use: the explainers only need the marks
            self._graph = self._build_graph()
        return self._graph

    @property
    def n_nodes(self) -> int:
        """Number of nodes (history positions plus the target)."""
        return int(self._marks.shape[0])

    @property
    def target(self) -> int:
        """Index of the target node (the recommended item)."""
        return self._target

    @property
    def items(self) -> tuple[str, ...] | None:
        """Item token per node, or ``None`` if not given."""
        return self._items

    @property
    def sepsets(self) -> dict[tuple[int, int], tuple[int, ...]]:
        """Separating sets ``{(i, j): (k, ...)}`` with ``i < j`` (a copy)."""
        return dict(self._sepsets)

    @property
    def meta(self) -> dict[str, Any]:
        """How the graph was produced (a copy)."""
        return json.loads(json.dumps(self._meta))

    def mark(self, i: int, j: int) -> str | None:
        """Name of the mark at ``j`` on the edge ``i *-* j`` (``None`` if not adjacent)."""
        i = self._node(i, "i")
        j = self._node(j, "j")
        code = int(self._marks[i, j])
        return None if code == NONE else NAME[code]

    def edges(self) -> list[tuple[int, int, str]]:
        """All edges as ``(i, j, text)`` with ``i < j``; text reads from i to j, e.g. ``"o->"``."""
        rows, cols = np.nonzero(np.triu(self._marks != NONE, k=1))
        return [
            (int(i), int(j), edge_text(int(self._marks[j, i]), int(self._marks[i, j])))
            for i, j in zip(rows, cols, strict=True)
        ]

    def _node(self, i: Any, name: str = "node") -> int:
        return _validate_node(i, self.n_nodes, name)

    def _select(self, i: int, at_other: set[int], at_self: set[int]) -> tuple[int, ...]:
        i = self._node(i)
        return tuple(
            j
            for j in sorted(self._adjacency[i])
            if self._marks[i, j] in at_other and self._marks[j, i] in at_self
        )

    # ----- local structure ----------------------------------------------------------------

    def adjacent(self, i: int) -> tuple[int, ...]:
        """Nodes adjacent to ``i`` (any marks), ascending."""
        return tuple(sorted(self._adjacency[self._node(i)]))

    def parents(self, i: int) -> tuple[int, ...]:
        """Nodes ``j`` with ``j --> i``."""
        return self._select(i, at_other={TAIL}, at_self={ARROW})

    def children(self, i: int) -> tuple[int, ...]:
        """Nodes ``j`` with ``i --> j``."""
        return self._select(i, at_other={ARROW}, at_self={TAIL})

    def spouses(self, i: int) -> tuple[int, ...]:
        """Nodes ``j`` with ``j <-> i``."""
        return self._select(i, at_other={ARROW}, at_self={ARROW})

    def possible_parents(self, i: int) -> tuple[int, ...]:
        """Nodes ``j`` whose edge to ``i`` could be ``j --> i``: not into ``j``, not out of ``i``.

        That is, the mark at ``j`` is a tail or circle and the mark at ``i`` an arrow or circle
        (``j --> i``, ``j o-> i``, ``j o-o i``).
        """
        return self._select(i, at_other={TAIL, CIRCLE}, at_self={ARROW, CIRCLE})

    def possible_ancestors(self, i: int) -> tuple[int, ...]:
        """Nodes with a possibly directed path to ``i`` (``i`` itself excluded), ascending.

        A path ``<v0, ..., vk = i>`` is possibly directed from ``v0`` to ``i`` (Zhang 2008)
        when no edge ``v_m *-* v_m+1`` on it is into ``v_m`` (no arrowhead at ``v_m``) or out
        of ``v_m+1`` (no tail at ``v_m+1``).
        """
        start = self._node(i)
        seen = {start}
        queue = deque([start])
        while queue:
            v = queue.popleft()
            for u in self._adjacency[v]:
                if u not in seen and self._marks[v, u] != ARROW and self._marks[u, v] != TAIL:
                    seen.add(u)
                    queue.append(u)
        seen.discard(start)
        return tuple(sorted(seen))

    def is_collider(self, a: int, b: int, c: int) -> bool:
        """Whether ``a *-> b <-* c`` (``b`` a definite collider on the path a, b, c)."""
        a, b, c = self._node(a, "a"), self._node(b, "b"), self._node(c, "c")
        return a != c and self._marks[a, b] == ARROW and self._marks[c, b] == ARROW

    def pds_tree(self, root: int | None = None, max_depth: int | None = None) -> PDSTree:
        """Possible-d-separation tree rooted at ``root`` (default: the target).

        A node is reached along a path from the root on which every consecutive triple
        ``<x, y, z>`` has ``y`` a collider (``x *-> y <-* z``) or ``x, z`` adjacent (a triangle).
        ``max_depth`` bounds the number of edges from the root (``None``: unbounded).
        """
        root = self._target if root is None else self._node(root, "root")
        if max_depth is not None and (
            isinstance(max_depth, bool)
            or not isinstance(max_depth, int | np.integer)
            or max_depth < 0
        ):
            raise InvalidInputError(
                f"max_depth must be a non-negative int or None; got {max_depth!r}"
            )
        max_depth = None if max_depth is None else int(max_depth)
        dist, parent, paths = _pds_search(self._marks, self._adjacency, root, max_depth)
        return PDSTree(
            root=root,
            nodes=MappingProxyType(dist),
            parent=MappingProxyType(parent),
            max_depth=max_depth,
            _paths=MappingProxyType(paths),
            _adjacency=MappingProxyType(self._adjacency),
            _marks=self._marks,
        )

    # ----- export -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON-ready form described in ``docs/pag-schema.md``."""
        return {
            "schema": SCHEMA_NAME,
            "version": SCHEMA_VERSION,
            "n_nodes": self.n_nodes,
            "target": self._target,
            "nodes": [
                {
                    "id": k,
                    "position": k,
                    "item": None if self._items is None else self._items[k],
                    "is_target": k == self._target,
                }
                for k in range(self.n_nodes)
            ],
            "edges": [
                {
                    "source": i,
                    "target": j,
                    "source_mark": NAME[int(self._marks[j, i])],
                    "target_mark": NAME[int(self._marks[i, j])],
                    "text": text,
                }
                for i, j, text in self.edges()
            ],
            "sepsets": [{"pair": [i, j], "set": list(s)} for (i, j), s in self._sepsets.items()],
            "meta": self.meta,
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PAG:
        """Rebuild a PAG from :meth:`to_dict` output (validated; the edge text must agree)."""
        if not isinstance(data, Mapping):
            raise InvalidInputError(
                f"data must be a dict from PAG.to_dict(); got {type(data).__name__}"
            )
        if data.get("schema", SCHEMA_NAME) != SCHEMA_NAME:
            raise InvalidInputError(
                f"data['schema'] = {data.get('schema')!r}; expected {SCHEMA_NAME!r}"
            )
        if data.get("version") != SCHEMA_VERSION:
            raise InvalidInputError(
                f"data['version'] = {data.get('version')!r}; this recausal reads version "
                f"{SCHEMA_VERSION}"
            )
        try:
            nodes = sorted(data["nodes"], key=lambda d: d["id"])
            n = len(nodes)
            if [d["id"] for d in nodes] != list(range(n)):
                raise InvalidInputError("data['nodes'] ids must be 0..n-1, each once")
            marks = np.zeros((n, n), dtype=np.int8)
            for e in data["edges"]:
                i, j = int(e["source"]), int(e["target"])
                if not (0 <= i < n and 0 <= j < n) or i == j:
                    raise InvalidInputError(f"edge {e!r} names a node outside 0..{n - 1}")
                if marks[i, j] != NONE:
                    raise InvalidInputError(f"edge {e!r} appears twice")
                for mark in (e["source_mark"], e["target_mark"]):
                    if mark not in MARK_CODES:
                        raise InvalidInputError(
                            f"edge {e!r}: mark {mark!r} is not one of {sorted(MARK_CODES)}"
                        )
                marks[j, i] = MARK_CODES[e["source_mark"]]
                marks[i, j] = MARK_CODES[e["target_mark"]]
                if "text" in e and e["text"] != edge_text(int(marks[j, i]), int(marks[i, j])):
                    raise InvalidInputError(f"edge {e!r}: text disagrees with the marks")
            items = [d.get("item") for d in nodes]
            has_items = [x is not None for x in items]
            if any(has_items) and not all(has_items):
                raise InvalidInputError("data['nodes']: give an item for every node or for none")
            targets = [d["id"] for d in nodes if d.get("is_target")]
            target = data.get("target", targets[0] if targets else None)
            if targets and targets != [target]:
                raise InvalidInputError(
                    f"data['target'] = {target!r} disagrees with the nodes' is_target flags"
                )
            sepsets = {tuple(s["pair"]): tuple(s["set"]) for s in data.get("sepsets", [])}
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(f"data is not a valid PAG dict: {exc!r}") from exc
        return cls(
            marks,
            items=items if all(has_items) and n else None,
            target=target,
            sepsets=sepsets,
            meta=data.get("meta"),
        )

    @classmethod
    def from_json(cls, text: str) -> PAG:
        """Rebuild a PAG from :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"text is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def to_graphml(self, path: str | PathLike[str]) -> None:
        """Write GraphML (networkx). Marks are string attributes; see ``docs/pag-schema.md``."""
        g = nx.Graph(target=self._target, schema=SCHEMA_NAME, version=SCHEMA_VERSION)
        for k in range(self.n_nodes):
            attrs: dict[str, Any] = {"position": k, "is_target": k == self._target}
            if self._items is not None:
                attrs["item"] = self._items[k]
            g.add_node(k, **attrs)
        for i, j, text in self.edges():
            g.add_edge(
                i,
                j,
                source=i,
                target=j,
                source_mark=NAME[int(self._marks[j, i])],
                target_mark=NAME[int(self._marks[i, j])],
                text=text,
            )
        nx.write_graphml(g, path)

    @classmethod
    def from_graphml(cls, path: str | PathLike[str]) -> PAG:
        """Read a file written by :meth:`to_graphml` (sepsets and meta are not stored there)."""
        g = nx.read_graphml(path)
        try:
            nodes = {int(k): v for k, v in g.nodes(data=True)}
            n = len(nodes)
            if sorted(nodes) != list(range(n)):
                raise InvalidInputError(f"GraphML file {path!s}: node ids must be 0..n-1")
            marks = np.zeros((n, n), dtype=np.int8)
            for _, _, e in g.edges(data=True):
                i, j = int(e["source"]), int(e["target"])
                marks[j, i] = MARK_CODES[e["source_mark"]]
                marks[i, j] = MARK_CODES[e["target_mark"]]
            items = [nodes[k].get("item") for k in range(n)]
            target = int(g.graph["target"])
        except (KeyError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise InvalidInputError(
                f"GraphML file {path!s} is not a recausal PAG: {exc!r}"
            ) from exc
        return cls(marks, items=None if None in items else items, target=target)

    def to_svg(
        self,
        highlight: Iterable[int] = (),
        title: str | None = None,
        labels: Mapping[Any, str] | None = None,
    ) -> str:
        """A self-contained SVG drawing; see :func:`recausal.causal.svg.draw_pag`."""
        from recausal.causal.svg import draw_pag

        return draw_pag(self, highlight=highlight, title=title, labels=labels)

    # ----- dunder ---------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PAG):
            return NotImplemented
        return (
            np.array_equal(self._marks, other._marks)
            and self._items == other._items
            and self._target == other._target
            and self._sepsets == other._sepsets
            and self._meta == other._meta
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PAG(n_nodes={self.n_nodes}, target={self._target}, edges={self.edges()!r})"


# ---------------------------------------------------------------------------------------------
# aggregation
# ---------------------------------------------------------------------------------------------


def aggregate_pags(pags: Sequence[PAG], rule: str = "majority") -> PAG:
    """Combine per-head PAGs into one by voting, edge by edge.

    ``rule="majority"`` keeps an edge present in more than half of the PAGs; ``"union"`` keeps
    an edge present in any; ``"all"`` only one present in every PAG. Each end of a kept edge
    gets the mark most common among the PAGs that have the edge; ties give a circle. Items and
    target come from the PAGs (they must agree); sepsets are dropped (a vote has no separating
    sets); ``meta`` records the rule and the number of PAGs.

    recausal's primary aggregate is different: one PAG learned from the summed per-head
    covariance (done by the learners); this vote is the alternative.
    """
    pags = list(pags)
    if not pags:
        raise InvalidInputError("pags must hold at least one PAG; got an empty sequence")
    for k, p in enumerate(pags):
        if not isinstance(p, PAG):
            raise InvalidInputError(f"pags[{k}] must be a PAG; got {type(p).__name__}")
    if rule not in _AGGREGATE_RULES:
        raise InvalidInputError(f"rule must be one of {_AGGREGATE_RULES}; got {rule!r}")
    first = pags[0]
    for k, p in enumerate(pags[1:], start=1):
        if p.n_nodes != first.n_nodes:
            raise InvalidInputError(
                f"pags[{k}] has {p.n_nodes} nodes but pags[0] has {first.n_nodes}"
            )
        if p.target != first.target:
            raise InvalidInputError(
                f"pags[{k}] has target {p.target} but pags[0] has {first.target}"
            )
        if p.items is not None and first.items is not None and p.items != first.items:
            raise InvalidInputError(f"pags[{k}] has different items from pags[0]")
    items = next((p.items for p in pags if p.items is not None), None)
    n, h = first.n_nodes, len(pags)
    stack = np.stack([p._marks for p in pags])  # (h, n, n)
    present = (stack != NONE).sum(axis=0)
    need = {"majority": h // 2 + 1, "union": 1, "all": h}[rule]
    out = np.zeros((n, n), dtype=np.int8)
    for i, j in combinations(range(n), 2):
        if present[i, j] < need:
            continue
        for a, b in ((i, j), (j, i)):
            votes = Counter(int(x) for x in stack[:, a, b] if x != NONE)
            ranked = votes.most_common()
            best = ranked[0][0]
            if len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
                best = CIRCLE
            out[a, b] = best
    return PAG(out, items=items, target=first.target, meta={"aggregate": rule, "n_pags": h})
