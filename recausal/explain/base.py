"""The explainer interface.

Every explainer answers one question for one history: which history items caused the model
to recommend an item (the top-1 by default, or any item of the top-k list)?
``Explainer.explain(model, history, k=10)`` returns an immutable
:class:`~recausal.explain.Explanation`; ``explain_many`` does the same for a batch
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
from recausal.errors import InvalidInputError, UnknownItemError
from recausal.explain.batch import Baseline, Batch, Removal
from recausal.explain.explanation import Explanation, RankedItem
from recausal.explain.search import Deadline

if TYPE_CHECKING:
    from recausal.causal import PAG
    from recausal.models import SequentialModel


@dataclass(frozen=True)
class Found:
    """What an explainer found for one history, before it becomes an :class:`Explanation`.

    Positions are window positions (see :class:`~recausal.explain.batch.Batch`); ``complete``
    is False when a deadline cut the search short.
    """

    sets: tuple[tuple[int, ...], ...]
    replacement: int | None
    position_scores: np.ndarray
    graph: PAG | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    new_rank: int | None = None
    complete: bool = True


class Explainer(ABC):
    """Base class: constructors only store parameters; ``explain`` does the work.

    Args:
        max_size: the largest explanation set tried.
        removal: ``"delete"`` the items of a set from the user's full history (older items
            slide into the model's window), or replace them by padding (``"pad"``: the window
            stays where it is).
        seed: seed of the explainers that draw at random.
        exclude_seen: leave the items of the history out of the recommendations (``True``),
            keep them (``False``), or follow the model's default (``None``: left out when
            its dataset has no repeated interactions, see ``SequentialModel.excludes_seen``).
    """

    name: ClassVar[str] = ""

    def __init__(
        self,
        *,
        max_size: int = 5,
        removal: Removal = "delete",
        seed: int = 0,
        exclude_seen: bool | None = None,
    ) -> None:
        self.max_size = check_int(max_size, "max_size", minimum=1)
        if removal not in ("delete", "pad"):
            raise InvalidInputError(f"removal must be 'delete' or 'pad', got {removal!r}")
        if exclude_seen is not None and not isinstance(exclude_seen, bool):
            raise InvalidInputError(
                f"exclude_seen must be True, False or None; got {exclude_seen!r}"
            )
        self.removal: Removal = removal
        self.seed = seed
        self.exclude_seen = exclude_seen

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (recorded in every explanation's ``meta``)."""
        return {
            "max_size": self.max_size,
            "removal": self.removal,
            "seed": self.seed,
            "exclude_seen": self.exclude_seen,
        }

    def explain(
        self,
        model: SequentialModel,
        history: Sequence[str],
        k: int = 10,
        *,
        item: str | None = None,
        rank: int | None = None,
        time_budget: float | Deadline | None = None,
    ) -> Explanation:
        """Explain one recommendation for one history: the top-1, or any item of the top-k.

        For the top-1, an explanation is a smallest set of history items whose removal changes
        the top-1; for an item further down the list, a smallest set whose removal moves it
        out of the top-k.

        With a time budget, the search stops once it has run out, before its next batched
        model call, and the explanation holds what was found so far, marked incomplete
        (``complete=False``). The model calls that make the ranking in one pass (the history's
        own scores, attention, graph learning, occlusion) always run.

        Args:
            model: the recommender.
            history: the user's item tokens, oldest first (all of them: the model reads the
                most recent ``capacity``, and removals are made to the whole history).
            k: the length of the top-k list.
            item: the item token to explain (it must be in the top-k), or ``None``.
            rank: the 1-based rank of the item to explain, or ``None`` (the top-1); give
                ``item`` or ``rank``, not both.
            time_budget: seconds the explanation may take (``0``: no model call that can be
                skipped), a :class:`~recausal.explain.search.Deadline`, or ``None`` (no
                limit).

        Returns:
            The :class:`Explanation`.

        Example:
            >>> explainer = recausal.get_explainer("causal", max_size=3)  # doctest: +SKIP
            >>> explainer.explain(model, ["50", "172", "133"], rank=3).set_items  # doctest: +SKIP
            (('172',),)
        """
        return self.explain_many(
            model, [history], k=k, items=[item], ranks=[rank], time_budget=time_budget
        )[0]

    def explain_many(
        self,
        model: SequentialModel,
        histories: Sequence[Sequence[str]],
        k: int = 10,
        *,
        items: Sequence[str | None] | None = None,
        ranks: Sequence[int | None] | None = None,
        time_budget: float | Deadline | None = None,
    ) -> list[Explanation]:
        """Explain a batch of histories, sharing model calls across them.

        Each explanation's ``model_calls`` counts the batched forward passes its history took
        part in, ``histories_scored`` its own edited histories, and ``seconds`` its share of
        the batch's wall time. The results equal those of one-by-one calls.

        Args:
            model: the recommender.
            histories: item tokens of each history, oldest first.
            k: the length of the top-k lists.
            items: per history, the item token to explain, or ``None``.
            ranks: per history, the 1-based rank of the item to explain, or ``None``.
            time_budget: seconds the whole batch may take, a
                :class:`~recausal.explain.search.Deadline`, or ``None`` (see :meth:`explain`);
                each history cut short is marked incomplete.

        Returns:
            One :class:`Explanation` per history.
        """
        deadline = Deadline.of(time_budget)
        check_int(k, "k", minimum=1, maximum=model.n_items - 1)
        item_ids, rank_list = _targets(model, len(histories), k, items, ranks)
        exclude = model.seen_policy(self.exclude_seen)
        batch = Batch(model, [model.encode(h, window=False) for h in histories], exclude)
        if not batch.ids:
            return []
        bases = batch.baselines(k, item_ids, rank_list)
        found = self._explain_batch(batch, bases, deadline)
        seconds = (time.perf_counter() - batch.start) / len(batch.ids)
        return [
            build_explanation(self, batch, u, base, result, exclude, seconds)
            for u, (base, result) in enumerate(zip(bases, found, strict=True))
        ]

    @abstractmethod
    def _explain_batch(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[Found]:
        """The sets, replacement and position scores for every history of the batch; no
        batched model call of the search starts once ``deadline`` has passed."""

    def _meta(self, model: SequentialModel) -> dict[str, Any]:
        return {
            "explainer": self.name,
            "params": self.get_params(),
            "model": model.name,
            "bundle": str(model.path) if model.path else None,
            "recausal_version": __version__,
        }


def _targets(
    model: SequentialModel,
    n: int,
    k: int,
    items: Sequence[str | None] | None,
    ranks: Sequence[int | None] | None,
) -> tuple[list[int | None], list[int | None]]:
    """Check the per-history items and ranks to explain; item tokens become ids."""
    items = list(items) if items is not None else [None] * n
    ranks = list(ranks) if ranks is not None else [None] * n
    if len(items) != n or len(ranks) != n:
        raise InvalidInputError(f"items and ranks must have one entry per history ({n})")
    item_ids: list[int | None] = []
    for item, rank in zip(items, ranks, strict=True):
        if item is not None and rank is not None:
            raise InvalidInputError("give the item to explain or its rank, not both")
        if rank is not None:
            check_int(rank, "rank", minimum=1, maximum=k)
        if item is None:
            item_ids.append(None)
        elif str(item) not in model.item_ids:
            raise UnknownItemError(f"item {item!r} is not known to model {model.name}")
        else:
            item_ids.append(model.item_ids[str(item)])
    return item_ids, ranks


def build_explanation(
    explainer: Explainer,
    batch: Batch,
    u: int,
    base: Baseline,
    found: Found,
    exclude_seen: bool,
    seconds: float,
) -> Explanation:
    """Assemble the :class:`Explanation` of history ``u`` of ``batch``: window positions
    become full-history positions; the ranking is sorted by score, more recent first on ties."""
    model = batch.model
    offset = batch.offsets[u]
    history = tuple(model.decode(batch.full[u]))
    scores = found.position_scores
    order = ranking_order(scores)
    replacement = found.replacement
    meta = explainer._meta(model)
    meta["params"]["exclude_seen"] = exclude_seen
    return Explanation(
        explainer=explainer.name,
        history=history,
        recommended=model.items[base.target],
        score=float(base.scores[base.target]),
        top_k=tuple(model.items[i] for i in base.top_k),
        sets=tuple(tuple(sorted(offset + int(p) for p in s)) for s in found.sets),
        ranking=tuple(
            RankedItem(offset + p, history[offset + p], float(scores[p])) for p in order
        ),
        replacement=None if replacement is None else model.items[replacement],
        replacement_rank=None if replacement is None else base.rank_of(replacement),
        valid=bool(found.sets),
        max_size=explainer.max_size,
        removal=explainer.removal,
        **batch.counts(u, seconds),
        meta={**meta, **found.meta},
        graph=found.graph,
        rank=base.rank,
        criterion=base.criterion,
        new_rank=found.new_rank,
        window_start=offset,
        exclude_seen=exclude_seen,
        complete=found.complete,
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
    def _position_scores(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[np.ndarray | None]:
        """One score per history position, for every history (higher = more responsible);
        ``None`` for a history whose scores a passed ``deadline`` left uncomputed."""

    def _explain_batch(
        self, batch: Batch, bases: list[Baseline], deadline: Deadline
    ) -> list[Found]:
        all_scores = [
            None if s is None else np.asarray(s, dtype=np.float64)
            for s in self._position_scores(batch, bases, deadline)
        ]
        prefixes = {}
        for u, scores in enumerate(all_scores):
            if scores is not None:
                order = ranking_order(scores)
                prefixes[u] = [
                    tuple(order[:m]) for m in range(1, min(self.max_size, len(order)) + 1)
                ]
        checked = batch.first_valid(prefixes, bases, self.removal, deadline)
        found = []
        for u, scores in enumerate(all_scores):
            if scores is None:  # no ranking: nothing to validate
                found.append(Found((), None, np.zeros(len(batch.ids[u])), complete=False))
                continue
            valid, outcomes = checked.get(u, ([], None))
            if valid:  # every shorter prefix was checked before it: the search's answer
                first = valid[0]
                found.append(
                    Found(
                        (prefixes[u][first],),
                        int(outcomes.replacement[first]),
                        scores,
                        new_rank=int(outcomes.new_rank[first]),
                    )
                )
            else:
                n = 0 if outcomes is None else len(outcomes.changed)
                found.append(Found((), None, scores, complete=n == len(prefixes[u])))
        return found
