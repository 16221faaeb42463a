"""Baseline explainers: attention, recency, random, occlusion, and exhaustive search."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from recausal.errors import InvalidInputError
from recausal.explain.base import Explainer, Found, RankingExplainer, share_of_sets
from recausal.explain.batch import Baseline, Batch
from recausal.explain.search import Deadline, search_by_size


class AttentionExplainer(RankingExplainer):
    """Ranks items by the attention the explained item pays to them (deepest layer, mean over
    heads, abductive input): the baseline of the CLEAR and CLEANN papers."""

    name = "attention"

    def _position_scores(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[np.ndarray]:
        attention = batch.attention([b.target for b in bases])
        return [a[:, -1, :-1].mean(axis=0) for a in attention]


class RecencyExplainer(RankingExplainer):
    """Ranks items by recency: the most recent first."""

    name = "recency"

    def _position_scores(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[np.ndarray]:
        return [np.arange(1, len(ids) + 1, dtype=np.float64) / len(ids) for ids in batch.ids]


class RandomExplainer(RankingExplainer):
    """Ranks items in a random order (seeded, and the same for the same history)."""

    name = "random"

    def _position_scores(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[np.ndarray]:
        return [
            np.random.default_rng([self.seed, *ids.tolist()]).random(len(ids)) for ids in batch.ids
        ]


class OcclusionExplainer(RankingExplainer):
    """Ranks items by how much removing each one alone lowers the explained item's score."""

    name = "occlusion"

    def _position_scores(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[np.ndarray]:
        owners = [u for u, ids in enumerate(batch.ids) for _ in range(len(ids))]
        seqs = [
            batch.edit(u, [p], self.removal)
            for u, ids in enumerate(batch.ids)
            for p in range(len(ids))
        ]
        scores = batch.score(owners, seqs)
        out, offset = [], 0
        for ids, base in zip(batch.ids, bases, strict=True):
            rows = scores[offset : offset + len(ids), base.target]
            offset += len(ids)
            out.append(base.scores[base.target] - rows)
        return out


class ExhaustiveExplainer(Explainer):
    """All minimal sets that explain the item, by trying every subset of size 1, 2, ...

    The ground truth for short histories.

    Args:
        max_candidates: bound on the subsets tried per size and history; past it the search
            stops with an error rather than run for hours.
        **params: the :class:`~recausal.explain.Explainer` parameters (``max_size``, ...).
    """

    name = "exhaustive"

    def __init__(self, *, max_candidates: int = 200_000, **params: Any) -> None:
        super().__init__(**params)
        self.max_candidates = max_candidates

    def get_params(self) -> dict[str, Any]:
        return {**super().get_params(), "max_candidates": self.max_candidates}

    def _candidates(self, n: int, size: int) -> list[tuple[int, ...]]:
        if size > n:
            return []
        if math.comb(n, size) > self.max_candidates:
            raise InvalidInputError(
                f"exhaustive search over {math.comb(n, size)} sets of size {size} exceeds "
                f"max_candidates={self.max_candidates}; shorten the history or lower max_size"
            )
        return list(itertools.combinations(range(n), size))

    def _explain_batch(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[Found]:
        searched = search_by_size(
            batch,
            bases,
            lambda u, size: self._candidates(len(batch.ids[u]), size),
            self.max_size,
            self.removal,
            deadline,
        )
        return [
            Found(
                r.sets,
                r.replacement,
                share_of_sets(len(ids), r.sets),
                meta={"candidates_tested": r.tested},
                new_rank=r.new_rank,
                complete=r.complete,
            )
            for ids, r in zip(batch.ids, searched, strict=True)
        ]
