"""Adjacency-search building blocks shared by FCI and ICD: their common argument checks, the
CI-test adapter and a vectorised PC-stable level. (Possible-D-Sep: :mod:`recausal.causal.pds`.)"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import numpy as np

from recausal._checks import is_int
from recausal.causal._graph import MarkGraph
from recausal.causal.citest import CITest
from recausal.errors import InvalidInputError

__all__ = ["TestRunner", "check_learner_args", "pc_stable_level"]

_CHUNK = 65536


def check_learner_args(n_nodes: int, max_cond_size: int | None) -> None:
    """Check the arguments every structure learner takes.

    Args:
        n_nodes: number of nodes, an integer >= 2.
        max_cond_size: largest conditioning-set size, an integer >= 0, or ``None``.

    Raises:
        InvalidInputError: either is not as described.
    """
    if not is_int(n_nodes) or n_nodes < 2:
        raise InvalidInputError(f"n_nodes must be an integer >= 2; got {n_nodes!r}")
    if max_cond_size is not None and (not is_int(max_cond_size) or max_cond_size < 0):
        raise InvalidInputError(
            f"max_cond_size must be None or an integer >= 0; got {max_cond_size!r}"
        )


class TestRunner:
    """Wraps any :class:`CITest`; uses its vectorised ``independent_many`` when it has one.

    ``n_consulted`` counts the tests an algorithm *consulted*: for a list of conditioning
    sets tried in order until the first independence, the ones up to and including it.
    """

    def __init__(self, test: CITest, n_nodes: int) -> None:
        if not hasattr(test, "independent"):
            raise InvalidInputError(
                f"test must have an independent(i, j, cond) method; got {type(test).__name__}"
            )
        tn = getattr(test, "n_nodes", n_nodes)
        if tn != n_nodes:
            raise InvalidInputError(f"n_nodes={n_nodes} but the test has n_nodes={tn}")
        self.test = test
        self._many = getattr(test, "independent_many", None)
        self.vectorised = self._many is not None
        self.n_consulted = 0

    def decide(self, i: np.ndarray, j: np.ndarray, conds: np.ndarray) -> np.ndarray:
        """Independence decisions for queries ``(i[q], j[q], conds[q])`` of one set size."""
        m = len(i)
        if m == 0:
            return np.zeros(0, dtype=bool)
        conds = np.asarray(conds, dtype=np.intp).reshape(m, -1)
        if self._many is not None:
            if m <= _CHUNK:
                return np.asarray(self._many(i, j, conds), dtype=bool)
            return np.concatenate(
                [
                    np.asarray(
                        self._many(i[s : s + _CHUNK], j[s : s + _CHUNK], conds[s : s + _CHUNK])
                    )
                    for s in range(0, m, _CHUNK)
                ]
            ).astype(bool)
        ind = self.test.independent
        return np.array(
            [
                bool(ind(int(a), int(b), tuple(int(x) for x in c)))
                for a, b, c in zip(i, j, conds, strict=True)
            ],
            dtype=bool,
        )

    def first_independent(
        self,
        i: int,
        j: int,
        conds: Sequence[tuple[int, ...]] | np.ndarray,
        known: np.ndarray | None = None,
    ) -> int:
        """Index of the first set in ``conds`` that separates i and j, or -1 (counts tests).

        With a vectorised test the sets are decided in growing chunks (8, 32, 128, ...), so
        an early independence costs little and a long list costs few numpy calls. ``known``:
        the decisions of a prefix of ``conds`` made beforehand (counted here as consulted).
        """
        total = len(conds)
        if total == 0:
            return -1
        start = 0
        if known is not None and len(known):
            hit = np.flatnonzero(known)
            if hit.size:
                self.n_consulted += int(hit[0]) + 1
                return int(hit[0])
            start = len(known)
        if self._many is None:
            ind = self.test.independent
            for q in range(start, total):
                if ind(i, j, conds[q]):
                    self.n_consulted += q + 1
                    return q
            self.n_consulted += total
            return -1
        chunk = 8 if start == 0 else 4 * start
        size = len(conds[0])
        while start < total:
            part = conds[start : start + chunk]
            m = len(part)
            arr = np.array(part, dtype=np.intp).reshape(m, size)
            res = self.decide(np.full(m, i, dtype=np.intp), np.full(m, j, dtype=np.intp), arr)
            hit = np.flatnonzero(res)
            if hit.size:
                self.n_consulted += start + int(hit[0]) + 1
                return start + int(hit[0])
            start += m
            chunk *= 4
        self.n_consulted += total
        return -1


def pc_stable_level(
    g: MarkGraph,
    runner: TestRunner,
    size: int,
    sepsets: dict[tuple[int, int], tuple[int, ...]],
    *,
    order_aware: bool = False,
) -> bool:
    """One PC-stable level: test every edge against all ``size``-subsets of the neighbours of
    either end (adjacencies frozen at the start of the level), all queries in one vectorised
    call; remove separated edges and record sepsets.

    With ``order_aware`` only nodes earlier than ``max(i, j)`` may condition (a sepset can
    always be chosen among observed ancestors, which all precede the later node).
    Returns True if any edge had a candidate set (so the next level may still remove edges).
    """
    frozen = [sorted(a) for a in g.adj]
    pairs: list[tuple[int, int]] = []
    offsets = [0]
    conds: list[tuple[int, ...]] = []
    for i in range(g.n):
        for j in frozen[i]:
            if j <= i:
                continue
            lim = j if order_aware else g.n
            ai = [k for k in frozen[i] if k != j and k < lim]
            aj = [k for k in frozen[j] if k != i and k < lim]
            seen: set[tuple[int, ...]] = set()
            cand: list[tuple[int, ...]] = []
            for pool in (ai, aj):
                if len(pool) < size:
                    continue
                for c in combinations(pool, size):
                    if c not in seen:
                        seen.add(c)
                        cand.append(c)
            if cand:
                pairs.append((i, j))
                conds.extend(cand)
                offsets.append(len(conds))
    if not pairs:
        return False
    if not runner.vectorised:  # scalar test: stop at the first independence of each edge
        for e, (i, j) in enumerate(pairs):
            cand = conds[offsets[e] : offsets[e + 1]]
            q = runner.first_independent(i, j, cand)
            if q >= 0:
                g.remove_edge(i, j)
                sepsets[(i, j)] = tuple(sorted(cand[q]))
        return True
    counts = np.diff(offsets)
    pi = np.repeat(np.array([p[0] for p in pairs], dtype=np.intp), counts)
    pj = np.repeat(np.array([p[1] for p in pairs], dtype=np.intp), counts)
    arr = np.array(conds, dtype=np.intp).reshape(len(conds), size)
    res = runner.decide(pi, pj, arr)
    for e, (i, j) in enumerate(pairs):
        lo, hi = offsets[e], offsets[e + 1]
        hit = np.flatnonzero(res[lo:hi])
        if hit.size:
            q = int(hit[0])
            runner.n_consulted += q + 1
            g.remove_edge(i, j)
            sepsets[(i, j)] = tuple(sorted(conds[lo + q]))
        else:
            runner.n_consulted += hi - lo
    return True
