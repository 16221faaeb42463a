"""The causal explainer (CLEANN, Rohekar et al. 2023): search the learned graph around the
recommended item for the smallest set of history items whose removal changes the top-1."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from recausal.causal.pag import PDSTree
from recausal.discover import DiscoverySettings, Heads, graphs_from_attention
from recausal.explain.base import (
    Baseline,
    Explainer,
    Explanation,
    Removal,
    Timer,
    build_explanation,
    first_valid,
)

if TYPE_CHECKING:
    from recausal.models.adapter import SequentialModel


class CausalExplainer(Explainer):
    """Minimal explanation sets from the possible-d-sep tree rooted at the recommended item.

    Candidate sets are subsets of the tree's history nodes, of size 1, 2, ... ``max_size``;
    within a size, ordered by summed tree distance (closer first). All candidates of a size
    are validated in one batch; all valid sets of the first size that has one are returned.
    The ranking scores each item by its share of the minimal sets, then closeness in the tree.

    ``heads``: one graph per head, as in the reference code (``"each"``, the default: a node's
    distance is its smallest over the heads' trees; the graph kept with the explanation is the
    head whose tree holds the set closest), or one graph from the heads' summed covariance
    (``"aggregate"``). On the planted-cause tests, per-head graphs find the cause more often.
    ``max_candidates`` caps the sets tried per size. Remaining keyword arguments are
    :class:`~recausal.discover.DiscoverySettings` (``algorithm``, ``alpha``, ``order_aware``...).
    """

    name = "causal"

    def __init__(
        self,
        max_size: int = 5,
        removal: Removal = "delete",
        seed: int = 0,
        heads: Heads = "each",
        max_candidates: int = 5000,
        **discovery: Any,
    ) -> None:
        super().__init__(max_size, removal, seed)
        self.heads = heads
        self.max_candidates = max_candidates
        self.settings = DiscoverySettings(**discovery)

    def get_params(self) -> dict[str, Any]:
        return {
            **super().get_params(),
            "heads": self.heads,
            "max_candidates": self.max_candidates,
            **self.settings.to_dict(),
        }

    def _graphs(self, model: SequentialModel, ids: np.ndarray, base: Baseline):
        """The learned graph(s) and the PDS tree the candidates come from.

        With one graph per head, a node's distance is its smallest over the heads' trees.
        """
        attention = model.attention_ids([ids], [base.target], self.settings.layer)[0]
        found = graphs_from_attention(model, ids, base.target, attention, self.settings, self.heads)
        graphs = [found.aggregate] if found.aggregate is not None else list(found.heads)
        trees = [g.pds_tree() for g in graphs]
        if len(trees) == 1:
            return graphs, trees, trees[0]
        nodes: dict[int, int] = {}
        for tree in trees:
            for node, dist in tree.nodes.items():
                nodes[node] = min(dist, nodes.get(node, dist))
        return graphs, trees, PDSTree(root=trees[0].root, nodes=nodes, parent={})

    def _explain_one(self, model: SequentialModel, ids: np.ndarray, k: int) -> Explanation:
        timer = Timer(model)
        base = Baseline.of(model, ids, k)
        graphs, trees, tree = self._graphs(model, ids, base)
        sets: list[tuple[int, ...]] = []
        replacement = None
        tried = 0
        for size in range(1, self.max_size + 1):
            candidates = list(itertools.islice(tree.candidate_sets(size), self.max_candidates))
            if not candidates:
                break
            tried += len(candidates)
            valid, new_top = first_valid(model, ids, candidates, base.target, self.removal)
            if valid:
                sets = [candidates[i] for i in valid]
                replacement = int(new_top[valid[0]])
                break
        n = len(ids)
        scores = np.zeros(n)
        for s in sets:
            scores[list(s)] += 1.0 / len(sets)
        for node, dist in tree.nodes.items():  # closeness in the tree breaks ties (< 0.25)
            if node < n:
                scores[node] += 0.5 / (2.0 + dist)
        # The graph shown with the explanation: the one whose tree holds the set closest.
        chosen = sets[0] if sets else ()
        best = min(
            range(len(trees)), key=lambda h: sum(trees[h].nodes.get(p, n + 1) for p in chosen)
        )
        graph = graphs[best]
        extra = {
            "candidates_tested": tried,
            "tree_nodes": len(tree.nodes) - 1,
            "graph_head": None if self.heads == "aggregate" else best,
        }
        return build_explanation(
            self, model, ids, base, sets, replacement, scores, timer, graph=graph, extra_meta=extra
        )
