"""Hand-written PAG mark matrices for tests, from edges written as text (``"o->"``)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from recausal.causal._marks import ARROW, CIRCLE, TAIL

__all__ = ["MIXED_EDGES", "marks_from_edges"]

_AT_FIRST = {"o": CIRCLE, "<": ARROW, "-": TAIL}
_AT_SECOND = {"o": CIRCLE, ">": ARROW, "-": TAIL}

MIXED_EDGES = (
    (0, 1, "-->"),
    (1, 2, "<->"),
    (2, 3, "o->"),
    (3, 4, "o-o"),
    (4, 5, "-->"),
    (0, 5, "o->"),
)
"""Six nodes with every kind of edge (``-->``, ``<->``, ``o->``, ``o-o``); node 5 the target."""


def marks_from_edges(n: int, edges: Iterable[tuple[int, int, str]]) -> np.ndarray:
    """A marks matrix from edges written like ``(0, 1, "o->")``, read from the first node.

    Args:
        n: number of nodes.
        edges: ``(i, j, text)``; ``text[0]`` is the mark at i, ``text[2]`` the mark at j.

    Returns:
        The ``int8`` ``(n, n)`` marks matrix.
    """
    m = np.zeros((n, n), dtype=np.int8)
    for i, j, text in edges:
        m[j, i] = _AT_FIRST[text[0]]
        m[i, j] = _AT_SECOND[text[2]]
    return m
