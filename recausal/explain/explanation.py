"""The result type of every explainer: an immutable :class:`Explanation` and its JSON form."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recausal.causal import PAG

#: version of the JSON form of :meth:`Explanation.to_dict` (docs/explanation-schema.md)
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class RankedItem:
    """One history item with the explainer's score (higher = more responsible)."""

    position: int
    item: str
    score: float


@dataclass(frozen=True)
class Explanation:
    """Why a model recommended ``recommended`` after ``history``.

    Positions index the user's **full** history (oldest = 0). The model reads only its window,
    ``history[window_start:]`` (the most recent ``capacity`` items); only window items are
    candidates, since removing an older item leaves what the model reads unchanged.

    Attributes:
        explainer: the explainer's name.
        history: the user's full history, oldest first.
        recommended: the item explained; ``rank`` its 1-based rank in ``top_k`` (1: the
            top-1); ``score`` its score; ``top_k`` the top-k list.
        criterion: what each set's removal does: ``"top-1 changes"`` (rank 1) or ``"leaves
            the top-k"`` (an item further down the list).
        sets: the minimal explanation sets found (full-history positions): removing any one
            of them from the history meets ``criterion``.
        ranking: every window item with its score, most responsible first.
        replacement: after removing ``sets[0]``, the item at the explained item's original
            rank (the new top-1 for the top-1); ``replacement_rank`` its 1-based rank in the
            original ``top_k`` (``None`` when it was not in it); ``new_rank`` the rank the
            explained item falls to.
        valid: False when no set up to ``max_size`` meets the criterion (when ``complete``)
            or none was found before the time budget ran out (when not).
        complete: False when the explanation's time budget ran out before its search ended:
            ``sets`` then holds the valid sets found so far (each meets the criterion, at the
            size the whole search would give; others as small may be missing), or none, and
            ``ranking`` the scores computed so far.
        removal: ``"delete"`` (older items slide into the window, see :attr:`slid_in`) or
            ``"pad"`` (the window stays fixed).
        exclude_seen: whether the history's items were left out of every ranking.
        model_calls, histories_scored, seconds: the cost of the explanation.
        meta: the explainer's parameters, the model and the explainer's own findings.
        graph: the causal graph the explanation was read from (causal explainer only); its
            node ``i`` is history position ``window_start + i``, its last node the item.

    Example:
        >>> e = get_explainer("causal").explain(model, history)  # doctest: +SKIP
        >>> e.valid, e.set_items[0], e.replacement  # doctest: +SKIP
        (True, ('172',), '181')
    """

    explainer: str
    history: tuple[str, ...]
    recommended: str
    score: float
    top_k: tuple[str, ...]
    sets: tuple[tuple[int, ...], ...]
    ranking: tuple[RankedItem, ...]
    replacement: str | None
    replacement_rank: int | None
    valid: bool
    max_size: int
    removal: str
    model_calls: int
    histories_scored: int
    seconds: float
    meta: dict[str, Any] = field(default_factory=dict)
    graph: PAG | None = field(default=None, compare=False, repr=False)
    rank: int = 1
    criterion: str = "top-1 changes"
    new_rank: int | None = None
    window_start: int = 0
    exclude_seen: bool = False
    complete: bool = True

    @property
    def slid_in(self) -> tuple[int, ...]:
        """Positions of the older items that slide into the model's window once ``sets[0]``
        is deleted (none with padding, or when the whole history fits)."""
        if not self.sets or self.removal != "delete":
            return ()
        start = max(0, self.window_start - len(self.sets[0]))
        return tuple(range(start, self.window_start))

    @property
    def set_items(self) -> tuple[tuple[str, ...], ...]:
        """The explanation sets as item tokens."""
        return tuple(tuple(self.history[p] for p in s) for s in self.sets)

    @property
    def size(self) -> int | None:
        """Size of the minimal explanation (``None`` when none was found)."""
        return len(self.sets[0]) if self.sets else None

    def to_dict(self, include_graph: bool = True) -> dict[str, Any]:
        """JSON-ready form (schema: docs/explanation-schema.md).

        Args:
            include_graph: add the causal graph (``"graph"``) when there is one.

        Returns:
            A dict of plain JSON values.
        """
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "explainer": self.explainer,
            "history": list(self.history),
            "recommended": self.recommended,
            "rank": self.rank,
            "criterion": self.criterion,
            "score": self.score,
            "top_k": list(self.top_k),
            "window_start": self.window_start,
            "exclude_seen": self.exclude_seen,
            "valid": self.valid,
            "complete": self.complete,
            "size": self.size,
            "sets": [
                {"positions": list(s), "items": [self.history[p] for p in s]} for s in self.sets
            ],
            "ranking": [
                {"position": r.position, "item": r.item, "score": r.score} for r in self.ranking
            ],
            "replacement": self.replacement,
            "replacement_rank": self.replacement_rank,
            "new_rank": self.new_rank,
            "slid_in": [{"position": p, "item": self.history[p]} for p in self.slid_in],
            "max_size": self.max_size,
            "removal": self.removal,
            "model_calls": self.model_calls,
            "histories_scored": self.histories_scored,
            "seconds": self.seconds,
            "meta": self.meta,
        }
        if include_graph and self.graph is not None:
            out["graph"] = self.graph.to_dict()
        return out

    def to_json(self, indent: int | None = None, include_graph: bool = True) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict(include_graph), indent=indent, ensure_ascii=False)
