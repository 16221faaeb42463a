"""A most-popular baseline, evaluated as RecBole evaluates sequential models.

Protocol (RecBole 1.2.1 with ``eval_args: {split: {LS: valid_and_test}, order: TO, mode:
full}``): the split of :func:`recausal.data.histories.leave_one_out`; every item is ranked
(full ranking; only the padding id is excluded); items already in the user's history are
**not** masked, since RecBole's ``FullSortEvalDataLoader`` passes no history index for
sequential models. Metrics as ``recbole/evaluator/metrics.py`` defines them for one target:
``hit@k`` = 1 if the target ranks within the top k, ``ndcg@k`` = 1 / log2(rank + 1) if so,
else 0, averaged over the evaluation cases.

Popularity is the number of occurrences of an item in the training portion (each user's
sequence less its held-out targets). Ties are broken by the item's first appearance in the
``.inter`` file (RecBole's internal id order); RecBole's ``torch.topk`` leaves tie order
unspecified. The item universe is the items of the ``.inter`` file.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recausal._checks import is_int
from recausal.data.atomic import read_atomic
from recausal.data.datasets import DatasetFiles, as_dataset_files
from recausal.data.histories import EvalCase, dataset_histories, leave_one_out
from recausal.errors import InvalidInputError


@dataclass(frozen=True)
class BaselineResult:
    """Metrics of a baseline on the validation and test cases."""

    name: str
    dataset: str
    k: int
    valid: dict[str, float]
    test: dict[str, float]
    n_valid: int
    n_test: int
    n_items: int

    def to_dict(self) -> dict[str, Any]:
        """All fields, JSON-ready."""
        return {
            "name": self.name,
            "dataset": self.dataset,
            "k": self.k,
            "valid": dict(self.valid),
            "test": dict(self.test),
            "n_valid": self.n_valid,
            "n_test": self.n_test,
            "n_items": self.n_items,
        }


def hit_ndcg(ranks: Sequence[int], k: int) -> dict[str, float]:
    """Mean ``hit@k`` and ``ndcg@k`` over cases with one target each, given 1-based target ranks.

    An empty sequence gives NaN for both.
    """
    k = _check_k(k)
    if not ranks:
        return {f"hit@{k}": math.nan, f"ndcg@{k}": math.nan}
    hits = [1.0 if r <= k else 0.0 for r in ranks]
    gains = [1.0 / math.log2(r + 1) if r <= k else 0.0 for r in ranks]
    return {f"hit@{k}": sum(hits) / len(ranks), f"ndcg@{k}": sum(gains) / len(ranks)}


def _check_k(k: int) -> int:
    if not is_int(k) or k < 1:
        raise InvalidInputError(f"k={k!r} is not allowed; k must be an int >= 1")
    return int(k)


def popularity_ranking(
    histories: Mapping[str, Sequence[str]], items: Sequence[str] | None = None
) -> list[str]:
    """All items, most popular in the training portion first (ties: order of first appearance).

    ``items`` is the item universe in tie-break order; by default the items of ``histories``
    in order of first appearance.
    """
    split = leave_one_out(histories)
    counts = Counter(item for seq in split.train.values() for item in seq)
    if items is None:
        items = list(dict.fromkeys(item for seq in histories.values() for item in seq))
    position = {item: i for i, item in enumerate(items)}
    return sorted(position, key=lambda item: (-counts.get(item, 0), position[item]))


def popularity_metrics(
    histories: Mapping[str, Sequence[str]],
    k: int = 10,
    items: Sequence[str] | None = None,
    dataset: str = "",
    exclude_seen: bool = False,
) -> BaselineResult:
    """The popularity baseline's metrics on ``histories`` (user → items, oldest first).

    With ``exclude_seen``, the items of each case's history are left out of its ranking.
    """
    k = _check_k(k)
    ranking = popularity_ranking(histories, items)
    rank_of = {item: r for r, item in enumerate(ranking, start=1)}
    split = leave_one_out(histories)
    missing = {c.target for c in split.valid + split.test} - rank_of.keys()
    if missing:
        raise InvalidInputError(f"items={items!r} lacks target items {sorted(missing)!r}")

    def rank(case: EvalCase) -> int:
        r = rank_of[case.target]
        if exclude_seen:
            r -= sum(1 for item in set(case.history) if rank_of.get(item, r) < r)
        return r

    def ranks(cases: Sequence[EvalCase]) -> list[int]:
        return [rank(c) for c in cases]

    return BaselineResult(
        name="most-popular",
        dataset=dataset,
        k=k,
        valid=hit_ndcg(ranks(split.valid), k),
        test=hit_ndcg(ranks(split.test), k),
        n_valid=len(split.valid),
        n_test=len(split.test),
        n_items=len(ranking),
    )


def popularity_baseline(
    dataset: DatasetFiles | str | os.PathLike,
    k: int = 10,
    *,
    config: Mapping[str, Any] | None = None,
    exclude_seen: bool = False,
) -> BaselineResult:
    """Hit@k and NDCG@k of the most-popular recommender on ``dataset``, valid and test.

    With ``exclude_seen``, the items of each case's history are left out of its ranking.

    ``dataset`` is anything :func:`recausal.data.resolve_dataset` accepts; ``config`` the RecBole
    settings in use, which decide how timestamps tie (see :func:`dataset_histories`). No
    filtering settings (``user_inter_num_interval`` etc.) are applied.
    """
    k = _check_k(k)
    files = as_dataset_files(dataset)
    histories = dataset_histories(files, config)
    item_field = (config or {}).get("ITEM_ID_FIELD", "item_id")
    items = list(dict.fromkeys(read_atomic(files.inter)[item_field].astype(str)))
    return popularity_metrics(histories, k, items, dataset=files.name, exclude_seen=exclude_seen)
