"""The size-by-size search for sets whose removal explains the item: sizes 1, 2, ... tried
for every history of a batch, one batched model call per size (:func:`search_by_size`), and
the :class:`Deadline` at which a search stops, between two batched model calls, and answers
what it found so far (:func:`first_valid_until`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from recausal.errors import InvalidInputError
from recausal.explain.batch import Baseline, Batch, Outcomes, Removal

#: candidate sets of one history and size: ``candidates_of(u, size)``, best first
CandidatesOf = Callable[[int, int], Sequence[tuple[int, ...]]]


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


def first_valid_until(
    batch: Batch,
    candidates: dict[int, Sequence[tuple[int, ...]]],
    bases: Sequence[Baseline],
    removal: Removal,
    deadline: Deadline = NO_DEADLINE,
) -> dict[int, tuple[list[int], Outcomes]]:
    """:meth:`Batch.first_valid` that stops at ``deadline``: the candidates are scored in model
    calls of ``batch.batch_size`` rows (the calls ``first_valid`` makes, so the results and the
    counts are the same), and none starts once the deadline has passed.

    Args:
        batch: the histories.
        candidates: per history, its candidate sets in order.
        bases: their unedited scores.
        removal: how a set is removed.
        deadline: when to stop; without one, a single ``first_valid`` call.

    Returns:
        Per history reached: the indices of its valid candidates among those checked, and the
        :class:`~recausal.explain.batch.Outcomes` of those checked (a prefix of its list, so
        ``len(outcomes.changed) < len(candidates[u])`` when the deadline cut it short).
    """
    if not deadline.bounded:
        return batch.first_valid(candidates, bases, removal)
    rows = [(u, c) for u, cands in candidates.items() for c in cands]
    parts: dict[int, list[tuple[list[int], Outcomes]]] = {}
    for start in range(0, len(rows), batch.batch_size):
        if deadline.passed:
            break
        piece: dict[int, list[tuple[int, ...]]] = {}
        for u, c in rows[start : start + batch.batch_size]:
            piece.setdefault(u, []).append(c)
        for u, found in batch.first_valid(piece, bases, removal).items():
            parts.setdefault(u, []).append(found)
    return {u: _joined(found) for u, found in parts.items()}


def _joined(parts: list[tuple[list[int], Outcomes]]) -> tuple[list[int], Outcomes]:
    """One history's results from consecutive pieces of its candidates."""
    valid: list[int] = []
    offset = 0
    for indices, outcomes in parts:
        valid += [offset + i for i in indices]
        offset += len(outcomes.changed)
    joined = (np.concatenate([getattr(o, f.name) for _, o in parts]) for f in fields(Outcomes))
    return valid, Outcomes(*joined)


def search_by_size(
    batch: Batch,
    bases: list[Baseline],
    candidates_of: CandidatesOf,
    max_size: int,
    removal: Removal,
    deadline: Deadline = NO_DEADLINE,
) -> list[Searched]:
    """Try candidate sets of size 1, 2, ... ``max_size`` for every history, one batched model
    call per size; a history stops at the first size where some candidate explains its item.

    Args:
        batch: the histories.
        bases: their unedited scores.
        candidates_of: ``candidates_of(u, size)`` lists history ``u``'s candidates of that
            size, best first.
        max_size: the largest size tried.
        removal: how a set is removed (see :meth:`Batch.edit`).
        deadline: when to stop (between model calls; see :func:`first_valid_until`).

    Returns:
        Per history: all valid sets of the first size that has one, what removing the first
        of them does, and the number of candidates tested. A history the deadline cut short
        is marked incomplete: it holds the valid sets of that size found so far (all smaller
        sizes were tried in full), or none.
    """
    n_users = len(batch.ids)
    result = [Searched((), (), (), 0) for _ in range(n_users)]
    pending = set(range(n_users))
    tested = [0] * n_users
    cut: set[int] = set()
    for size in range(1, max_size + 1):
        round_ = {u: candidates_of(u, size) for u in sorted(pending)}
        round_ = {u: c for u, c in round_.items() if c}
        pending &= set(round_)
        if not round_:
            break
        checked = first_valid_until(batch, round_, bases, removal, deadline)
        for u, cands in round_.items():
            valid, outcomes = checked.get(u, ([], None))
            n = 0 if outcomes is None else len(outcomes.changed)
            tested[u] += n
            if n < len(cands):
                cut.add(u)
            if valid:
                result[u] = Searched(
                    tuple(cands[i] for i in valid),
                    tuple(int(outcomes.replacement[i]) for i in valid),
                    tuple(int(outcomes.new_rank[i]) for i in valid),
                    0,
                )
                pending.discard(u)
        if cut:  # the deadline passed: the histories not done are cut short too
            if size < max_size:
                cut |= pending
            break
    return [
        Searched(r.sets, r.replacements, r.new_ranks, tested[u], u not in cut)
        for u, r in enumerate(result)
    ]


@dataclass(frozen=True)
class Searched:
    """The result of :func:`search_by_size` for one history: the valid sets of the first size
    that has one (in candidate order), what removing each does, the candidates tested, and
    whether the search ran to its end (``complete``: not cut short by a deadline)."""

    sets: tuple[tuple[int, ...], ...]
    replacements: tuple[int, ...]
    new_ranks: tuple[int, ...]
    tested: int
    complete: bool = True

    @property
    def replacement(self) -> int | None:
        """The replacement after removing the first set."""
        return self.replacements[0] if self.sets else None

    @property
    def new_rank(self) -> int | None:
        """The explained item's rank after removing the first set."""
        return self.new_ranks[0] if self.sets else None

    def reordered(self, order: Sequence[int]) -> Searched:
        """The same sets in another order (indices into :attr:`sets`)."""
        return Searched(
            tuple(self.sets[i] for i in order),
            tuple(self.replacements[i] for i in order),
            tuple(self.new_ranks[i] for i in order),
            self.tested,
            self.complete,
        )


__all__ = [
    "NO_DEADLINE",
    "CandidatesOf",
    "Deadline",
    "Searched",
    "first_valid_until",
    "search_by_size",
]
