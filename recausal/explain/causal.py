"""The causal explainer (CLEANN, Rohekar et al. 2023): search the learned graph around the
recommended item for the smallest set of history items whose removal changes the top-1."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any

from recausal.causal.pag import PDSTree
from recausal.discover import DiscoverySettings, Heads, graphs_from_attention
from recausal.explain.base import Baseline, Batch, Explainer, Found, Removal, share_of_sets
from recausal.explain.baselines import search_by_size

if TYPE_CHECKING:
    from recausal.causal.pag import PAG


class CausalExplainer(Explainer):
    """Minimal explanation sets from the possible-d-sep tree rooted at the recommended item.

    Candidate sets are subsets of the tree's history nodes, of size 1, 2, ... ``max_size``;
    within a size, ordered by summed tree distance (closer first). All candidates of a size
    (of every history in a batch) are validated in one batched model call; all valid sets of
    the first size that has one are returned. The ranking scores each item by its share of
    the minimal sets, then by closeness in the tree.

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

    def _graphs(
        self, batch: Batch, bases: list[Baseline]
    ) -> list[tuple[list[PAG], list[PDSTree], PDSTree]]:
        """Per history: the learned graph(s), their PDS trees, and the tree searched (with one
        graph per head, a node's distance is its smallest over the heads' trees)."""
        attention = batch.attention([b.target for b in bases], self.settings.layer)
        out = []
        for ids, base, attn in zip(batch.ids, bases, attention, strict=True):
            found = graphs_from_attention(
                batch.model, ids, base.target, attn, self.settings, self.heads
            )
            graphs = [found.aggregate] if found.aggregate is not None else list(found.heads)
            trees = [g.pds_tree() for g in graphs]
            if len(trees) == 1:
                out.append((graphs, trees, trees[0]))
                continue
            nodes: dict[int, int] = {}
            for tree in trees:
                for node, dist in tree.nodes.items():
                    nodes[node] = min(dist, nodes.get(node, dist))
            out.append((graphs, trees, PDSTree(root=trees[0].root, nodes=nodes, parent={})))
        return out

    def _explain_batch(self, batch: Batch, bases: list[Baseline]) -> list[Found]:
        graphs = self._graphs(batch, bases)

        def candidates_of(u: int, size: int) -> list[tuple[int, ...]]:
            return list(itertools.islice(graphs[u][2].candidate_sets(size), self.max_candidates))

        searched = search_by_size(batch, bases, candidates_of, self.max_size, self.removal)
        found = []
        for ids, (pags, trees, tree), (sets, rep, tested) in zip(
            batch.ids, graphs, searched, strict=True
        ):
            n = len(ids)
            scores = share_of_sets(n, sets)
            for node, dist in tree.nodes.items():  # closeness in the tree breaks ties (< 0.25)
                if node < n:
                    scores[node] += 0.5 / (2.0 + dist)
            # The graph shown with the explanation: the one whose tree holds the set closest.
            chosen = sets[0] if sets else ()
            best = min(
                range(len(trees)), key=lambda h: sum(trees[h].nodes.get(p, n + 1) for p in chosen)
            )
            meta = {
                "candidates_tested": tested,
                "tree_nodes": len(tree.nodes) - 1,
                "graph_head": None if self.heads == "aggregate" else best,
            }
            found.append(Found(sets, rep, scores, graph=pags[best], meta=meta))
        return found
