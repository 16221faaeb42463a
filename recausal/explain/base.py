"""The explainer interface.

Every explainer answers one question for one history: which history items caused the
model's top-1 recommendation? ``Explainer.explain(model, history, k=10)`` returns an
immutable :class:`~recausal.explain.Explanation`; ``explain_many`` does the same for a batch
of histories (explainers share model calls across users through a :class:`Batch`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from recausal._checks import check_int
from recausal._version import __version__
from recausal.errors import InvalidInputError
from recausal.explain.batch import Baseline, Batch, Removal
from recausal.explain.explanation import Explanation, RankedItem

if TYPE_CHECKING:
    from recausal.causal import PAG
    from recausal.models import SequentialModel


@dataclass(frozen=True)
class Found:
    """What an explainer found for one history, before it becomes an :class:`Explanation`."""

    sets: tuple[tuple[int, ...], ...]
    replacement: int | None
    position_scores: np.ndarray
    graph: PAG | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Explainer(ABC):
    """Base class: constructors only store parameters; ``explain`` does the work.

    Args:
        max_size: the largest explanation set tried.
        removal: ``"delete"`` the items of a set, or replace them by padding (``"pad"``).
        seed: seed of the explainers that draw at random.
        exclude_seen: never count a history's own items as its top-1.
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        max_size: int = 5,
        removal: Removal = "delete",
        seed: int = 0,
        exclude_seen: bool = False,
    ) -> None:
        self.max_size = check_int(max_size, "max_size", minimum=1)
        if removal not in ("delete", "pad"):
            raise InvalidInputError(f"removal must be 'delete' or 'pad', got {removal!r}")
        self.removal: Removal = removal
        self.seed = seed
        self.exclude_seen = bool(exclude_seen)

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (recorded in every explanation's ``meta``)."""
        return {
            "max_size": self.max_size,
            "removal": self.removal,
            "seed": self.seed,
            "exclude_seen": self.exclude_seen,
        }

    def explain(self, model: SequentialModel, history: Sequence[str], k: int = 10) -> Explanation:
        """Explain the top-1 recommendation for one history.

        Args:
            model: the recommender.
            history: item tokens, oldest first.
            k: the length of the recorded top-k list.

        Returns:
            The :class:`Explanation`.

        Example:
            >>> explainer = recausal.get_explainer("causal", max_size=3)  # doctest: +SKIP
            >>> explainer.explain(model, ["50", "172", "133"]).set_items  # doctest: +SKIP
            (('172',),)
        """
        return self.explain_many(model, [history], k=k)[0]

    def explain_many(
        self, model: SequentialModel, histories: Sequence[Sequence[str]], k: int = 10
    ) -> list[Explanation]:
        """Explain a batch of histories, sharing model calls across them.

        Each explanation's ``model_calls`` counts the batched forward passes its history took
        part in, ``histories_scored`` its own edited histories, and ``seconds`` its share of
        the batch's wall time. The results equal those of one-by-one calls.

        Args:
            model: the recommender.
            histories: item tokens of each history, oldest first.
            k: the length of the recorded top-k lists.

        Returns:
            One :class:`Explanation` per history.
        """
        check_int(k, "k", minimum=1)
        batch = Batch(model, [model.encode(h) for h in histories], self.exclude_seen)
        if not batch.ids:
            return []
        bases = batch.baselines(k)
        found = self._explain_batch(batch, bases)
        seconds = (time.perf_counter() - batch.start) / len(batch.ids)
        return [
            build_explanation(self, model, ids, base, result, batch.counts(u, seconds))
            for u, (ids, base, result) in enumerate(zip(batch.ids, bases, found, strict=True))
        ]

    @abstractmethod
    def _explain_batch(self, batch: Batch, bases: list[Baseline]) -> list[Found]:
        """The sets, replacement and position scores for every history of the batch."""

    def _meta(self, model: SequentialModel) -> dict[str, Any]:
        return {
            "explainer": self.name,
            "params": self.get_params(),
            "model": model.name,
            "bundle": str(model.path) if model.path else None,
            "recausal_version": __version__,
        }


def build_explanation(
    explainer: Explainer,
    model: SequentialModel,
    ids: np.ndarray,
    base: Baseline,
    found: Found,
    counts: dict[str, Any],
) -> Explanation:
    """Assemble an :class:`Explanation` (ranking sorted by score, more recent first on ties)."""
    history = tuple(model.decode(ids))
    scores = found.position_scores
    order = ranking_order(scores)
    replacement = found.replacement
    return Explanation(
        explainer=explainer.name,
        history=history,
        recommended=model.items[base.target],
        score=float(base.scores[base.target]),
        top_k=tuple(model.items[i] for i in base.top_k),
        sets=tuple(tuple(sorted(int(p) for p in s)) for s in found.sets),
        ranking=tuple(RankedItem(p, history[p], float(scores[p])) for p in order),
        replacement=None if replacement is None else model.items[replacement],
        replacement_rank=None if replacement is None else base.rank_of(replacement),
        valid=bool(found.sets),
        max_size=explainer.max_size,
        removal=explainer.removal,
        **counts,
        meta={**explainer._meta(model), **found.meta},
        graph=found.graph,
    )


def ranking_order(scores: np.ndarray) -> list[int]:
    """Positions by descending score; ties: the more recent first."""
    return sorted(range(len(scores)), key=lambda p: (-scores[p], -p))


def share_of_sets(n: int, sets: Sequence[tuple[int, ...]]) -> np.ndarray:
    """Each position's share of the minimal sets it belongs to."""
    scores = np.zeros(n)
    for s in sets:
        scores[list(s)] += 1.0 / len(sets)
    return scores


class RankingExplainer(Explainer):
    """An explainer that ranks history items; its explanation is the smallest prefix of the
    ranking whose removal changes the top-1 (all prefixes of all histories in one batch)."""

    @abstractmethod
    def _position_scores(self, batch: Batch, bases: list[Baseline]) -> list[np.ndarray]:
        """One score per history position, for every history (higher = more responsible)."""

    def _explain_batch(self, batch: Batch, bases: list[Baseline]) -> list[Found]:
        all_scores = [np.asarray(s, dtype=np.float64) for s in self._position_scores(batch, bases)]
        prefixes = {}
        for u, scores in enumerate(all_scores):
            order = ranking_order(scores)
            prefixes[u] = [tuple(order[:m]) for m in range(1, min(self.max_size, len(order)) + 1)]
        checked = batch.first_valid(prefixes, bases, self.removal)
        found = []
        for u, scores in enumerate(all_scores):
            valid, new_top = checked[u]
            if valid:
                found.append(Found((prefixes[u][valid[0]],), int(new_top[valid[0]]), scores))
            else:
                found.append(Found((), None, scores))
        return found
