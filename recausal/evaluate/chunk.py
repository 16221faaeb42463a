"""The work of one chunk: every explainer explains every user of the chunk, one row each.

A chunk is computed the same way in every engine (one torch thread, the same batches), so its
rows do not depend on where it runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from recausal.errors import RecausalError
from recausal.evaluate.schema import error_row, explanation_row, jsonable
from recausal.evaluate.spec import JobSpec

if TYPE_CHECKING:
    from recausal.explain import Explanation
    from recausal.models import SequentialModel


def _deletion_flags(
    model: SequentialModel, explanations: Sequence[Explanation], spec: JobSpec
) -> list[list[bool | None]]:
    """For each explanation: is its item explained (its criterion met) once its top-m ranked
    items are removed (m = 1..deletion_max), by the same counterfactual rule as the explainers
    (:class:`~recausal.explain.batch.Batch`)? ``None`` where the ranking has fewer than m items.
    One batched model call for all explanations (all explainers of one user)."""
    from recausal.explain.batch import Baseline, Batch

    flags: list[list[bool | None]] = [[None] * spec.deletion_max for _ in explanations]
    if not explanations:
        return flags
    exclude = explanations[0].exclude_seen
    batch = Batch(
        model, [model.encode(list(e.history), window=False) for e in explanations], exclude
    )
    bases = [
        Baseline(
            np.empty(0),
            model.item_ids[e.recommended],
            tuple(model.item_ids[t] for t in e.top_k),
            e.rank,
        )
        for e in explanations
    ]
    owners: list[int] = []
    edits: list[np.ndarray] = []
    slots: list[tuple[int, int]] = []  # (explanation index, m - 1)
    for e_idx, expl in enumerate(explanations):
        order = [r.position - batch.offsets[e_idx] for r in expl.ranking]
        for m in range(1, min(spec.deletion_max, len(order)) + 1):
            edits.append(batch.edit(e_idx, order[:m], spec.removal))  # type: ignore[arg-type]
            owners.append(e_idx)
            slots.append((e_idx, m - 1))
    if edits:
        changed = batch.outcomes(owners, edits, bases).changed
        for (e_idx, m_idx), flag in zip(slots, changed, strict=True):
            flags[e_idx][m_idx] = bool(flag)
    return flags


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
        rows: list[dict[str, Any]] = []
        for u_idx, (user, hist) in enumerate(users):
            done = [
                (name, per_explainer[name][u_idx])
                for name in spec.explainers
                if not isinstance(per_explainer[name][u_idx], Exception)
            ]
            flags = _deletion_flags(model, [e for _, e in done], spec)  # type: ignore[misc]
            by_name = {name: (e, f) for (name, e), f in zip(done, flags, strict=True)}
            for name in spec.explainers:
                if name in by_name:
                    expl, deletion = by_name[name]
                    rows.append(explanation_row(user, len(hist), expl, deletion))  # type: ignore[arg-type]
                else:
                    err = per_explainer[name][u_idx]
                    lengths = (len(hist), min(len(hist), model.capacity))
                    rows.append(error_row(user, name, lengths, err))  # type: ignore[arg-type]
    return [jsonable(r) for r in rows]
