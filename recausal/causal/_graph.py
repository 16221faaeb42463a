"""Internal mutable edge-mark graph used while learning (with a bitmask mirror for the fast
searches), and small helpers over node sets and mark matrices."""

from __future__ import annotations

from functools import lru_cache
from itertools import chain, combinations
from math import comb

import numpy as np

from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL

__all__ = [
    "MarkBits",
    "MarkGraph",
    "adjacency_sets",
    "bit_nodes",
    "bitmask_rows",
    "combination_rows",
]


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


@lru_cache(maxsize=256)
def combination_rows(n: int, size: int) -> np.ndarray:
    """All ``size``-combinations of ``range(n)`` in itertools order, as a read-only array."""
    count = comb(n, size)
    flat = np.fromiter(
        chain.from_iterable(combinations(range(n), size)), dtype=np.intp, count=count * size
    )
    out = flat.reshape(count, size)
    out.setflags(write=False)
    return out


def bit_nodes(mask: int) -> list[int]:
    """The nodes (set bits) of a bitmask, ascending."""
    out = []
    while mask:
        low = mask & -mask
        mask ^= low
        out.append(low.bit_length() - 1)
    return out


def bitmask_rows(a: np.ndarray) -> list:
    """``a`` (boolean, at least 2-d) with its last axis packed into Python int bitmasks
    (bit k set iff ``a[..., k]``), as nested lists."""
    words = -(-a.shape[-1] // 64)
    packed = np.packbits(a, axis=-1, bitorder="little")
    buf = np.zeros((*a.shape[:-1], 8 * words), dtype=np.uint8)
    buf[..., : packed.shape[-1]] = packed
    w = buf.view("<u8")
    if words == 1:
        return w[..., 0].tolist()
    flat = [sum(x << (64 * t) for t, x in enumerate(row)) for row in w.reshape(-1, words).tolist()]
    return np.array(flat, dtype=object).reshape(a.shape[:-1]).tolist()


class MarkBits:
    """A :class:`MarkGraph` with its adjacencies and marks mirrored as bitmasks.

    ``adj[v]``: the neighbours of v; ``at[k][v]``: the u with mark ``k`` at v on the edge
    ``u``–``v`` (``m[u][v] == k``); ``out[k][u]``: the v with ``m[u][v] == k``. Changes go
    through :meth:`set` and :meth:`remove_edge`, which keep ``g`` in step.
    """

    __slots__ = ("adj", "at", "g", "out")

    def __init__(self, g: MarkGraph) -> None:
        n = g.n
        self.g = g
        self.adj = [0] * n
        self.at = [[0] * n for _ in range(4)]
        self.out = [[0] * n for _ in range(4)]
        at, out = self.at, self.out
        for u, (row, nbrs) in enumerate(zip(g.m, g.adj, strict=True)):
            bit_u, mask = 1 << u, 0
            for v in nbrs:
                bit_v = 1 << v
                mask |= bit_v
                at[row[v]][v] |= bit_u
                out[row[v]][u] |= bit_v
            self.adj[u] = mask

    @classmethod
    def reset(cls, g: MarkGraph, order_aware: bool = False) -> MarkBits:
        """:meth:`MarkGraph.reset` ``g`` and mirror it (the marks follow from the skeleton)."""
        g.reset(order_aware)
        bits = cls.__new__(cls)
        bits.g = g
        n = g.n
        bits.adj = [sum(1 << x for x in a) for a in g.adj]
        bits.at = [[0] * n for _ in range(4)]
        bits.out = [[0] * n for _ in range(4)]
        for v, nb in enumerate(bits.adj):
            if order_aware:  # u -> v arrowhead at the later node v
                later = nb >> (v + 1) << (v + 1)
                bits.at[ARROW][v] = bits.out[CIRCLE][v] = nb & ~later
                bits.at[CIRCLE][v] = bits.out[ARROW][v] = later
            else:
                bits.at[CIRCLE][v] = bits.out[CIRCLE][v] = nb
        return bits

    def set(self, u: int, v: int, mark: int) -> None:
        """Put ``mark`` at v on the existing edge ``u``–``v``."""
        row = self.g.m[u]
        old = row[v]
        row[v] = mark
        self.at[old][v] &= ~(1 << u)
        self.out[old][u] &= ~(1 << v)
        self.at[mark][v] |= 1 << u
        self.out[mark][u] |= 1 << v

    def remove_edge(self, i: int, j: int) -> None:
        """Delete the edge ``i``–``j`` (here and in the graph)."""
        m = self.g.m
        for u, v in ((i, j), (j, i)):
            old = m[u][v]
            self.at[old][v] &= ~(1 << u)
            self.out[old][u] &= ~(1 << v)
            self.adj[u] &= ~(1 << v)
        self.g.remove_edge(i, j)


def adjacency_sets(marks: np.ndarray) -> dict[int, frozenset[int]]:
    """The neighbours of every node of a mark matrix.

    Args:
        marks: ``(n, n)`` mark matrix (non-zero: an edge end).

    Returns:
        ``{node: frozenset of its neighbours}`` for every node ``0..n-1``.
    """
    rows, cols = np.nonzero(marks)
    out: dict[int, set[int]] = {i: set() for i in range(marks.shape[0])}
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        out[i].add(j)
    return {i: frozenset(s) for i, s in out.items()}
