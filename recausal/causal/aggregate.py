"""A vote over several PAGs (one per attention head) that yields one PAG."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import combinations

import numpy as np

from recausal.causal._marks import CIRCLE, NONE
from recausal.causal.pag import PAG
from recausal.errors import InvalidInputError

__all__ = ["aggregate_pags"]

_AGGREGATE_RULES = ("majority", "union", "all")


def aggregate_pags(pags: Sequence[PAG], rule: str = "majority") -> PAG:
    """Combine per-head PAGs into one by voting, edge by edge.

    ``rule="majority"`` keeps an edge present in more than half of the PAGs; ``"union"`` keeps
    an edge present in any; ``"all"`` only one present in every PAG. Each end of a kept edge
    gets the mark most common among the PAGs that have the edge; ties give a circle. Items and
    target come from the PAGs (they must agree); sepsets are dropped (a vote has no separating
    sets); ``meta`` records the rule and the number of PAGs.

    recausal's primary aggregate is different: one PAG learned from the summed per-head
    covariance (done by the learners); this vote is the alternative.

    Args:
        pags: the PAGs, over the same nodes and target.
        rule: ``"majority"``, ``"union"`` or ``"all"``.

    Returns:
        The voted PAG.
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
    stack = np.stack([p.marks for p in pags])  # (h, n, n)
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
