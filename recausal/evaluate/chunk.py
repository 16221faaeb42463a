"""The work of one chunk: every explainer explains every user of the chunk, one row each,
with the row's measures (deletion flags, perturbation curves, counterfactual measures) computed
for all explanations of the chunk together (:func:`row_measures`).

A chunk is computed the same way in every engine (one torch thread, the same batches), so its
rows do not depend on where it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recausal.errors import RecausalError
from recausal.evaluate.schema import error_row, explanation_row, jsonable
from recausal.evaluate.spec import JobSpec

if TYPE_CHECKING:
    from recausal.explain import Explanation
    from recausal.explain.batch import Batch
    from recausal.models import SequentialModel


#: the steps of the perturbation curves: step j (1-based) removes the top ``ceil(j n / 10)``
#: of the ``n`` ranked window items (docs/method.md §6)
CURVE_STEPS = 10


def curve_sizes(n: int, steps: int = CURVE_STEPS) -> list[int]:
    """How many ranked items each step of a perturbation curve removes (or keeps).

    Args:
        n: the number of ranked window items.
        steps: the number of steps.

    Returns:
        ``ceil(j * n / steps)`` for ``j = 1..steps`` (the last step is ``n``).

    Example:
        >>> curve_sizes(5)
        [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    """
    return [-(-j * n // steps) for j in range(1, steps + 1)]


def ranks_in_rows(scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The 1-based rank of ``items[i]`` in score row ``scores[i]``.

    Ties go to the lower item id, as in :func:`recausal.models.top_k_ids` and
    :class:`~recausal.explain.batch.Batch`. The one implementation of "rank of an item in a
    score row" in the evaluation.

    Args:
        scores: score rows ``(n, n_items)`` (masked items at ``-inf``).
        items: one item id per row.

    Returns:
        The ranks, int64.
    """
    items = np.asarray(items, dtype=np.int64)
    own = scores[np.arange(len(items)), items][:, None]
    above = np.count_nonzero(scores > own, axis=1)
    lower_ids = np.arange(scores.shape[1])[None, :] < items[:, None]
    ties = np.count_nonzero((scores == own) & lower_ids, axis=1)
    return (above + ties + 1).astype(np.int64)


def probabilities(scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """The softmax probability of ``items[i]`` in score row ``scores[i]`` (float64; items at
    ``-inf`` have probability 0).

    Args:
        scores: score rows ``(n, n_items)``.
        items: one item id per row.

    Returns:
        The probabilities.
    """
    rows = scores.astype(np.float64)
    rows = np.exp(rows - rows.max(axis=1, keepdims=True))
    return rows[np.arange(len(items)), np.asarray(items, dtype=np.int64)] / rows.sum(axis=1)


def pn_s_list(before: Sequence[int], after: Sequence[int]) -> float:
    """PN_S@k at list level (CFExpRec): the share of the top-k replaced.

    Args:
        before: the original top-k list.
        after: the top-k list once the explanation is removed (same length).

    Returns:
        ``|set(after) - set(before)| / k``.
    """
    return len(set(after) - set(before)) / len(before)


def pn_r(before: Sequence[int], after: Sequence[int]) -> float:
    """PN_R@k (CFExpRec): the replaced share of the top-k, each newcomer weighted by the
    DCG discount of its new rank.

    Args:
        before: the original top-k list.
        after: the top-k list once the explanation is removed (same length).

    Returns:
        ``sum(1/log2(i+1) for 1-based ranks i of after's items not in before)`` divided by
        ``sum(1/log2(i+1) for i = 1..k)``.
    """
    gains = 1.0 / np.log2(np.arange(2, len(after) + 2))
    old = set(before)
    new = np.array([item not in old for item in after], dtype=bool)
    return float(gains[new].sum() / gains.sum())


@dataclass(frozen=True)
class _Plan:
    """The rows of one explanation's edits: per curve step, and for its first set."""

    pos: list[int]
    neg: list[int]
    ins: list[int]
    pn: int | None


class _Edits:
    """The distinct edited windows to score, each once (an edit is its history and the set of
    window positions removed)."""

    def __init__(self, batch: Batch, removal: str) -> None:
        self.batch, self.removal = batch, removal
        self.owners: list[int] = []
        self.seqs: list[np.ndarray] = []
        self._index: dict[tuple[int, tuple[int, ...]], int] = {}

    def add(self, u: int, removed: Sequence[int]) -> int:
        """The row of history ``u``'s window with ``removed`` (window positions) removed."""
        key = (u, tuple(sorted(int(p) for p in removed)))
        if key not in self._index:
            self._index[key] = len(self.seqs)
            self.seqs.append(self.batch.edit(u, key[1], self.removal))  # type: ignore[arg-type]
            self.owners.append(u)
        return self._index[key]


def _scored(
    edits: _Edits, targets: np.ndarray, k_rows: dict[int, int]
) -> tuple[np.ndarray, np.ndarray, dict[int, list[int]]]:
    """Score every edit in one batched pass (in slices of ``Batch.batch_size`` rows, so that
    memory stays bounded), with the seen-item mask applied as :class:`Batch` does.

    Args:
        edits: the edits.
        targets: per history, the explained item's id.
        k_rows: rows whose top-k list is needed, with its length.

    Returns:
        Per row the explained item's rank and probability, and the top-k lists asked for.
    """
    from recausal.models import top_k_ids

    batch, n = edits.batch, len(edits.seqs)
    ranks = np.zeros(n, dtype=np.int64)
    probs = np.zeros(n, dtype=np.float64)
    tops: dict[int, list[int]] = {}
    for start in range(0, n, batch.batch_size):
        stop = min(start + batch.batch_size, n)
        owners = edits.owners[start:stop]
        scores = batch.mask_seen(batch.score(owners, edits.seqs[start:stop]), owners)
        own = targets[np.asarray(owners, dtype=np.int64)]
        ranks[start:stop] = ranks_in_rows(scores, own)
        probs[start:stop] = probabilities(scores, own)
        for row in range(start, stop):
            if row in k_rows:
                tops[row] = [int(i) for i in top_k_ids(scores[row - start], k_rows[row])]
    return ranks, probs, tops


def row_measures(
    model: SequentialModel, explanations: Sequence[Explanation], spec: JobSpec
) -> list[dict[str, Any]]:
    """The per-row measures of each explanation (docs/method.md §6), all through the
    explainers' own counterfactual rule (:meth:`Batch.edit <recausal.explain.batch.Batch.edit>`
    with the run's removal): one :class:`~recausal.explain.batch.Batch` for all explanations
    (a whole chunk), one batched scoring pass for the curves and the counterfactual measures,
    one :meth:`~recausal.explain.batch.Batch.outcomes` call for the deletion flags.

    With ``order`` the explanation's ranking (window positions, most important first), ``n``
    its length and ``m_j = ceil(j n / 10)``:

    - ``deletion``: is the item explained (its criterion met) once ``order[:m]`` is removed,
      m = 1..deletion_max (``None`` where the ranking has fewer than m items);
    - ``pos_ranks`` / ``neg_ranks``: the item's rank once ``order[:m_j]`` / ``order[-m_j:]``
      (the most / least important) is removed; ``del_probs``: its probability once
      ``order[:m_j]`` is removed; ``ins_probs``: its probability once all but ``order[:m_j]``
      is removed (j = 1..10);
    - ``pn_s_item``: the item leaves the top-k once ``sets[0]`` is removed; ``pn_s_list`` and
      ``pn_r``: :func:`pn_s_list` and :func:`pn_r` of the top-k before and after (no set:
      nothing is removed, so False, 0, 0).

    Args:
        model: the model.
        explanations: the explanations (any users, any explainers; one seen-item policy).
        spec: what to compute.

    Returns:
        One dict per explanation with those keys.
    """
    from recausal.explain.batch import Baseline, Batch

    if not explanations:
        return []
    exclude = explanations[0].exclude_seen
    batch = Batch(
        model, [model.encode(list(e.history), window=False) for e in explanations], exclude
    )
    targets = np.array([model.item_ids[e.recommended] for e in explanations], dtype=np.int64)
    bases = [
        Baseline(np.empty(0), int(t), tuple(model.item_ids[i] for i in e.top_k), e.rank)
        for t, e in zip(targets, explanations, strict=True)
    ]
    edits = _Edits(batch, spec.removal)
    plans: list[_Plan] = []
    k_rows: dict[int, int] = {}
    del_owners: list[int] = []
    del_seqs: list[np.ndarray] = []
    del_slots: list[tuple[int, int]] = []
    for u, expl in enumerate(explanations):
        order = [r.position - batch.offsets[u] for r in expl.ranking]
        n = len(order)
        sizes = curve_sizes(n)
        pn = None
        if expl.sets:
            pn = edits.add(u, [p - batch.offsets[u] for p in expl.sets[0]])
            k_rows[pn] = len(expl.top_k)
        plans.append(
            _Plan(
                pos=[edits.add(u, order[:m]) for m in sizes],
                neg=[edits.add(u, order[n - m :]) for m in sizes],
                ins=[edits.add(u, order[m:]) for m in sizes],
                pn=pn,
            )
        )
        for m in range(1, min(spec.deletion_max, n) + 1):
            del_seqs.append(batch.edit(u, order[:m], spec.removal))  # type: ignore[arg-type]
            del_owners.append(u)
            del_slots.append((u, m - 1))
    ranks, probs, tops = _scored(edits, targets, k_rows)
    deletion: list[list[bool | None]] = [[None] * spec.deletion_max for _ in explanations]
    if del_seqs:
        changed = batch.outcomes(del_owners, del_seqs, bases).changed
        for (u, m_idx), flag in zip(del_slots, changed, strict=True):
            deletion[u][m_idx] = bool(flag)
    out = []
    for u, (expl, plan) in enumerate(zip(explanations, plans, strict=True)):
        k = len(expl.top_k)
        row: dict[str, Any] = {
            "deletion": deletion[u],
            "pos_ranks": [int(ranks[r]) for r in plan.pos],
            "neg_ranks": [int(ranks[r]) for r in plan.neg],
            "del_probs": [float(probs[r]) for r in plan.pos],
            "ins_probs": [float(probs[r]) for r in plan.ins],
            "pn_s_item": False,
            "pn_s_list": 0.0,
            "pn_r": 0.0,
        }
        if plan.pn is not None:
            before, after = list(bases[u].top_k), tops[plan.pn]
            row.update(
                pn_s_item=bool(ranks[plan.pn] > k),
                pn_s_list=pn_s_list(before, after),
                pn_r=pn_r(before, after),
            )
        out.append(row)
    return out


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run with one torch thread (the same arithmetic in every engine), then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _explain_all(
    model: SequentialModel, histories: list[list[str]], name: str, spec: JobSpec
) -> list[Explanation | Exception]:
    """One explainer over the chunk's histories: batched, else user by user where the batch
    fails (a user it still fails on gets the exception)."""
    from recausal.explain import get_explainer

    explainer = get_explainer(
        name,
        max_size=spec.max_size,
        removal=spec.removal,
        seed=spec.seed,
        exclude_seen=spec.exclude_seen,
    )
    try:
        return list(explainer.explain_many(model, histories, k=spec.k))
    except RecausalError:
        results: list[Explanation | Exception] = []
        for hist in histories:
            try:
                results.append(explainer.explain(model, hist, k=spec.k))
            except RecausalError as exc:
                results.append(exc)
        return results


def run_chunk(
    model: SequentialModel, users: Sequence[tuple[str, Sequence[str]]], spec: JobSpec
) -> list[dict[str, Any]]:
    """The rows of one chunk: user order, then explainer order.

    An explainer that raises a :class:`RecausalError` for a batch is retried user by user;
    the users it still fails on get a row with ``error`` set (and are left out of the measures).

    Args:
        model: the model.
        users: ``(user, history)`` pairs, each with the user's whole history.
        spec: what to compute.

    Returns:
        The rows, as they read back from JSON.
    """
    histories = [list(h) for _, h in users]
    with _one_torch_thread():
        per_explainer = {
            name: _explain_all(model, histories, name, spec) for name in spec.explainers
        }
        done: list[tuple[tuple[int, str], Explanation]] = [
            ((u_idx, name), result)
            for u_idx in range(len(users))
            for name in spec.explainers
            if not isinstance(result := per_explainer[name][u_idx], Exception)
        ]
        found = row_measures(model, [e for _, e in done], spec)
        measured = {key: f for (key, _), f in zip(done, found, strict=True)}
        rows: list[dict[str, Any]] = []
        for u_idx, (user, hist) in enumerate(users):
            for name in spec.explainers:
                result = per_explainer[name][u_idx]
                if isinstance(result, Exception):
                    lengths = (len(hist), min(len(hist), model.capacity))
                    rows.append(error_row(user, name, lengths, result))
                else:
                    rows.append(explanation_row(user, len(hist), result, measured[(u_idx, name)]))
    return [jsonable(r) for r in rows]
