"""The explainer interface and its result type.

Every explainer answers one question for one history: which history items caused the
model's top-1 recommendation? ``Explainer.explain(model, history, k=10)`` returns an
immutable :class:`Explanation`; ``explain_many`` does the same for a batch of histories
(explainers override it to share model calls across users).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.causal.pag import PAG
    from recausal.models.adapter import SequentialModel

Removal = Literal["delete", "pad"]
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RankedItem:
    """One history item with the explainer's score (higher = more responsible)."""

    position: int
    item: str
    score: float


@dataclass(frozen=True)
class Explanation:
    """Why a model recommended ``recommended`` after ``history``.

    ``sets`` are the minimal explanation sets found (positions into ``history``, oldest = 0):
    removing any one of them changes the top-1. ``replacement`` is the new top-1 after
    removing ``sets[0]``; ``replacement_rank`` its 1-based rank in the original ``top_k``
    (``None`` when it was not in it). ``valid`` is False when no set up to ``max_size`` changes
    the recommendation.
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

    @property
    def set_items(self) -> tuple[tuple[str, ...], ...]:
        """The explanation sets as item tokens."""
        return tuple(tuple(self.history[p] for p in s) for s in self.sets)

    @property
    def size(self) -> int | None:
        """Size of the minimal explanation (``None`` when none was found)."""
        return len(self.sets[0]) if self.sets else None

    def to_dict(self, include_graph: bool = True) -> dict[str, Any]:
        """JSON-ready form (schema: docs/explanation-schema.md)."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "explainer": self.explainer,
            "history": list(self.history),
            "recommended": self.recommended,
            "score": self.score,
            "top_k": list(self.top_k),
            "valid": self.valid,
            "size": self.size,
            "sets": [
                {"positions": list(s), "items": [self.history[p] for p in s]} for s in self.sets
            ],
            "ranking": [
                {"position": r.position, "item": r.item, "score": r.score} for r in self.ranking
            ],
            "replacement": self.replacement,
            "replacement_rank": self.replacement_rank,
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


def remove_positions(ids: np.ndarray, positions: Iterable[int], removal: Removal) -> np.ndarray:
    """The encoded history with ``positions`` deleted, or replaced by padding (id 0)."""
    positions = list(positions)
    if removal == "delete":
        return np.delete(ids, positions)
    out = ids.copy()
    out[positions] = 0
    return out


class Explainer(ABC):
    """Base class: constructors only store parameters; ``explain`` does the work."""

    name: ClassVar[str] = ""

    def __init__(self, max_size: int = 5, removal: Removal = "delete", seed: int = 0) -> None:
        if not isinstance(max_size, int) or max_size < 1:
            raise InvalidInputError(f"max_size must be a positive integer, got {max_size!r}")
        if removal not in ("delete", "pad"):
            raise InvalidInputError(f"removal must be 'delete' or 'pad', got {removal!r}")
        self.max_size = max_size
        self.removal: Removal = removal
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (recorded in every explanation's ``meta``)."""
        return {"max_size": self.max_size, "removal": self.removal, "seed": self.seed}

    def explain(self, model: SequentialModel, history: Sequence[str], k: int = 10) -> Explanation:
        """Explain the top-1 recommendation for one history (item tokens, oldest first)."""
        return self.explain_many(model, [history], k=k)[0]

    def explain_many(
        self, model: SequentialModel, histories: Sequence[Sequence[str]], k: int = 10
    ) -> list[Explanation]:
        """Explain a batch of histories; the default runs them one by one."""
        if not isinstance(k, int) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        return [self._explain_one(model, model.encode(h), k) for h in histories]

    @abstractmethod
    def _explain_one(self, model: SequentialModel, ids: np.ndarray, k: int) -> Explanation:
        """Explain one encoded history."""

    def _meta(self, model: SequentialModel) -> dict[str, Any]:
        from recausal import __version__

        return {
            "explainer": self.name,
            "params": self.get_params(),
            "model": model.name,
            "bundle": str(model.path) if model.path else None,
            "recausal_version": __version__,
        }


class Timer:
    """Wall time and model-call counts of one explanation."""

    def __init__(self, model: SequentialModel) -> None:
        self.model = model
        self.start = time.perf_counter()
        self.passes = model.forward_passes
        self.scored = model.histories_scored

    def counts(self) -> dict[str, Any]:
        """``model_calls``, ``histories_scored`` and ``seconds`` since construction."""
        return {
            "model_calls": self.model.forward_passes - self.passes,
            "histories_scored": self.model.histories_scored - self.scored,
            "seconds": round(time.perf_counter() - self.start, 6),
        }


@dataclass(frozen=True)
class Baseline:
    """The unedited history's scores: the recommendation and its top-k list."""

    scores: np.ndarray
    target: int
    top_k: tuple[int, ...]

    @classmethod
    def of(cls, model: SequentialModel, ids: np.ndarray, k: int) -> Baseline:
        """Score ``ids`` once and record the top-1 and top-k."""
        scores = model.score_ids([ids])[0]
        k = min(k, len(scores) - 1)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.lexsort((top, -scores[top]))]
        return cls(scores=scores, target=int(top[0]), top_k=tuple(int(i) for i in top))

    def rank_of(self, item_id: int) -> int | None:
        """1-based rank of ``item_id`` in the original top-k, or None."""
        return self.top_k.index(item_id) + 1 if item_id in self.top_k else None


def first_valid(
    model: SequentialModel,
    ids: np.ndarray,
    candidates: Sequence[tuple[int, ...]],
    target: int,
    removal: Removal,
) -> tuple[list[int], np.ndarray]:
    """Score every candidate removal in one batch; return the indices of those that change
    the top-1 away from ``target``, and the new top-1 of each candidate."""
    if not candidates:
        return [], np.empty(0, dtype=np.int64)
    edited = [remove_positions(ids, c, removal) for c in candidates]
    new_top = model.score_ids(edited).argmax(axis=1)
    return [i for i, t in enumerate(new_top) if t != target], new_top


def build_explanation(
    explainer: Explainer,
    model: SequentialModel,
    ids: np.ndarray,
    base: Baseline,
    sets: Sequence[tuple[int, ...]],
    replacement: int | None,
    position_scores: np.ndarray,
    timer: Timer,
    graph: PAG | None = None,
    extra_meta: dict[str, Any] | None = None,
) -> Explanation:
    """Assemble an :class:`Explanation` (ranking sorted by score, more recent first on ties)."""
    history = tuple(model.decode(ids))
    order = sorted(range(len(ids)), key=lambda p: (-position_scores[p], -p))
    return Explanation(
        explainer=explainer.name,
        history=history,
        recommended=model.items[base.target],
        score=float(base.scores[base.target]),
        top_k=tuple(model.items[i] for i in base.top_k),
        sets=tuple(tuple(sorted(int(p) for p in s)) for s in sets),
        ranking=tuple(RankedItem(p, history[p], float(position_scores[p])) for p in order),
        replacement=None if replacement is None else model.items[replacement],
        replacement_rank=None if replacement is None else base.rank_of(replacement),
        valid=bool(sets),
        max_size=explainer.max_size,
        removal=explainer.removal,
        **timer.counts(),
        meta={**explainer._meta(model), **(extra_meta or {})},
        graph=graph,
    )


class RankingExplainer(Explainer):
    """An explainer that ranks history items; its explanation is the smallest prefix of the
    ranking whose removal changes the top-1 (all prefixes are scored in one batch)."""

    @abstractmethod
    def _position_scores(
        self, model: SequentialModel, ids: np.ndarray, base: Baseline
    ) -> np.ndarray:
        """One score per history position (higher = more responsible)."""

    def _explain_one(self, model: SequentialModel, ids: np.ndarray, k: int) -> Explanation:
        timer = Timer(model)
        base = Baseline.of(model, ids, k)
        scores = np.asarray(self._position_scores(model, ids, base), dtype=np.float64)
        order = sorted(range(len(ids)), key=lambda p: (-scores[p], -p))
        prefixes = [tuple(order[:m]) for m in range(1, min(self.max_size, len(ids)) + 1)]
        valid, new_top = first_valid(model, ids, prefixes, base.target, self.removal)
        sets = [prefixes[valid[0]]] if valid else []
        replacement = int(new_top[valid[0]]) if valid else None
        return build_explanation(self, model, ids, base, sets, replacement, scores, timer)
