"""FCI (Spirtes, Glymour & Scheines; orientation rules completed by Zhang 2008).

1. Adjacency search, PC-stable: conditioning-set size r = 0, 1, ... on the neighbours of
   either end, all edges of one level decided in one vectorised call.
2. R0 on that skeleton, then Possible-D-Sep: every remaining edge is re-tested against
   subsets (growing size) of Possible-D-Sep of either end.
3. Re-orientation from scratch: R0, R1–R4, R8–R10. Without selection variables R5–R7 never
   apply, so they are not run.

With ``order_aware`` (nodes 0..n-1 in token order, a later node is never an ancestor of an
earlier one) every edge ``i``–``j``, ``i < j``, gets an arrowhead at ``j`` before R0 and keeps
it; conditioning sets are restricted to nodes earlier than ``max(i, j)``.
"""

from __future__ import annotations

from itertools import combinations

from recausal.causal._graph import MarkGraph
from recausal.causal._orient import orient, rule0, sepset_deciders
from recausal.causal.citest import CITest
from recausal.causal.pds import possible_dsep
from recausal.causal.result import StructureResult
from recausal.causal.skeleton import TestRunner, check_learner_args, pc_stable_level

__all__ = ["fci"]


def fci(
    test: CITest,
    n_nodes: int,
    *,
    max_cond_size: int | None = None,
    order_aware: bool = False,
) -> StructureResult:
    """Learn a PAG with FCI from a CI test over nodes ``0..n_nodes-1``.

    Args:
        test: the CI test (vectorised when it has ``independent_many``).
        n_nodes: number of nodes, >= 2.
        max_cond_size: largest conditioning-set size in both the adjacency and the
            Possible-D-Sep phase (``None``: unbounded).
        order_aware: nodes are in token order (see the module docstring).

    Returns:
        The learned structure.
    """
    check_learner_args(n_nodes, max_cond_size)
    runner = TestRunner(test, n_nodes)
    limit = n_nodes - 2 if max_cond_size is None else min(max_cond_size, n_nodes - 2)
    g = MarkGraph.complete(n_nodes)
    sepsets: dict[tuple[int, int], tuple[int, ...]] = {}
    reached = -1
    for size in range(limit + 1):
        if not pc_stable_level(g, runner, size, sepsets, order_aware=order_aware):
            break
        reached = size

    # Possible-D-Sep phase on the R0-oriented skeleton
    c0, _ = sepset_deciders(sepsets)
    g.reset(order_aware)
    rule0(g, c0)
    pds = [possible_dsep(g.m, g.adj, x) for x in range(n_nodes)]
    for i in range(n_nodes):
        for j in sorted(g.adj[i]):
            if j <= i or j not in g.adj[i]:
                continue
            lim = j if order_aware else n_nodes
            pools = [
                sorted(k for k in pds[i] if k != j and k < lim),
                sorted(k for k in pds[j] if k != i and k < lim),
            ]
            top = min(limit, max(len(p) for p in pools))
            for size in range(top + 1):
                seen: set[tuple[int, ...]] = set()
                cand: list[tuple[int, ...]] = []
                for pool in pools:
                    if len(pool) >= size:
                        for c in combinations(pool, size):
                            if c not in seen:
                                seen.add(c)
                                cand.append(c)
                if not cand:
                    continue
                reached = max(reached, size)
                q = runner.first_independent(i, j, cand)
                if q >= 0:
                    g.remove_edge(i, j)
                    sepsets[(i, j)] = tuple(sorted(cand[q]))
                    break

    c0, c4 = sepset_deciders(sepsets)
    orient(g, c0, c4, order_aware=order_aware, tail_rules=True)
    return StructureResult(
        marks=g.to_array(),
        sepsets=sepsets,
        n_tests=runner.n_consulted,
        max_cond_size_reached=max(reached, 0),
        algorithm="fci",
        order_aware=order_aware,
        params={"max_cond_size": max_cond_size},
    )
