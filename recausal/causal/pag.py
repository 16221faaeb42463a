"""The partial ancestral graph (PAG) over one user's sequence: accessors and serialisation.

Node ``k`` is history position ``k`` (oldest first); by default the last node ``n - 1`` is the
target (the recommended item). Edge marks follow :mod:`recausal.causal._marks`:
``marks[i, j]`` is the mark **at node j** on the edge ``i *-* j``. Its possible-d-separation
tree is computed by :mod:`recausal.causal.pds`, the vote over several PAGs by
:mod:`recausal.causal.aggregate`, the drawing by :mod:`recausal.report.svg`.

The serialised form (dict, JSON, GraphML) is described in ``docs/pag-schema.md``.

Longer than 400 lines because it is one public, immutable class: its accessors and its three
(de)serialisations read the same private state and are kept together; validation, the PDS
search, the vote and the drawing live in their own modules.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from types import MappingProxyType
from typing import Any

import networkx as nx
import numpy as np

from recausal.causal._graph import adjacency_sets
from recausal.causal._marks import ARROW, CIRCLE, NAME, NONE, TAIL
from recausal.causal._validate import (
    validate_items,
    validate_marks,
    validate_meta,
    validate_node,
    validate_sepsets,
)
from recausal.causal.pds import PDSTree, pds_tree
from recausal.errors import InvalidInputError

__all__ = ["MARK_CODES", "PAG", "SCHEMA_NAME", "SCHEMA_VERSION", "edge_text"]

SCHEMA_NAME = "recausal.pag"
SCHEMA_VERSION = 1

MARK_CODES: Mapping[str, int] = MappingProxyType({v: k for k, v in NAME.items()})
"""Mark name (``"circle"``, ``"arrow"``, ``"tail"``) → code."""

# Symbols of an edge written from its lower-numbered end to its higher-numbered end.
_LEFT = {CIRCLE: "o", ARROW: "<", TAIL: "-"}
_RIGHT = {CIRCLE: "o", ARROW: ">", TAIL: "-"}


def edge_text(mark_at_low: int, mark_at_high: int) -> str:
    """The 3-character text of an edge read from its lower to its higher node.

    Args:
        mark_at_low: the mark code at the lower-numbered node.
        mark_at_high: the mark code at the higher-numbered node.

    Returns:
        E.g. ``"o->"``.
    """
    return f"{_LEFT[mark_at_low]}-{_RIGHT[mark_at_high]}"


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
        self._marks = validate_marks(marks)
        n = self._marks.shape[0]
        self._items = validate_items(items, n)
        self._target = n - 1 if target is None else validate_node(target, n, "target")
        self._sepsets = validate_sepsets(sepsets, self._marks)
        self._meta = validate_meta(meta)
        self._adjacency = adjacency_sets(self._marks)
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
        """Wrap a marks matrix (see :mod:`recausal.causal._marks`) as a PAG, validated.

        Args:
            marks: the ``(n, n)`` marks matrix.
            items: one item token per node (stored as strings), or ``None``.
            target: the target node (default: the last).
            sepsets: ``{(i, j): (k, ...)}`` for non-adjacent pairs.
            meta: a JSON-serialisable dict describing how the graph was made.

        Returns:
            The PAG.
        """
        return cls(marks, items=items, target=target, sepsets=sepsets, meta=meta)

    @classmethod
    def from_structure(
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

        Args:
            marks: a learned ``(n, n)`` mark matrix (``StructureResult.marks``).
            items: one item token per node, or ``None``.
            sepsets: the learned separating sets (``StructureResult.sepsets``).
            meta: a JSON-serialisable dict describing how the graph was made.

        Returns:
            The PAG.
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
        pag._meta = validate_meta(meta)
        pag._adjacency = adjacency_sets(pag._marks)
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
        return validate_node(i, self.n_nodes, name)

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
        """Possible-d-separation tree rooted at ``root``; see :func:`recausal.causal.pds.pds_tree`.

        Args:
            root: the root node (default: the target).
            max_depth: most edges from the root, or ``None`` (unbounded).

        Returns:
            The tree.
        """
        root = self._target if root is None else self._node(root, "root")
        return pds_tree(self._marks, root, max_depth, adjacency=self._adjacency)

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
