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

    def __init__(
        self,
        max_size: int = 5,
        removal: Removal = "delete",
        seed: int = 0,
        exclude_seen: bool = False,
    ) -> None:
        if not isinstance(max_size, int) or isinstance(max_size, bool) or max_size < 1:
            raise InvalidInputError(f"max_size must be a positive integer, got {max_size!r}")
        if removal not in ("delete", "pad"):
            raise InvalidInputError(f"removal must be 'delete' or 'pad', got {removal!r}")
        self.max_size = max_size
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
        """Explain the top-1 recommendation for one history (item tokens, oldest first)."""
        return self.explain_many(model, [history], k=k)[0]

    def explain_many(
        self, model: SequentialModel, histories: Sequence[Sequence[str]], k: int = 10
    ) -> list[Explanation]:
        """Explain a batch of histories, sharing model calls across them.

        Each explanation's ``model_calls`` counts the batched forward passes its history took
        part in, ``histories_scored`` its own edited histories, and ``seconds`` its share of
        the batch's wall time. The results equal those of one-by-one calls.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
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
        from recausal import __version__

        return {
            "explainer": self.name,
            "params": self.get_params(),
            "model": model.name,
            "bundle": str(model.path) if model.path else None,
            "recausal_version": __version__,
        }


@dataclass(frozen=True)
class Baseline:
    """The unedited history's scores: the recommendation and its top-k list."""

    scores: np.ndarray
    target: int
    top_k: tuple[int, ...]

    @classmethod
    def from_scores(cls, scores: np.ndarray, k: int) -> Baseline:
        """The top-1 and top-k of one score vector (ties: lower item id first)."""
        from recausal.models.adapter import top_k_ids

        top = top_k_ids(scores, min(k, len(scores) - 1))
        return cls(scores=scores, target=int(top[0]), top_k=tuple(int(i) for i in top))

    def rank_of(self, item_id: int) -> int | None:
        """1-based rank of ``item_id`` in the original top-k, or None."""
        return self.top_k.index(item_id) + 1 if item_id in self.top_k else None


@dataclass(frozen=True)
class Found:
    """What an explainer found for one history, before it becomes an :class:`Explanation`."""

    sets: tuple[tuple[int, ...], ...]
    replacement: int | None
    position_scores: np.ndarray
    graph: PAG | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Batch:
    """Encoded histories explained together: batched model calls with per-history accounting."""

    #: histories per forward pass when scoring
    batch_size: ClassVar[int] = 1024

    def __init__(
        self, model: SequentialModel, ids: list[np.ndarray], exclude_seen: bool = False
    ) -> None:
        self.model = model
        self.ids = ids
        #: with ``exclude_seen``, each history's own items never count as its top-1 — neither
        #: for the recommendation nor after a removal (a fixed candidate pool per user)
        self.seen = [np.unique(i) for i in ids] if exclude_seen else None
        self.start = time.perf_counter()
        self.calls = np.zeros(len(ids), dtype=np.int64)
        self.rows = np.zeros(len(ids), dtype=np.int64)

    def _account(self, owners: Sequence[int], chunk: int) -> None:
        owners = np.asarray(owners, dtype=np.int64)
        if owners.size == 0:
            return
        pairs = np.unique(np.stack([owners, np.arange(owners.size) // chunk]), axis=1)
        np.add.at(self.calls, pairs[0], 1)
        np.add.at(self.rows, owners, 1)

    def _score_ids(self, owners: Sequence[int], seqs: Sequence[np.ndarray]) -> np.ndarray:
        """The model's scores of ``seqs``, each an edit of history ``owners[i]`` or the history
        itself (the model may reuse what an edit shares with its history); not counted."""
        from recausal.models.adapter import Edits

        return self.model.score_ids(Edits(seqs, self.ids, owners), batch_size=self.batch_size)

    def score(self, owners: Sequence[int], seqs: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of ``seqs`` (row ``i`` belongs to history ``owners[i]``), in one batch."""
        out = self._score_ids(owners, seqs)
        self._account(owners, self.batch_size)
        return out

    def _mask_seen(self, scores: np.ndarray, owners: Sequence[int]) -> np.ndarray:
        if self.seen is not None:
            for row, u in enumerate(owners):
                scores[row, self.seen[u]] = -np.inf
        return scores

    def top1(self, owners: Sequence[int], seqs: Sequence[np.ndarray]) -> np.ndarray:
        """The top-1 item id of each of ``seqs``: as ``score(...).argmax(axis=1)``, but scored
        chunk by chunk so that memory stays bounded however many sets are tried."""
        out = np.empty(len(seqs), dtype=np.int64)
        for start in range(0, len(seqs), self.batch_size):
            chunk = owners[start : start + self.batch_size]
            scores = self._score_ids(chunk, seqs[start : start + len(chunk)])
            self._mask_seen(scores, chunk)
            out[start : start + len(chunk)] = scores.argmax(axis=1)
        self._account(owners, self.batch_size)
        return out

    def attention(
        self, targets: Sequence[int], layer: int = -1, chunk: int = 256
    ) -> list[np.ndarray]:
        """Per-head attention of every history with its target appended (chunked passes)."""
        out: list[np.ndarray] = []
        for start in range(0, len(self.ids), chunk):
            stop = min(start + chunk, len(self.ids))
            out += self.model.attention_ids(self.ids[start:stop], targets[start:stop], layer)
        self.calls += 1
        return out

    def baselines(self, k: int) -> list[Baseline]:
        """Score every unedited history once."""
        scores = self._mask_seen(self.score(range(len(self.ids)), self.ids), range(len(self.ids)))
        return [Baseline.from_scores(row, k) for row in scores]

    def first_valid(
        self,
        candidates: dict[int, Sequence[tuple[int, ...]]],
        bases: Sequence[Baseline],
        removal: Removal,
    ) -> dict[int, tuple[list[int], np.ndarray]]:
        """Score every history's candidate removals in one batch; per history, the indices
        of the candidates that change its top-1, and each candidate's new top-1."""
        owners: list[int] = []
        seqs: list[np.ndarray] = []
        for u, cands in candidates.items():
            owners += [u] * len(cands)
            seqs += [remove_positions(self.ids[u], c, removal) for c in cands]
        if not seqs:
            return {u: ([], np.empty(0, dtype=np.int64)) for u in candidates}
        new_top = self.top1(owners, seqs)
        result: dict[int, tuple[list[int], np.ndarray]] = {}
        offset = 0
        for u, cands in candidates.items():
            tops = new_top[offset : offset + len(cands)]
            offset += len(cands)
            result[u] = ([i for i, t in enumerate(tops) if t != bases[u].target], tops)
        return result

    def counts(self, u: int, seconds: float) -> dict[str, Any]:
        """``model_calls``, ``histories_scored`` and ``seconds`` of history ``u``."""
        return {
            "model_calls": int(self.calls[u]),
            "histories_scored": int(self.rows[u]),
            "seconds": round(seconds, 6),
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
