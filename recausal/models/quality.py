"""Next-item quality of a model, measured through recausal's own adapter.

Same protocol as RecBole's trainer for sequential models (leave-one-out by time, full
ranking, no masking of seen items by default), so the two evaluations of one model can be
compared; with ``exclude_seen`` the items of each case's history are left out of its ranking,
as recausal's recommendations do by default on data without repeated interactions. One
difference is by design: the adapter uses at most ``capacity = max_seq_length - 1`` history
items (one slot is kept for the recommended item in the abductive step), RecBole uses
``max_seq_length``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from recausal.models.base import SequentialModel


def next_item_metrics(
    model: SequentialModel, k: int = 10, batch_size: int = 512, exclude_seen: bool = False
) -> dict[str, dict[str, float]]:
    """Hit and NDCG at ``k`` of ``model`` on its dataset's valid and test cases.

    Args:
        model: the model.
        k: the cut-off.
        batch_size: cases scored per forward pass.
        exclude_seen: leave the items of each case's history out of its ranking.

    Returns:
        ``{"valid": {"hit@k", "ndcg@k"}, "test": {...}}``.
    """
    from recausal.data import dataset_histories, leave_one_out
    from recausal.data.popularity import hit_ndcg

    split = leave_one_out(dataset_histories(model.dataset_name))
    out: dict[str, dict[str, float]] = {}
    for name, cases in (("valid", split.valid), ("test", split.test)):
        ranks: list[int] = []
        for start in range(0, len(cases), batch_size):
            chunk = cases[start : start + batch_size]
            scores = model.score_ids([model.encode(c.history, warn=False) for c in chunk])
            for row, case in zip(scores, chunk, strict=True):
                if exclude_seen:
                    row[[model.item_ids[t] for t in case.history]] = -np.inf
                target = row[model.item_ids[case.target]]
                ranks.append(int((row > target).sum()) + 1)
        out[name] = {key: round(value, 6) for key, value in hit_ndcg(ranks, k).items()}
    return out
