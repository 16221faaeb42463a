"""The causal explainer (CLEANN, Rohekar et al. 2023): search the learned graph around the
recommended item for the smallest set of history items whose removal changes the top-1."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recausal.causal.pag import PAG, PDSTree
from recausal.discover import (
    DiscoverySettings,
    Heads,
    heads_to_learn,
    learn_structures,
    structure_to_pag,
)
from recausal.explain.base import Baseline, Batch, Explainer, Found, Removal, share_of_sets
from recausal.explain.baselines import search_by_size

if TYPE_CHECKING:
    from recausal.causal._graph import StructureResult


@dataclass(frozen=True)
class _Learned:
    """One history's learned structures ``(result, aggregate?, head)``, their PDS trees, the
    tree searched, and the settings they were learned with."""

    results: list[tuple[StructureResult, bool, int | None]]
    trees: list[PDSTree]
    tree: PDSTree
    n_samples: int
    order_aware: bool


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
    #: learn the graphs of equal-length histories together (False: one matrix at a time)
    _batched: bool = True

    def __init__(
        self,
        max_size: int = 5,
        removal: Removal = "delete",
        seed: int = 0,
        exclude_seen: bool = False,
        heads: Heads = "each",
        max_candidates: int = 5000,
        **discovery: Any,
    ) -> None:
        super().__init__(max_size, removal, seed, exclude_seen)
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

    def _graphs(self, batch: Batch, bases: list[Baseline]) -> list[_Learned]:
        """Per history: the learned structure(s), their PDS trees, and the tree searched (with
        one graph per head, a node's distance is its smallest over the heads' trees).

        The structures of all histories are learned in batches of equal length; a full
        :class:`PAG` (items, separating sets, meta) is built later, only for the graph kept.
        """
        model = batch.model
        targets = [b.target for b in bases]
        attention = batch.attention(targets, self.settings.layer)
        n_samples = self.settings.n_samples or model.hidden_size
        order_aware = self.settings.order_aware
        if order_aware is None:
            order_aware = model.causal_attention
        if self._batched:
            learned = learn_structures(attention, self.settings, n_samples, order_aware, self.heads)
        else:  # the plain path: one CI test and one search per matrix (for comparisons)
            learned = [
                learn_structures([a], self.settings, n_samples, order_aware, self.heads, False)[0]
                for a in attention
            ]
        out = []
        for found in learned:
            if found.aggregate is not None:
                results = [(found.aggregate, True, None)]
            else:
                wanted, _ = heads_to_learn(self.heads, attention[0].shape[0])
                results = [(r, False, h) for h, r in zip(wanted, found.heads, strict=True)]
            trees = [PAG._from_learned(r.marks).pds_tree() for r, _, _ in results]
            if len(trees) == 1:
                tree = trees[0]
            else:
                nodes: dict[int, int] = {}
                for t in trees:
                    for node, dist in t.nodes.items():
                        nodes[node] = min(dist, nodes.get(node, dist))
                tree = PDSTree(root=trees[0].root, nodes=nodes, parent={})
            out.append(_Learned(results, trees, tree, n_samples, order_aware))
        return out

    def _explain_batch(self, batch: Batch, bases: list[Baseline]) -> list[Found]:
        graphs = self._graphs(batch, bases)

        def candidates_of(u: int, size: int) -> list[tuple[int, ...]]:
            return list(itertools.islice(graphs[u].tree.candidate_sets(size), self.max_candidates))

        searched = search_by_size(batch, bases, candidates_of, self.max_size, self.removal)
        found = []
        for u, (ids, learned, (sets, rep, tested)) in enumerate(
            zip(batch.ids, graphs, searched, strict=True)
        ):
            trees, tree = learned.trees, learned.tree
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
            result, aggregate, head = learned.results[best]
            items = [*batch.model.decode(ids), batch.model.items[bases[u].target]]
            graph = structure_to_pag(
                result,
                items,
                self.settings,
                learned.n_samples,
                learned.order_aware,
                aggregate,
                head,
            )
            found.append(Found(sets, rep, scores, graph=graph, meta=meta))
        return found
