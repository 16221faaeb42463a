"""Histories explained together: the counterfactual rule (edits of the full history, read
through the model's window), batched model calls (stopping at a :class:`Deadline`) and
per-history accounting. The size-by-size search for sets whose removal explains the item is
in :mod:`recausal.explain.search`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, overload

import numpy as np

from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.models import SequentialModel

Removal = Literal["delete", "pad"]


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
class Deadline:
    """The time on ``clock`` at which an explanation stops searching: once it has passed, no
    further batched model call starts, and the explanation holds what was found so far
    (marked incomplete). The default, ``at=inf``, never passes.

    Attributes:
        at: the deadline, in ``clock``'s seconds.
        clock: the clock (default: :func:`time.monotonic`; tests inject their own).

    Example:
        >>> Deadline.of(0).passed, Deadline.of(None).passed
        (True, False)
    """

    at: float = math.inf
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def of(cls, time_budget: float | Deadline | None) -> Deadline:
        """The deadline of a time budget that starts now.

        Args:
            time_budget: seconds (``>= 0``; 0 stops before the first model call that can be
                skipped), a :class:`Deadline` (returned as it is), or ``None`` (no deadline).

        Returns:
            The deadline.
        """
        if isinstance(time_budget, Deadline):
            return time_budget
        if time_budget is None:
            return cls()
        if isinstance(time_budget, bool) or not isinstance(time_budget, int | float):
            raise InvalidInputError(
                f"time_budget must be a number of seconds or None; got {time_budget!r}"
            )
        if not time_budget >= 0:  # NaN too
            raise InvalidInputError(f"time_budget must be >= 0 seconds; got {time_budget!r}")
        return cls(time.monotonic() + float(time_budget))

    @property
    def bounded(self) -> bool:
        """Whether it can pass at all."""
        return self.at != math.inf

    @property
    def passed(self) -> bool:
        """Whether the deadline has passed."""
        return self.bounded and self.clock() >= self.at


#: the deadline that never passes
NO_DEADLINE = Deadline()


@dataclass(frozen=True)
class Baseline:
    """The unedited history's scores, its top-k list and the item being explained.

    Attributes:
        scores: the history's scores (seen items at -inf under the seen-item policy).
        target: the explained item's id (by default the top-1).
        top_k: the top-k list's ids, best first.
        rank: the explained item's 1-based rank in ``top_k``.
    """

    scores: np.ndarray
    target: int
    top_k: tuple[int, ...]
    rank: int = 1

    @classmethod
    def from_scores(
        cls, scores: np.ndarray, k: int, item: int | None = None, rank: int | None = None
    ) -> Baseline:
        """The top-k of one score vector (ties: lower item id first) and the item explained.

        Args:
            scores: one score vector.
            k: the list's length.
            item: the id of the item to explain (it must be in the top-k), or ``None``.
            rank: the 1-based rank of the item to explain, or ``None`` (the top-1).

        Returns:
            The baseline.
        """
        from recausal.models import top_k_ids

        listed = min(k, int(np.isfinite(scores).sum()))  # left-out items are never listed
        top = tuple(int(i) for i in top_k_ids(scores, listed))
        if item is not None:
            if item not in top:
                raise InvalidInputError(
                    f"item {item} is not in the top-{len(top)} (it ranks "
                    f"{_rank_in(scores, item)}); only an item of the list can be explained"
                )
            rank = top.index(item) + 1
        rank = 1 if rank is None else rank
        if not 1 <= rank <= len(top):
            raise InvalidInputError(f"rank must be between 1 and {len(top)} (k); got {rank}")
        return cls(scores=scores, target=top[rank - 1], top_k=top, rank=rank)

    @property
    def k(self) -> int:
        """The length of the top-k list."""
        return len(self.top_k)

    @property
    def criterion(self) -> str:
        """What a removal must do to explain the item: ``"top-1 changes"`` for the top-1,
        ``"leaves the top-k"`` for an item further down the list."""
        return "top-1 changes" if self.rank == 1 else "leaves the top-k"

    def rank_of(self, item_id: int) -> int | None:
        """1-based rank of ``item_id`` in the original top-k, or None."""
        return self.top_k.index(item_id) + 1 if item_id in self.top_k else None


def _rank_in(scores: np.ndarray, item: int) -> int:
    """1-based rank of ``item`` in ``scores`` (ties: lower id first)."""
    above = np.count_nonzero(scores > scores[item])
    return int(above + np.count_nonzero(scores[:item] == scores[item]) + 1)


@dataclass(frozen=True)
class Outcomes:
    """What removing each candidate set did to the explained item.

    Attributes:
        changed: whether the removal explains the item (see :attr:`Baseline.criterion`).
        replacement: the item that takes the explained item's place (its original rank).
        new_rank: the explained item's 1-based rank after the removal.
    """

    changed: np.ndarray
    replacement: np.ndarray
    new_rank: np.ndarray


class Batch:
    """Histories explained together: batched model calls with per-history accounting.

    Every edit is made to the user's **full** history, and the model then reads the most
    recent ``capacity`` items of what is left, as it would in production: deleting items from
    the window lets older items slide into it. Padding keeps the window where it is. The
    explainers pick positions inside the window (``ids[u]``; an item older than the window
    cannot change what the model reads); :attr:`offsets` maps them to full-history positions.

    Args:
        model: the recommender.
        full: each user's whole encoded history (``model.encode(h, window=False)``).
        exclude_seen: leave each history's own items (all of them, however many edits remove)
            out of every ranking: the recommendation, and after each removal.
    """

    #: histories per forward pass when scoring
    batch_size: ClassVar[int] = 1024

    def __init__(
        self, model: SequentialModel, full: list[np.ndarray], exclude_seen: bool = False
    ) -> None:
        self.model = model
        self.full = full
        capacity = model.capacity
        #: the windows: what the model reads of each history
        self.ids = [f[-capacity:] for f in full]
        #: the full-history position of each window's first item
        self.offsets = [len(f) - len(w) for f, w in zip(full, self.ids, strict=True)]
        self._seen = _ragged([np.unique(f) for f in full]) if exclude_seen else None
        self.start = time.perf_counter()
        self.calls = np.zeros(len(full), dtype=np.int64)
        self.rows = np.zeros(len(full), dtype=np.int64)

    def edit(self, u: int, positions: Iterable[int], removal: Removal) -> np.ndarray:
        """The window the model reads once ``positions`` (of history ``u``'s window) are removed.

        Args:
            u: the history.
            positions: window positions (0 = the window's oldest item).
            removal: ``"delete"`` (from the full history; older items slide in) or ``"pad"``
                (the window stays where it is).

        Returns:
            The edited window, as internal ids.
        """
        offset = self.offsets[u]
        if removal == "pad" or offset == 0:
            return remove_positions(self.ids[u], positions, removal)
        edited = np.delete(self.full[u], [offset + p for p in positions])
        return edited[-self.model.capacity :]

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

    def mask_seen(self, scores: np.ndarray, owners: Sequence[int]) -> np.ndarray:
        """``scores`` with each row's history items (row ``i`` is history ``owners[i]``) at
        minus infinity, in place; unchanged when seen items are kept."""
        if self._seen is not None:
            items, starts = self._seen
            owners = np.asarray(owners, dtype=np.int64)
            lengths = starts[owners + 1] - starts[owners]
            rows = np.repeat(np.arange(owners.size), lengths)
            firsts = np.repeat(starts[owners] - np.cumsum(lengths) + lengths, lengths)
            scores[rows, items[firsts + np.arange(rows.size)]] = -np.inf
        return scores

    def outcomes(
        self,
        owners: Sequence[int],
        seqs: Sequence[np.ndarray],
        bases: Sequence[Baseline],
        deadline: Deadline = NO_DEADLINE,
    ) -> Outcomes:
        """What each edited window ``seqs[i]`` (of history ``owners[i]``) does to the item
        explained for its history, scored chunk by chunk (``batch_size`` rows per model call)
        so that memory stays bounded however many sets are tried. No chunk starts once
        ``deadline`` has passed: the outcomes are then those of the rows scored, a prefix."""
        n = len(seqs)
        changed = np.zeros(n, dtype=bool)
        replacement = np.zeros(n, dtype=np.int64)
        new_rank = np.zeros(n, dtype=np.int64)
        owner_ids = np.asarray(owners, dtype=np.int64)
        targets = np.array([bases[u].target for u in owner_ids], dtype=np.int64)
        ranks = np.array([bases[u].rank for u in owner_ids], dtype=np.int64)
        ks = np.array([bases[u].k for u in owner_ids], dtype=np.int64)
        scored = 0
        while scored < n and not deadline.passed:
            part = slice(scored, min(scored + self.batch_size, n))
            chunk = owners[part]
            scores = self.mask_seen(self._score_ids(chunk, seqs[part]), chunk)
            changed[part], replacement[part], new_rank[part] = _outcomes(
                scores, targets[part], ranks[part], ks[part]
            )
            scored = part.stop
        self._account(owners[:scored], self.batch_size)
        return Outcomes(changed[:scored], replacement[:scored], new_rank[:scored])

    def attention(
        self, targets: Sequence[int], layer: int = -1, chunk: int = 256
    ) -> list[np.ndarray]:
        """Per-head attention of every window with its target appended (chunked passes)."""
        out: list[np.ndarray] = []
        for start in range(0, len(self.ids), chunk):
            stop = min(start + chunk, len(self.ids))
            out += self.model.attention_ids(self.ids[start:stop], targets[start:stop], layer)
        self.calls += 1
        return out

    def baselines(
        self,
        k: int,
        items: Sequence[int | None] | None = None,
        ranks: Sequence[int | None] | None = None,
    ) -> list[Baseline]:
        """Score every unedited history once and pick the item each explanation is about.

        Args:
            k: the top-k list's length.
            items: per history, the id of the item to explain (``None``: by rank).
            ranks: per history, the 1-based rank of the item to explain (``None``: the top-1).

        Returns:
            One :class:`Baseline` per history.
        """
        users = range(len(self.ids))
        scores = self.mask_seen(self.score(users, self.ids), users)
        items = items or [None] * len(self.ids)
        ranks = ranks or [None] * len(self.ids)
        return [
            Baseline.from_scores(row, k, item, rank)
            for row, item, rank in zip(scores, items, ranks, strict=True)
        ]

    def first_valid(
        self,
        candidates: dict[int, Sequence[tuple[int, ...]]],
        bases: Sequence[Baseline],
        removal: Removal,
        deadline: Deadline = NO_DEADLINE,
    ) -> dict[int, tuple[list[int], Outcomes]]:
        """Score every history's candidate removals in one batch (see :meth:`outcomes`).

        Args:
            candidates: per history, its candidate sets in order.
            bases: the histories' unedited scores.
            removal: how a set is removed (see :meth:`edit`).
            deadline: when to stop, between model calls.

        Returns:
            Per history reached: the indices of the candidates that explain its item, and
            the :class:`Outcomes` of those scored (all of them, unless the deadline cut the
            batch short: then a prefix, and the histories not reached are left out).
        """
        owners: list[int] = []
        sets: list[tuple[int, ...]] = []
        for u, cands in candidates.items():
            owners += [u] * len(cands)
            sets += cands
        found = self.outcomes(owners, _Edited(self, owners, sets, removal), bases, deadline)
        scored = len(found.changed)
        result: dict[int, tuple[list[int], Outcomes]] = {}
        offset = 0
        for u, cands in candidates.items():
            part = slice(offset, min(offset + len(cands), scored))
            offset += len(cands)
            if cands and part.start >= scored:
                continue
            mine = Outcomes(found.changed[part], found.replacement[part], found.new_rank[part])
            result[u] = (np.flatnonzero(mine.changed).tolist(), mine)
        return result

    def counts(self, u: int, seconds: float) -> dict[str, Any]:
        """``model_calls``, ``histories_scored`` and ``seconds`` of history ``u``."""
        return {
            "model_calls": int(self.calls[u]),
            "histories_scored": int(self.rows[u]),
            "seconds": round(seconds, 6),
        }


class _Edited(Sequence[np.ndarray]):
    """The windows the model reads once each candidate set is removed (``sets[i]`` from
    history ``owners[i]``, see :meth:`Batch.edit`), built only when a chunk of them is
    scored: memory holds one chunk's edits, however many sets a round tries."""

    def __init__(
        self, batch: Batch, owners: list[int], sets: list[tuple[int, ...]], removal: Removal
    ) -> None:
        self.batch, self.owners, self.sets, self.removal = batch, owners, sets, removal

    def __len__(self) -> int:
        return len(self.sets)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            pairs = zip(self.owners[index], self.sets[index], strict=True)
            return [self.batch.edit(u, c, self.removal) for u, c in pairs]
        return self.batch.edit(self.owners[index], self.sets[index], self.removal)


def _ragged(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of ids laid end to end, and where each starts (one more entry: the end)."""
    starts = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([a.size for a in arrays], out=starts[1:])
    items = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.int64)
    return items.astype(np.int64, copy=False), starts


def _outcomes(
    scores: np.ndarray, targets: np.ndarray, ranks: np.ndarray, ks: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of ``scores``: whether the removal explains the target, the item now at the
    target's original rank, and the target's new rank (ties: lower id first, as in top-k).

    Only the rows that need it pay for a full rank count: the top-1 rows whose top-1 changed
    (the others keep rank 1) and the rows that explain an item further down the list."""
    top1 = scores.argmax(axis=1)
    replacement = top1.copy()
    changed = top1 != targets
    new_rank = np.ones(len(scores), dtype=np.int64)
    deep = ranks > 1
    need = np.flatnonzero(changed | deep)
    if need.size:
        sub, t = scores[need], targets[need]
        st = sub[np.arange(need.size), t][:, None]
        ties = (sub == st) & (np.arange(sub.shape[1])[None, :] < t[:, None])
        new_rank[need] = np.count_nonzero(sub > st, axis=1) + np.count_nonzero(ties, axis=1) + 1
    if deep.any():
        rows = np.flatnonzero(deep)
        changed[rows] = new_rank[rows] - 1 >= ks[rows]
        width = int(ranks[rows].max())
        sub = scores[rows]
        top = np.argpartition(-sub, width - 1, axis=1)[:, :width]
        values = np.take_along_axis(sub, top, axis=1)
        order = np.lexsort((top, -values), axis=1)
        ordered = np.take_along_axis(top, order, axis=1)
        replacement[rows] = ordered[np.arange(rows.size), ranks[rows] - 1]
    return changed, replacement, new_rank
