"""The contract every model family meets: :class:`SequentialModel`.

A model is addressed with external item tokens; histories are lists of them, oldest first.
Each model reads at most ``capacity = max_seq_length - 1`` history items, the most recent (its
*window*), so that the recommended item fits in the sequence beside them (appended for SASRec,
in place of the mask token for BERT4Rec): the recommendation that is explained is exactly the
one shown. Items the user has already interacted with are left out of recommendations when
the model's dataset has no repeated user–item interactions (:attr:`SequentialModel.excludes_seen`).
The families are in :mod:`recausal.models.families`; the users' histories and the items'
titles come from the data layer (:mod:`recausal.data`). A model runs on its network's device
(:attr:`SequentialModel.device`); what it returns is on the host (see
:mod:`recausal.models.device`).
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recausal._checks import check_int
from recausal.errors import (
    EmptyHistoryError,
    InvalidInputError,
    RecausalWarning,
    UnknownItemError,
    UnsupportedModelError,
)
from recausal.models.batch import History, Recommendation, as_batch, padded, top_k_ids
from recausal.models.dataset_view import ModelDataset
from recausal.models.device import device_of
from recausal.models.gradients import DifferentiableScoring


class SequentialModel(ModelDataset, DifferentiableScoring, ABC):
    """A trained sequential recommender, addressed with external item tokens.

    Its users' histories, titles and seen-item policy are those of :class:`ModelDataset`; its
    hooks for the gradient explainers those of :class:`DifferentiableScoring`. Its forward
    passes run on :attr:`device`, the network's; scores and attention come back as numpy
    arrays on the host.

    Args:
        net: the RecBole network (put in eval mode), on the device it is to run on.
        items: the item tokens by internal id (index 0: padding).
        name: a name for messages [default: the network's class name].
        meta: the bundle's metadata (the dataset it was trained on, metrics, ...).
        path: the bundle's folder, if it came from one.
        dataset: the dataset whose users it serves, instead of the recorded one.
    """

    #: attention is left-to-right (a later position cannot influence an earlier one)
    causal_attention: bool = False
    #: dotted attribute path from the network to its RecBole ``TransformerEncoder`` (whose
    #: attention is read); ``None`` for models without token-to-token self-attention
    encoder_path: str | None = "trm_encoder"
    #: why ``attention`` is unavailable when the network has no encoder at ``encoder_path``
    no_attention_reason: str = "no self-attention"
    #: score with recausal's inference forward (:class:`~recausal.models.inference.Transformer`;
    #: SASRec, BERT4Rec) rather than the network's own ``forward``
    fast_scoring: bool = True

    def __init__(
        self,
        net: torch.nn.Module,
        items: Sequence[str],
        *,
        name: str = "",
        meta: dict[str, Any] | None = None,
        path: Path | None = None,
        dataset: Any = None,
    ) -> None:
        self.net = net.eval()
        #: the torch device the forward passes run on (the network's)
        self.device: torch.device = device_of(net)
        self.items: tuple[str, ...] = tuple(items)
        self.item_ids: dict[str, int] = {t: i for i, t in enumerate(self.items) if i > 0}
        self.name = name or type(net).__name__
        self.meta = dict(meta or {})
        self.path = path
        self._dataset = dataset
        self.max_seq_length = int(net.max_seq_length)
        encoder = self._encoder()
        if encoder is not None:
            self.n_layers = len(encoder.layer)
            first = encoder.layer[0].multi_head_attention
            self.n_heads = int(first.num_attention_heads)
            self.hidden_size = int(first.all_head_size)
        else:  # no self-attention: only the scoring methods work
            self.n_layers = 0
            self.n_heads = 0
            self.hidden_size = int(
                getattr(net, "hidden_size", None) or getattr(net, "embedding_size", 0) or 0
            )
        #: running totals, for reporting model calls (forward passes) and scored histories
        self.forward_passes = 0
        self.histories_scored = 0

    def _encoder(self) -> torch.nn.Module | None:
        """The network's ``TransformerEncoder``, or None when it has none."""
        if self.encoder_path is None:
            return None
        module: Any = self.net
        for part in self.encoder_path.split("."):
            module = getattr(module, part, None)
            if module is None:
                return None
        return module

    @property
    def has_attention(self) -> bool:
        """Whether the model has token-to-token self-attention that can be read."""
        return self.n_layers > 0

    # ----------------------------------------------------------------- histories
    @property
    def capacity(self) -> int:
        """Most history items used: the recommended item takes the last slot."""
        return self.max_seq_length - 1

    @property
    def n_items(self) -> int:
        """Number of item ids including the padding id 0."""
        return len(self.items)

    def encode(self, history: History, *, warn: bool = True, window: bool = True) -> np.ndarray:
        """Map a history of item tokens to internal ids, keeping the ``capacity`` most recent.

        Args:
            history: item tokens, oldest first.
            warn: warn with a :class:`RecausalWarning` when the history is cut.
            window: cut the history to the model's window; ``False`` keeps every item (for
                edits of the full history, see :mod:`recausal.explain.batch`).

        Returns:
            The internal ids, at most ``capacity`` of them unless ``window`` is ``False``.
        """
        if isinstance(history, str):
            raise InvalidInputError(
                "a history must be a list of item tokens, not a string "
                f"({history!r}); split it first, e.g. history.split(',')"
            )
        if len(history) == 0:
            raise EmptyHistoryError("the history is empty: at least one item is needed")
        ids = np.empty(len(history), dtype=np.int64)
        for pos, token in enumerate(history):
            idx = self.item_ids.get(str(token))
            if idx is None:
                raise UnknownItemError(
                    f"item {token!r} (history position {pos}) is not known to model {self.name}"
                )
            ids[pos] = idx
        if window and len(ids) > self.capacity:
            if warn:
                warnings.warn(
                    f"history has {len(ids)} items; keeping the most recent {self.capacity} "
                    f"(model max_seq_length {self.max_seq_length}, one slot for the "
                    "recommended item)",
                    RecausalWarning,
                    stacklevel=3,
                )
            ids = ids[-self.capacity :]
        return ids

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Map internal item ids back to tokens.

        Args:
            ids: internal item ids.

        Returns:
            Their item tokens.
        """
        return [self.items[int(i)] for i in ids]

    # ----------------------------------------------------------------- scoring
    def _pad(self, seqs: Sequence[np.ndarray], extra: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-aligned padded batch and lengths (see :func:`~recausal.models.batch.padded`),
        on the model's device."""
        batch, lengths = padded(seqs, extra)
        return torch.from_numpy(batch).to(self.device), torch.from_numpy(lengths).to(self.device)

    @abstractmethod
    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores (B, n_items) for already-encoded histories (on the model's device)."""

    def score_ids(self, seqs: Sequence[np.ndarray], batch_size: int = 1024) -> np.ndarray:
        """Score encoded histories (each within ``capacity``); padding id 0 scores -inf.

        Edited histories given as :class:`~recausal.models.batch.Edits` score the same, and
        faster for SASRec.

        Args:
            seqs: encoded histories (see :meth:`encode`).
            batch_size: histories per forward pass.

        Returns:
            Scores ``(len(seqs), n_items)``, float32, on the host whatever the device.
        """
        if len(seqs) == 0:
            return np.empty((0, self.n_items), dtype=np.float32)
        out = np.empty((len(seqs), self.n_items), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(seqs), batch_size):
                chunk = seqs[start : start + batch_size]
                out[start : start + len(chunk)] = self._score_batch(chunk).cpu().numpy()
        out[:, 0] = -np.inf
        self.forward_passes += -(-len(seqs) // batch_size)
        self.histories_scored += len(seqs)
        return out

    def score(self, histories: Sequence[History]) -> np.ndarray:
        """Full score vectors of a batch of histories.

        Args:
            histories: a list of histories, each a list of item tokens.

        Returns:
            Scores ``(len(histories), n_items)``; column i is item ``items[i]``.
        """
        return self.score_ids([self.encode(h) for h in as_batch(histories)])

    def recommend(
        self, histories: Sequence[History], k: int = 10, exclude_seen: bool | None = None
    ) -> list[Recommendation]:
        """Top-k items and scores for each history of a batch.

        Args:
            histories: a list of histories, each a list of item tokens (a history longer than
                the model's window is read through its most recent ``capacity`` items).
            k: how many items (at most ``n_items - 1``).
            exclude_seen: leave out every item of the history (all of it, not only the
                window); ``None`` (default) follows :attr:`excludes_seen`.

        Returns:
            One :class:`~recausal.models.batch.Recommendation` per history.
        """
        k = check_int(k, "k", minimum=1, maximum=self.n_items - 1)
        exclude = self.seen_policy(exclude_seen)
        batch = as_batch(histories)
        full = [self.encode(h, window=False) for h in batch]
        scores = self.score_ids([ids[-self.capacity :] for ids in full])
        if exclude:
            for row, ids in zip(scores, full, strict=True):
                row[ids] = -np.inf
        return [self._top_k(row, k) for row in scores]

    def _top_k(self, row: np.ndarray, k: int) -> Recommendation:
        """The ``k`` best items of a score row; items at -inf (left out) are never listed."""
        top = top_k_ids(row, min(k, int(np.isfinite(row).sum())))
        return Recommendation(tuple(self.items[i] for i in top), tuple(float(row[i]) for i in top))

    # ----------------------------------------------------------------- attention
    def _abductive_input(
        self, seqs: Sequence[np.ndarray], targets: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The sequences fed back with their recommended item in the last real slot.

        SASRec appends it; for BERT4Rec it takes the place of the mask token. Both are
        ``[s1..sn, target]``.
        """
        return self._pad([np.append(s, t) for s, t in zip(seqs, targets, strict=True)], 0)

    def attention_ids(
        self, seqs: Sequence[np.ndarray], targets: Sequence[int], layer: int = -1
    ) -> list[np.ndarray]:
        """Per-head attention of each encoded history with its target appended.

        Args:
            seqs: encoded histories.
            targets: the recommended item's internal id, per history.
            layer: the layer read (negative: from the deepest).

        Returns:
            Per history, attention probabilities ``(heads, n+1, n+1)``, rows summing to 1.

        Raises:
            UnsupportedModelError: the model has no attention to read.
        """
        encoder = self._encoder()
        if encoder is None:
            raise UnsupportedModelError(
                f"model {self.name} ({type(self.net).__name__}): attention not supported: "
                f"{self.no_attention_reason}; explainers that only need scores (occlusion, "
                "exhaustive) still work"
            )
        if not -self.n_layers <= layer < self.n_layers:
            raise InvalidInputError(
                f"layer must be in [{-self.n_layers}, {self.n_layers - 1}], got {layer}"
            )
        captured: list[torch.Tensor] = []
        module = encoder.layer[layer].multi_head_attention.attn_dropout
        caller = threading.get_ident()  # another thread may run the same network meanwhile

        def capture(m: torch.nn.Module, inp: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
            if threading.get_ident() == caller:
                captured.append(inp[0])

        handle = module.register_forward_hook(capture)
        try:
            with torch.inference_mode():
                self._forward(*self._abductive_input(seqs, targets))
            self.forward_passes += 1
        finally:
            handle.remove()
        probs = captured[-1].cpu().numpy()
        result = []
        for row, s in enumerate(seqs):
            n1 = len(s) + 1
            a = probs[row, :, :n1, :n1].astype(np.float64)
            result.append(a / a.sum(axis=-1, keepdims=True))
        return result

    @abstractmethod
    def _forward(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Run the network on a padded batch."""

    def attention(self, history: History, target: str | None = None, layer: int = -1) -> np.ndarray:
        """Attention probabilities per head of ``layer`` (default: the deepest).

        Shape (heads, n+1, n+1) over the real positions: the (possibly truncated) history,
        then the recommended item ``target`` (default: the model's top-1). Rows sum to 1;
        the probability mass RecBole leaves on masked positions (its mask is -10000, not
        -inf, so it is ~1e-4000) is dropped and each row renormalised.

        Args:
            history: item tokens, oldest first.
            target: the recommended item token [default: the model's top-1].
            layer: the layer read (negative: from the deepest).

        Returns:
            The attention probabilities ``(heads, n+1, n+1)``.
        """
        if not self.has_attention:
            self.attention_ids([], [], layer)  # raises UnsupportedModelError
        ids = self.encode(history)
        if target is None:
            tid = int(np.argmax(self.score_ids([ids])[0]))
        else:
            tid = self.item_ids.get(str(target), -1)
            if tid < 0:
                raise UnknownItemError(f"target item {target!r} is not known to model {self.name}")
        return self.attention_ids([ids], [tid], layer)[0]
