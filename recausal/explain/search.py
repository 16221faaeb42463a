"""The size-by-size search for sets whose removal explains the item: sizes 1, 2, ... tried
for every history of a batch, one batched model call per size (:func:`search_by_size`),
stopping at a :class:`~recausal.explain.batch.Deadline` with what it found so far."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recausal.explain.batch import NO_DEADLINE, Baseline, Batch, Deadline, Removal

#: candidate sets of one history and size: ``candidates_of(u, size)``, best first
CandidatesOf = Callable[[int, int], Sequence[tuple[int, ...]]]


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
        deadline: when to stop (between model calls; see :meth:`Batch.first_valid`).

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
        checked = batch.first_valid(round_, bases, removal, deadline)
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
    "search_by_size",
]
