"""Shared fixtures of the causal-core tests."""

from __future__ import annotations

import pytest

from recausal.causal.pag import PAG
from recausal.testing.graphs import MIXED_EDGES, marks_from_edges


@pytest.fixture
def mixed() -> PAG:
    """A PAG with every kind of edge; target 5."""
    return PAG.from_marks(
        marks_from_edges(6, MIXED_EDGES),
        items=[10, 11, 12, 13, 14, 99],
        sepsets={(0, 2): (1,), (5, 1): ()},
        meta={"alg": "hand"},
    )
