"""Histories as batches, and rankings of scores: the model layer's plain values (no torch).

Explainers build :class:`Edits` and rank with :func:`top_k_ids` without importing torch; the
models pad batches with :func:`padded` and return :class:`Recommendation` values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recausal.errors import InvalidInputError

History = Sequence[str]
"""A history: external item tokens, oldest first."""


class Edits(list):
    """Encoded histories that remember the unedited history each was made from.

    Row ``i`` is an edit (items deleted or replaced by padding) of ``originals[owners[i]]``.
    To every consumer it is a plain list; SASRec's scoring reads the originals to reuse the
    computation of the prefix an edit shares with its original. A slice is again ``Edits``.

    Args:
        seqs: the edited histories, as internal item ids.
        originals: the unedited histories, as internal item ids.
        owners: for each edit, the index of its original in ``originals``.
    """

    def __init__(
        self, seqs: Iterable[np.ndarray], originals: Sequence[np.ndarray], owners: Sequence[int]
    ) -> None:
        super().__init__(seqs)
        self.originals = originals
        self.owners = np.asarray(owners, dtype=np.int64)
        if len(self.owners) != len(self):
            raise InvalidInputError(f"{len(self)} edits but {len(self.owners)} owners")

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return Edits(super().__getitem__(index), self.originals, self.owners[index])
        return super().__getitem__(index)


@dataclass(frozen=True)
class Recommendation:
    """Top-k items for one history, best first."""

    items: tuple[str, ...]
    scores: tuple[float, ...]

    @property
    def top(self) -> str:
        """The top-1 recommended item token."""
        return self.items[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"items": [...], "scores": [...]}``."""
        return {"items": list(self.items), "scores": list(self.scores)}


def top_k_ids(scores: np.ndarray, k: int) -> np.ndarray:
    """Ids of the ``k`` highest scores, best first (ties: lower id first).

    Args:
        scores: one score vector, indexed by internal item id.
        k: how many ids, at least 1 and at most ``len(scores)``.

    Returns:
        The ``k`` ids, best first.
    """
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.lexsort((top, -scores[top]))]


def padded(seqs: Sequence[np.ndarray], extra: int) -> tuple[np.ndarray, np.ndarray]:
    """A left-aligned padded batch of encoded histories, and their lengths.

    An empty history (every item removed by an explainer) is read as one padding token: the
    model's output given no items.

    Args:
        seqs: encoded histories (internal item ids).
        extra: padding slots to add after the longest history.

    Returns:
        The batch ``(B, longest + extra)`` (padding id 0) and the lengths (at least 1).
    """
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max()), 1) + extra
    batch = np.zeros((len(seqs), width), dtype=np.int64)
    batch[np.arange(width) < lengths[:, None]] = np.concatenate(seqs)
    return batch, np.maximum(lengths, 1)


def as_batch(histories: Sequence[History]) -> Sequence[History]:
    """``histories`` itself, after checking that it is a batch and not one history.

    Args:
        histories: a list of histories, each a list of item tokens.

    Returns:
        ``histories``.

    Raises:
        InvalidInputError: ``histories`` is a string or a single history.
    """
    if not isinstance(histories, Sequence) or isinstance(histories, str | bytes):
        raise InvalidInputError(
            "expected a batch (a list of histories, each a list of item tokens); "
            f"got {type(histories).__name__}"
        )
    if len(histories) > 0 and isinstance(histories[0], str):
        raise InvalidInputError(
            "expected a batch (a list of histories, each a list of item tokens); "
            "for one history pass [history]"
        )
    for index, history in enumerate(histories):
        if not isinstance(history, Sequence) or isinstance(history, bytes):
            raise InvalidInputError(
                f"history {index} must be a list of item tokens; got {type(history).__name__}"
            )
    return histories
