"""Baseline explainers: attention, recency, random, occlusion, and exhaustive search."""

from __future__ import annotations

import itertools
import math

import numpy as np

from recausal.errors import InvalidInputError
from recausal.explain.base import (
    Baseline,
    Batch,
    Explainer,
    Found,
    RankingExplainer,
    Removal,
    remove_positions,
    share_of_sets,
)


class AttentionExplainer(RankingExplainer):
    """Ranks items by the attention the recommended item pays to them (deepest layer, mean over
    heads, abductive input): the baseline of the CLEAR and CLEANN papers."""

    name = "attention"

    def _position_scores(self, batch: Batch, bases: list[Baseline]) -> list[np.ndarray]:
        attention = batch.attention([b.target for b in bases])
        return [a[:, -1, :-1].mean(axis=0) for a in attention]


class RecencyExplainer(RankingExplainer):
    """Ranks items by recency: the most recent first."""

    name = "recency"

    def _position_scores(self, batch: Batch, bases: list[Baseline]) -> list[np.ndarray]:
        return [np.arange(1, len(ids) + 1, dtype=np.float64) / len(ids) for ids in batch.ids]


class RandomExplainer(RankingExplainer):
    """Ranks items in a random order (seeded, and the same for the same history)."""

    name = "random"

    def _position_scores(self, batch: Batch, bases: list[Baseline]) -> list[np.ndarray]:
        return [
            np.random.default_rng([self.seed, *ids.tolist()]).random(len(ids)) for ids in batch.ids
        ]


class OcclusionExplainer(RankingExplainer):
    """Ranks items by how much removing each one alone lowers the recommendation's score."""

    name = "occlusion"

    def _position_scores(self, batch: Batch, bases: list[Baseline]) -> list[np.ndarray]:
        owners = [u for u, ids in enumerate(batch.ids) for _ in range(len(ids))]
        seqs = [
            remove_positions(ids, [p], self.removal) for ids in batch.ids for p in range(len(ids))
        ]
        scores = batch.score(owners, seqs)
        out, offset = [], 0
        for ids, base in zip(batch.ids, bases, strict=True):
            rows = scores[offset : offset + len(ids), base.target]
            offset += len(ids)
            out.append(base.scores[base.target] - rows)
        return out


def search_by_size(
    batch: Batch,
    bases: list[Baseline],
    candidates_of,
    max_size: int,
    removal: Removal,
) -> list[tuple[tuple[tuple[int, ...], ...], int | None, int]]:
    """Try candidate sets of size 1, 2, ... ``max_size`` for every history, one batched model
    call per size; a history stops at the first size where some candidate changes its top-1.

    ``candidates_of(u, size)`` lists history ``u``'s candidates of that size (best first).
    Returns, per history, all valid sets of that size, the new top-1 after removing the first,
    and the number of candidates tested.
    """
    n_users = len(batch.ids)
    result: list = [((), None, 0)] * n_users
    pending = set(range(n_users))
    tested = [0] * n_users
    for size in range(1, max_size + 1):
        round_ = {u: candidates_of(u, size) for u in sorted(pending)}
        round_ = {u: c for u, c in round_.items() if c}
        pending &= set(round_)
        if not round_:
            break
        checked = batch.first_valid(round_, bases, removal)
        for u, cands in round_.items():
            tested[u] += len(cands)
            valid, new_top = checked[u]
            if valid:
                result[u] = (tuple(cands[i] for i in valid), int(new_top[valid[0]]), 0)
                pending.discard(u)
    return [(sets, rep, tested[u]) for u, (sets, rep, _) in enumerate(result)]


class ExhaustiveExplainer(Explainer):
    """All minimal sets that change the top-1, by trying every subset of size 1, 2, ...

    The ground truth for short histories. ``max_candidates`` bounds the subsets tried per
    size and history; past it the search stops with an error rather than run for hours.
    """

    name = "exhaustive"

    def __init__(
        self,
        max_size: int = 5,
        removal: Removal = "delete",
        seed: int = 0,
        exclude_seen: bool = False,
        max_candidates: int = 200_000,
    ) -> None:
        super().__init__(max_size, removal, seed, exclude_seen)
        self.max_candidates = max_candidates

    def get_params(self):
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

    def _explain_batch(self, batch: Batch, bases: list[Baseline]) -> list[Found]:
        searched = search_by_size(
            batch,
            bases,
            lambda u, size: self._candidates(len(batch.ids[u]), size),
            self.max_size,
            self.removal,
        )
        return [
            Found(sets, rep, share_of_sets(len(ids), sets), meta={"candidates_tested": t})
            for ids, (sets, rep, t) in zip(batch.ids, searched, strict=True)
        ]
