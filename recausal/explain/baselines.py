"""Baseline explainers: attention, recency, random, occlusion, and exhaustive search."""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np

from recausal.errors import InvalidInputError
from recausal.explain.base import (
    Baseline,
    Explainer,
    Explanation,
    RankingExplainer,
    Timer,
    build_explanation,
    first_valid,
)

if TYPE_CHECKING:
    from recausal.models.adapter import SequentialModel


class AttentionExplainer(RankingExplainer):
    """Ranks items by the attention the recommended item pays to them (deepest layer, mean over
    heads, abductive input) — the baseline of the CLEAR and CLEANN papers."""

    name = "attention"

    def _position_scores(self, model: SequentialModel, ids: np.ndarray, base: Baseline):
        attn = model.attention_ids([ids], [base.target])[0]
        return attn[:, -1, :-1].mean(axis=0)


class RecencyExplainer(RankingExplainer):
    """Ranks items by recency: the most recent first."""

    name = "recency"

    def _position_scores(self, model: SequentialModel, ids: np.ndarray, base: Baseline):
        return np.arange(1, len(ids) + 1, dtype=np.float64) / len(ids)


class RandomExplainer(RankingExplainer):
    """Ranks items in a random order (seeded, and the same for the same history)."""

    name = "random"

    def _position_scores(self, model: SequentialModel, ids: np.ndarray, base: Baseline):
        rng = np.random.default_rng([self.seed, *ids.tolist()])
        return rng.random(len(ids))


class OcclusionExplainer(RankingExplainer):
    """Ranks items by how much removing each one alone lowers the recommendation's score."""

    name = "occlusion"

    def _position_scores(self, model: SequentialModel, ids: np.ndarray, base: Baseline):
        from recausal.explain.base import remove_positions

        edited = [remove_positions(ids, [p], self.removal) for p in range(len(ids))]
        scores = model.score_ids(edited)
        return base.scores[base.target] - scores[:, base.target]


class ExhaustiveExplainer(Explainer):
    """All minimal sets that change the top-1, by trying every subset of size 1, 2, ...

    The ground truth for short histories. ``max_candidates`` bounds the subsets tried per
    size; past it the search stops with an error rather than run for hours.
    """

    name = "exhaustive"

    def __init__(
        self, max_size: int = 5, removal="delete", seed: int = 0, max_candidates: int = 200_000
    ) -> None:
        super().__init__(max_size, removal, seed)
        self.max_candidates = max_candidates

    def get_params(self):
        return {**super().get_params(), "max_candidates": self.max_candidates}

    def _explain_one(self, model: SequentialModel, ids: np.ndarray, k: int) -> Explanation:
        timer = Timer(model)
        base = Baseline.of(model, ids, k)
        n = len(ids)
        sets: list[tuple[int, ...]] = []
        replacement = None
        for size in range(1, min(self.max_size, n) + 1):
            if math.comb(n, size) > self.max_candidates:
                raise InvalidInputError(
                    f"exhaustive search over {math.comb(n, size)} sets of size {size} exceeds "
                    f"max_candidates={self.max_candidates}; shorten the history or lower max_size"
                )
            candidates = list(itertools.combinations(range(n), size))
            valid, new_top = first_valid(model, ids, candidates, base.target, self.removal)
            if valid:
                sets = [candidates[i] for i in valid]
                replacement = int(new_top[valid[0]])
                break
        scores = np.zeros(n)
        for s in sets:
            scores[list(s)] += 1.0 / len(sets)
        return build_explanation(self, model, ids, base, sets, replacement, scores, timer)
