"""Histories explained together: batched model calls, per-history accounting, and the
size-by-size search for sets whose removal changes the top-1."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

if TYPE_CHECKING:
    from recausal.models import SequentialModel

Removal = Literal["delete", "pad"]
#: candidate sets of one history and size: ``candidates_of(u, size)``, best first
CandidatesOf = Callable[[int, int], Sequence[tuple[int, ...]]]


def remove_positions(ids: np.ndarray, positions: Iterable[int], removal: Removal) -> np.ndarray:
    """The encoded history with ``positions`` deleted, or replaced by padding (id 0).

    Args:
        ids: an encoded history.
        positions: the positions to remove (oldest = 0).
        removal: ``"delete"`` (the history gets shorter) or ``"pad"`` (id 0 in their place).

    Returns:
        A new array.

    Example:
        >>> remove_positions(np.array([5, 6, 7]), [1], "pad").tolist()
        [5, 0, 7]
    """
    positions = list(positions)
    if removal == "delete":
        return np.delete(ids, positions)
    out = ids.copy()
    out[positions] = 0
    return out


@dataclass(frozen=True)
class Baseline:
    """The unedited history's scores: the recommendation and its top-k list."""

    scores: np.ndarray
    target: int
    top_k: tuple[int, ...]

    @classmethod
    def from_scores(cls, scores: np.ndarray, k: int) -> Baseline:
        """The top-1 and top-k of one score vector (ties: lower item id first)."""
        from recausal.models import top_k_ids

        top = top_k_ids(scores, min(k, len(scores) - 1))
        return cls(scores=scores, target=int(top[0]), top_k=tuple(int(i) for i in top))

    def rank_of(self, item_id: int) -> int | None:
        """1-based rank of ``item_id`` in the original top-k, or None."""
        return self.top_k.index(item_id) + 1 if item_id in self.top_k else None


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
        from recausal.models import Edits

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


def search_by_size(
    batch: Batch,
    bases: list[Baseline],
    candidates_of: CandidatesOf,
    max_size: int,
    removal: Removal,
) -> list[tuple[tuple[tuple[int, ...], ...], int | None, int]]:
    """Try candidate sets of size 1, 2, ... ``max_size`` for every history, one batched model
    call per size; a history stops at the first size where some candidate changes its top-1.

    Args:
        batch: the histories.
        bases: their unedited scores.
        candidates_of: ``candidates_of(u, size)`` lists history ``u``'s candidates of that
            size, best first.
        max_size: the largest size tried.
        removal: how a set is removed (see :func:`remove_positions`).

    Returns:
        Per history: all valid sets of the first size that has one, the new top-1 after
        removing the first of them, and the number of candidates tested.
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
