"""Internal mutable edge-mark graph used while learning, and the frozen learning result."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np

from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL

__all__ = ["MarkGraph", "StructureResult"]


class MarkGraph:
    """Edge marks as a list of lists (fast scalar access) plus adjacency sets.

    ``m[i][j]`` is the mark at ``j`` on the edge ``i``–``j`` (codes of ``_marks.py``).
    """

    __slots__ = ("adj", "m", "n")

    def __init__(self, n: int) -> None:
        self.n = n
        self.m: list[list[int]] = [[NONE] * n for _ in range(n)]
        self.adj: list[set[int]] = [set() for _ in range(n)]

    @classmethod
    def complete(cls, n: int, mark: int = CIRCLE) -> MarkGraph:
        """The complete graph with ``mark`` at every end."""
        g = cls(n)
        for i in range(n):
            row = g.m[i]
            for j in range(n):
                if i != j:
                    row[j] = mark
            g.adj[i] = set(range(n)) - {i}
        return g

    @classmethod
    def from_array(cls, marks: np.ndarray) -> MarkGraph:
        """A graph holding a copy of the ``(n, n)`` mark matrix."""
        marks = np.asarray(marks)
        g = cls(marks.shape[0])
        g.m = marks.astype(int).tolist()
        g.adj = [set(np.flatnonzero(row).tolist()) for row in marks]
        return g

    def copy(self) -> MarkGraph:
        """An independent copy."""
        g = MarkGraph(self.n)
        g.m = [row[:] for row in self.m]
        g.adj = [set(a) for a in self.adj]
        return g

    def remove_edge(self, i: int, j: int) -> None:
        """Delete the edge ``i``–``j`` (no-op if absent)."""
        self.m[i][j] = NONE
        self.m[j][i] = NONE
        self.adj[i].discard(j)
        self.adj[j].discard(i)

    def reset(self, order_aware: bool = False) -> None:
        """Put a circle at every edge end; with ``order_aware``, an arrowhead at the later node."""
        m = self.m
        for i in range(self.n):
            for j in self.adj[i]:
                m[i][j] = ARROW if (order_aware and i < j) else CIRCLE

    def to_array(self) -> np.ndarray:
        """The marks as an ``int8`` numpy matrix."""
        return np.array(self.m, dtype=np.int8).reshape(self.n, self.n)

    def possibly_directed(self, x: int, y: int) -> bool:
        """Whether the edge ``x``–``y`` could be ``x → y``: no arrowhead at x, no tail at y."""
        return self.m[y][x] != ARROW and self.m[x][y] != TAIL and self.m[x][y] != NONE

    def possible_ancestor_masks(self) -> list[int]:
        """``masks[t]``: bitmask of the nodes with a possibly directed path into ``t`` (not t)."""
        n, m = self.n, self.m
        # reverse possibly-directed adjacency: pd_parents[y] = {x : x *-* y could be x -> y}
        pd_parents = [
            [x for x in self.adj[y] if m[y][x] != ARROW and m[x][y] != TAIL] for y in range(n)
        ]
        masks = [0] * n
        for t in range(n):
            seen = 1 << t
            stack = list(pd_parents[t])
            for x in stack:
                seen |= 1 << x
            while stack:
                y = stack.pop()
                for x in pd_parents[y]:
                    if not (seen >> x) & 1:
                        seen |= 1 << x
                        stack.append(x)
            masks[t] = seen & ~(1 << t)
        return masks


def _freeze(marks: np.ndarray) -> np.ndarray:
    a = np.array(marks, dtype=np.int8, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class StructureResult:
    """A learned PAG: its edge marks plus how it was obtained.

    ``marks``: read-only ``int8`` ``(n, n)`` matrix, ``marks[i, j]`` the mark at ``j`` (see
    ``recausal.causal._marks``); ``sepsets``: ``(i, j)`` with ``i < j`` → the separating set
    found for each removed edge; ``n_tests``: CI tests the algorithm consulted (up to the first
    independence per edge and conditioning-set size, as the reference counts them);
    ``max_cond_size_reached``: the largest conditioning-set size for which tests were run;
    ``algorithm``, ``order_aware``, ``params``: provenance.
    """

    marks: np.ndarray
    sepsets: Mapping[tuple[int, int], tuple[int, ...]]
    n_tests: int
    max_cond_size_reached: int
    algorithm: str
    order_aware: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "marks", _freeze(self.marks))
        object.__setattr__(self, "sepsets", MappingProxyType(dict(self.sepsets)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return int(self.marks.shape[0])

    @property
    def skeleton(self) -> np.ndarray:
        """Boolean adjacency matrix."""
        return self.marks != NONE

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dictionary."""
        return {
            "algorithm": self.algorithm,
            "order_aware": self.order_aware,
            "n_nodes": self.n_nodes,
            "marks": self.marks.tolist(),
            "sepsets": [[i, j, list(s)] for (i, j), s in sorted(self.sepsets.items())],
            "n_tests": self.n_tests,
            "max_cond_size_reached": self.max_cond_size_reached,
            "params": dict(self.params),
        }

    def to_json(self) -> str:
        """The result as JSON text."""
        return json.dumps(self.to_dict())
