"""The causal explainer (CLEANN, Rohekar et al. 2023): search the learned graphs around the
explained item for the smallest set of history items whose removal changes the top-1 (or, for
an item further down the list, moves it out of the top-k)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields
from typing import Any

from recausal.causal import PDSTree
from recausal.discovery import Discovery, DiscoverySettings, Heads, discover_ids
from recausal.explain.base import Explainer, Found, share_of_sets
from recausal.explain.batch import Baseline, Batch, Searched, search_by_size

_SETTINGS = frozenset(f.name for f in fields(DiscoverySettings))


@dataclass(frozen=True)
class _Graphs:
    """One history's discovery, the PDS tree of each graph learned (in the order of
    ``discovery.keys``) and the tree searched."""

    discovery: Discovery
    trees: tuple[PDSTree, ...]
    tree: PDSTree


def _merged(trees: tuple[PDSTree, ...]) -> PDSTree:
    """One tree, or the union of several: a node's distance is its smallest over the trees."""
    if len(trees) == 1:
        return trees[0]
    nodes: dict[int, int] = {}
    for t in trees:
        for node, dist in t.nodes.items():
            nodes[node] = min(dist, nodes.get(node, dist))
    return PDSTree(root=trees[0].root, nodes=nodes, parent={})


class CausalExplainer(Explainer):
    """Minimal explanation sets from the possible-d-sep tree rooted at the recommended item.

    Candidate sets are subsets of the tree's history nodes, of size 1, 2, ... ``max_size``;
    within a size, ordered by summed tree distance (closer first). All candidates of a size
    (of every history in a batch) are validated in one batched model call; all valid sets of
    the first size that has one are returned. The ranking scores each item by its share of
    the minimal sets, then by closeness in the tree.

    The graphs come from :func:`recausal.discovery.discover_ids`. With several graphs a node's
    distance is its smallest over their trees, and the graph kept with the explanation is the
    one whose tree holds the set closest (its key is ``meta["graph_head"]``: the head's index,
    or ``None`` for the aggregate graph).

    Args:
        heads: ``"each"`` (the default, as in the reference code: one graph per head; on the
            planted-cause tests per-head graphs find the cause more often), ``"aggregate"``
            (one graph from the heads' summed covariance), ``"all"`` (both) or a head's index.
        max_candidates: cap on the sets tried per size and history.
        **params: the :class:`~recausal.explain.Explainer` parameters (``max_size``,
            ``removal``, ...) and the :class:`~recausal.discovery.DiscoverySettings`
            (``algorithm``, ``alpha``, ``order_aware``, ...).

    Example:
        >>> explainer = CausalExplainer(max_size=3, alpha=0.05)
        >>> explainer.explain(model, history).meta["graph_head"]  # doctest: +SKIP
        1
    """

    name = "causal"
    #: learn the graphs of equal-length histories together (False: one matrix at a time)
    _batched: bool = True

    def __init__(self, *, heads: Heads = "each", max_candidates: int = 5000, **params: Any) -> None:
        discovery = {k: params.pop(k) for k in list(params) if k in _SETTINGS}
        super().__init__(**params)
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

    def _graphs(self, batch: Batch, bases: list[Baseline]) -> list[_Graphs]:
        """Per history: the graphs learned (all histories in one pipeline call), their PDS
        trees and the tree searched. Full PAGs are built later, only for the graph kept."""
        targets = [b.target for b in bases]
        found = discover_ids(
            batch.model,
            batch.ids,
            targets,
            self.settings,
            self.heads,
            attentions=batch.attention(targets, self.settings.layer),
            batched=self._batched,
        )
        out = []
        for d in found:
            trees = tuple(d.pds_tree(key) for key in d.keys)
            out.append(_Graphs(d, trees, _merged(trees)))
        return out

    def _explain_batch(self, batch: Batch, bases: list[Baseline]) -> list[Found]:
        graphs = self._graphs(batch, bases)

        def candidates_of(u: int, size: int) -> list[tuple[int, ...]]:
            return list(itertools.islice(graphs[u].tree.candidate_sets(size), self.max_candidates))

        searched = search_by_size(batch, bases, candidates_of, self.max_size, self.removal)
        return [
            _found(len(ids), g, r) for ids, g, r in zip(batch.ids, graphs, searched, strict=True)
        ]


def _found(n: int, graphs: _Graphs, searched: Searched) -> Found:
    """The explanation of one window of ``n`` items from its search's result."""
    sets, tested = searched.sets, searched.tested
    trees, tree = graphs.trees, graphs.tree
    scores = share_of_sets(n, sets)
    for node, dist in tree.nodes.items():  # closeness in the tree breaks ties (< 0.25)
        if node < n:
            scores[node] += 0.5 / (2.0 + dist)
    # The graph shown with the explanation: the one whose tree holds the set closest.
    chosen = sets[0] if sets else ()
    best = min(range(len(trees)), key=lambda i: sum(trees[i].nodes.get(p, n + 1) for p in chosen))
    key = graphs.discovery.keys[best]
    meta = {"candidates_tested": tested, "tree_nodes": len(tree.nodes) - 1, "graph_head": key}
    return Found(
        sets,
        searched.replacement,
        scores,
        graph=graphs.discovery.pag(key),
        meta=meta,
        new_rank=searched.new_rank,
    )
