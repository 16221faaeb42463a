"""Tests of the vote over several PAGs (:mod:`recausal.causal.aggregate`)."""

from __future__ import annotations

import numpy as np
import pytest

from recausal.causal.aggregate import aggregate_pags
from recausal.causal.pag import PAG
from recausal.errors import InvalidInputError
from recausal.testing.graphs import marks_from_edges as make


def test_aggregate_majority_and_ties() -> None:
    h1 = PAG.from_marks(make(4, [(0, 3, "o->"), (1, 3, "-->"), (2, 3, "o-o")]), items=list("abcd"))
    h2 = PAG.from_marks(make(4, [(0, 3, "-->"), (1, 3, "<->")]), items=list("abcd"))
    h3 = PAG.from_marks(make(4, [(0, 3, "o->"), (0, 1, "o-o")]), items=list("abcd"))
    agg = aggregate_pags([h1, h2, h3])
    # 0-3 in all three: mark at 0 circle (2 of 3), at 3 arrow (3 of 3)
    # 1-3 in two of three: at 1 tail vs arrow -> tie -> circle; at 3 arrow
    # 2-3 and 0-1 in one head only: dropped
    assert agg.edges() == [(0, 3, "o->"), (1, 3, "o->")]
    assert agg.items == ("a", "b", "c", "d") and agg.target == 3
    assert agg.meta == {"aggregate": "majority", "n_pags": 3}
    assert agg.sepsets == {}
    union = aggregate_pags([h1, h2, h3], rule="union")
    assert union.edges() == [(0, 1, "o-o"), (0, 3, "o->"), (1, 3, "o->"), (2, 3, "o-o")]
    assert aggregate_pags([h1, h2, h3], rule="all").edges() == [(0, 3, "o->")]
    # two heads: majority needs both
    assert aggregate_pags([h1, h2]).edges() == [(0, 3, "o->"), (1, 3, "o->")]
    assert aggregate_pags([h1]).edges() == h1.edges()


def test_aggregate_rejects_bad_input() -> None:
    a = PAG.from_marks(make(3, [(0, 2, "o->")]))
    with pytest.raises(InvalidInputError, match="at least one"):
        aggregate_pags([])
    with pytest.raises(InvalidInputError, match="rule"):
        aggregate_pags([a], rule="mean")
    with pytest.raises(InvalidInputError, match="nodes"):
        aggregate_pags([a, PAG.from_marks(np.zeros((4, 4), dtype=int))])
    with pytest.raises(InvalidInputError, match="target"):
        aggregate_pags([a, PAG.from_marks(make(3, [(0, 2, "o->")]), target=0)])
    with pytest.raises(InvalidInputError, match=r"pags\[1\] must be a PAG"):
        aggregate_pags([a, a.marks])
