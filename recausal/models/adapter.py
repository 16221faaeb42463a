"""Adapters that run a trained RecBole sequential recommender on item-token histories.

One class per model family behind :class:`SequentialModel`: ``recommend``, ``score`` and
``attention``. Histories are lists of external item tokens, oldest first. Each adapter
uses at most ``capacity = max_seq_length - 1`` history items, the most recent, so that the
recommended item fits in the sequence beside them (appended for SASRec, in place of the mask
token for BERT4Rec): the recommendation that is explained is exactly the one shown.

Supported RecBole families (``ADAPTERS``): SASRec and BERT4Rec; GCSAN and CORE (``dnn_type:
trm``), whose RecBole ``TransformerEncoder`` attends left to right over the positions as
SASRec's does, so their attention is read the same way; and, for scores only (``score``,
``recommend``, and the explainers that only score: occlusion, exhaustive), GRU4Rec, NARM,
STAMP, NextItNet, SRGNN, RepeatNet, LightSANs (low-rank item-to-interest attention, no
item-to-item matrix) and CORE with ``dnn_type: ave``. :func:`from_recbole` wraps a RecBole
model object held in memory.
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from recausal.errors import (
    EmptyHistoryError,
    InvalidInputError,
    RecausalWarning,
    UnknownItemError,
    UnknownUserError,
    UnsupportedModelError,
)
from recausal.models.bundle import Bundle

History = Sequence[str]


class Edits(list):
    """Encoded histories that remember the unedited history each was made from.

    Row ``i`` is an edit (items deleted or replaced by padding) of ``originals[owners[i]]``.
    To every consumer it is a plain list; SASRec's scoring reads the originals to reuse the
    computation of the prefix an edit shares with its original. A slice is again ``Edits``.
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
    """Ids of the ``k`` highest scores, best first (ties: lower id first)."""
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.lexsort((top, -scores[top]))]


class _ConfigView(dict):
    """The subset of a RecBole ``Config`` a model constructor reads (missing keys are None)."""

    def __getitem__(self, key: str) -> Any:
        return self.get(key)


class _DatasetView:
    """Stands in for a RecBole dataset where a model constructor only asks for sizes."""

    def __init__(self, item_field: str, n_items: int, max_seq_length: int = 0) -> None:
        self._item_field = item_field
        self._n_items = n_items
        self.field2seqlen = _AnyKey(max_seq_length)

    def num(self, field: str) -> int:
        if field != self._item_field:
            raise UnsupportedModelError(f"the model asks for the size of field {field!r}")
        return self._n_items


class _AnyKey(dict):
    """A mapping that answers every key with one value (sequence lengths of list fields)."""

    def __init__(self, value: int) -> None:
        super().__init__()
        self._value = value

    def __getitem__(self, key: str) -> int:
        return self._value


class SequentialModel(ABC):
    """A trained sequential recommender, addressed with external item tokens."""

    #: attention is left-to-right (a later position cannot influence an earlier one)
    causal_attention: bool = False
    #: dotted attribute path from the network to its RecBole ``TransformerEncoder`` (whose
    #: attention is read); ``None`` for models without token-to-token self-attention
    encoder_path: str | None = "trm_encoder"
    #: why ``attention`` is unavailable when the network has no encoder at ``encoder_path``
    no_attention_reason: str = "no self-attention"
    #: score with recausal's inference forward (:class:`_Transformer`; SASRec, BERT4Rec)
    #: rather than the network's own ``forward``
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

    def encode(self, history: History, *, warn: bool = True) -> np.ndarray:
        """Map a history of item tokens to internal ids, keeping the ``capacity`` most recent."""
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
        if len(ids) > self.capacity:
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
        """Map internal item ids back to tokens."""
        return [self.items[int(i)] for i in ids]

    @cached_property
    def _user_histories(self) -> dict[str, list[str]]:
        from recausal.data import dataset_histories, resolve_dataset

        return dataset_histories(resolve_dataset(self.dataset_name))

    @property
    def dataset_name(self) -> str:
        """The dataset (a known name or a folder) whose users this model serves.

        The one given to ``load_model``, else a known name recorded in the bundle (such as
        ``ml-100k``), else the folder recorded at training time.
        """
        from recausal.data import KNOWN_DATASETS

        if self._dataset is not None:
            return str(self._dataset)
        recorded = self.meta.get("dataset", {})
        name = str(recorded.get("name", ""))
        if name in KNOWN_DATASETS or not recorded.get("directory"):
            return name
        return str(recorded["directory"])

    @cached_property
    def titles(self) -> dict[str, str]:
        """Item token → readable title from the dataset's ``.item`` file (empty if none)."""
        from recausal.data import item_titles, resolve_dataset
        from recausal.errors import RecausalError

        try:
            return item_titles(resolve_dataset(self.dataset_name))
        except RecausalError:
            return {}

    def user_history(self, user_id: str | int) -> list[str]:
        """The user's full interaction history in the model's dataset, oldest first."""
        hist = self._user_histories.get(str(user_id))
        if hist is None:
            raise UnknownUserError(f"user {user_id!r} is not in the dataset of model {self.name}")
        return hist

    # ----------------------------------------------------------------- scoring
    def _pad(self, seqs: Sequence[np.ndarray], extra: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-aligned padded batch and lengths (see :func:`_padded`)."""
        batch, lengths = _padded(seqs, extra)
        return torch.from_numpy(batch), torch.from_numpy(lengths)

    @abstractmethod
    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores (B, n_items) for already-encoded histories."""

    def score_ids(self, seqs: Sequence[np.ndarray], batch_size: int = 1024) -> np.ndarray:
        """Score encoded histories (each within ``capacity``); padding id 0 scores -inf.

        Edited histories given as :class:`Edits` score the same, and faster for SASRec.
        """
        if len(seqs) == 0:
            return np.empty((0, self.n_items), dtype=np.float32)
        out = np.empty((len(seqs), self.n_items), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(seqs), batch_size):
                chunk = seqs[start : start + batch_size]
                out[start : start + len(chunk)] = self._score_batch(chunk).numpy()
        out[:, 0] = -np.inf
        self.forward_passes += -(-len(seqs) // batch_size)
        self.histories_scored += len(seqs)
        return out

    def score(self, histories: Sequence[History]) -> np.ndarray:
        """Full score vectors, shape (len(histories), n_items); column i is item ``items[i]``."""
        return self.score_ids([self.encode(h) for h in _as_batch(histories)])

    def recommend(
        self, histories: Sequence[History], k: int = 10, exclude_seen: bool = False
    ) -> list[Recommendation]:
        """Top-k items and scores for each history of a batch.

        ``exclude_seen``: leave out the items of the history itself (off by default, as in
        RecBole's evaluation of sequential models).
        """
        if not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        batch = _as_batch(histories)
        scores = self.score(batch)
        if exclude_seen:
            for row, history in zip(scores, batch, strict=True):
                row[self.encode(history, warn=False)] = -np.inf
        k = min(int(k), self.n_items - 1)
        return [self._top_k(row, k) for row in scores]

    def _top_k(self, row: np.ndarray, k: int) -> Recommendation:
        top = top_k_ids(row, k)
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
        """Per-head attention (H, n+1, n+1) of each encoded history with its target appended."""
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
        probs = captured[-1].numpy()
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


def _padded(seqs: Sequence[np.ndarray], extra: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-aligned padded batch ``(B, longest + extra)`` and lengths. An empty history (every
    item removed by an explainer) is read as one padding token: the model's output given no
    items."""
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    width = max(int(lengths.max()), 1) + extra
    batch = np.zeros((len(seqs), width), dtype=np.int64)
    batch[np.arange(width) < lengths[:, None]] = np.concatenate(seqs)
    return batch, np.maximum(lengths, 1)


def _layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


#: RecBole's ``hidden_act`` names → the same functions as single kernels (``gelu``: the exact
#: erf form in both)
_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "relu": F.relu,
    "swish": F.silu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


@dataclass(frozen=True)
class _Prefix:
    """The states of the originals an edit batch was made from, for :class:`_Transformer`."""

    #: per layer, the originals' states at every position (row ``original * width + position``)
    #: and after them, rows where each pass writes its own to gather from both at once
    states: list[torch.Tensor]
    #: rows of ``states`` that hold the originals'
    size: int
    #: each edit's original (its row among them)
    origin: np.ndarray
    #: the originals' padded width
    width: int


@dataclass(frozen=True)
class _Plan:
    """The positions a batch computes, and its first layer's inputs, for :class:`_Transformer`.

    Row ``b`` computes positions ``starts[b]..ends[b]-1`` (the earlier ones' states come from
    ``prefix``) and is read at ``read[b]``. ``positions`` ``(B, S)`` lists them left-aligned
    (padding slots: position 0, item 0); ``pairs`` gives each slot's row in ``inputs`` (the
    first layer's input) and ``projected`` (its query, key and value), computed once per
    distinct (item, position) pair: the edits of a few histories share most of theirs.
    """

    tokens: np.ndarray
    read: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    positions: np.ndarray
    pairs: np.ndarray
    inputs: torch.Tensor
    projected: torch.Tensor
    prefix: _Prefix | None


class _Transformer:
    """An inference forward of RecBole's SASRec/BERT4Rec embedding and ``TransformerEncoder``,
    read at one position per sequence.

    It reads the network's own weights and computes what ``net.forward`` computes at that
    position in evaluation mode (dropout is the identity), with RecBole's additive attention
    mask (-10000, not -inf), up to float rounding. It is faster:

    - rows sorted by the number of positions to compute, in passes of about
      ``positions_per_pass`` positions, so that little padding is computed; fused attention
      and activation kernels;
    - the first layer's input and its query, key and value once per distinct (item,
      position) pair of the batch (see :class:`_Plan`);
    - the last layer only at the read position, and without projecting every position's key
      and value: the query is projected back into the layer input's space instead
      (``q·(Wk h + bk) = (Wkᵀq)·h + const``, and the attention-weighted values are
      ``Wv (Σ p h) + bv``);
    - left to right (``causal``), the prefix an edit shares with its original
      (:class:`Edits`) has the original's states in every layer: they come from one pass over
      the originals, and only the rest of each edit is computed.

    Left to right, a read position with no item at or before it (an emptied history) has
    every key masked: its result depends on the padding, and its attention scores sit at
    -10000, where float32 rounds them to 1e-3. Those rows are computed by ``net.forward``
    itself, at the padded width of the whole batch.
    """

    #: positions computed per pass, padding included
    positions_per_pass: ClassVar[int] = 6144

    def __init__(self, net: torch.nn.Module, causal: bool) -> None:
        self.net = net
        self.causal = causal
        self.act = _ACTIVATIONS[net.hidden_act]
        self.layers = list(net.trm_encoder.layer)
        first = self.layers[0].multi_head_attention
        self.heads, self.size = int(first.num_attention_heads), int(first.all_head_size)
        self.qkv = []  # per layer: the query, key and value projections as one
        for layer in self.layers:
            parts = [getattr(layer.multi_head_attention, n) for n in ("query", "key", "value")]
            self.qkv.append(
                (torch.cat([p.weight for p in parts]), torch.cat([p.bias for p in parts]))
            )

    def read(self, tokens: np.ndarray, read: np.ndarray, edits: Edits | None) -> torch.Tensor:
        """The deepest layer's output ``(B, hidden)`` of padded ``tokens`` ``(B, W)`` at
        positions ``read``; ``edits``: the histories the rows were padded from, for reuse."""
        ends = read + 1
        starts = np.zeros_like(read)
        prefix = None
        out = torch.empty((len(tokens), self.size))
        todo = np.arange(len(tokens))
        if self.causal:
            emptied = ~tokens.any(axis=1)
            if emptied.any():  # see the class docstring
                batch, lengths = torch.from_numpy(tokens[emptied]), torch.from_numpy(ends[emptied])
                out[emptied] = self.net.forward(batch, lengths)
                todo = np.flatnonzero(~emptied)
            if edits is not None:
                starts, prefix = self._shared(tokens, read, edits)
        plan = self._plan(tokens, read, starts, ends, prefix)
        order = todo[np.argsort((ends - starts)[todo], kind="stable")]
        work = (ends - starts)[order]
        start = 0
        while start < len(order):  # rows while the pass's padded positions fit the budget
            padded = np.arange(1, len(order) - start + 1) * work[start:]
            stop = start + max(1, int(np.searchsorted(padded, self.positions_per_pass, "right")))
            out[order[start:stop]] = self._pass(plan, order[start:stop])[0]
            start = stop
        return out

    def _shared(
        self, tokens: np.ndarray, read: np.ndarray, edits: Edits
    ) -> tuple[np.ndarray, _Prefix | None]:
        """Per row, the length of the prefix it shares with its original (items, not padding;
        at most up to its read position), and the originals' states."""
        used, origin = np.unique(edits.owners, return_inverse=True)
        originals, lengths = _padded([edits.originals[u] for u in used], 0)
        width = min(tokens.shape[1], originals.shape[1])
        same = tokens[:, :width] == originals[origin, :width]
        same &= tokens[:, :width] != 0
        shared = np.minimum(np.where(same.all(axis=1), width, same.argmin(axis=1)), read)
        if not shared.any():
            return shared, None
        plan = self._plan(originals, lengths - 1, np.zeros_like(lengths), lengths, None)
        _, states = self._pass(plan, np.arange(len(originals)))
        size = states[0].shape[0] * states[0].shape[1]
        buffers = []
        for state in states:
            spare = max(self.positions_per_pass, tokens.shape[1])
            buffer = state.new_empty((size + spare, state.shape[-1]))
            buffer[:size].view(state.shape).copy_(state)
            buffers.append(buffer)
        return shared, _Prefix(buffers, size, origin, originals.shape[1])

    def _plan(
        self,
        tokens: np.ndarray,
        read: np.ndarray,
        starts: np.ndarray,
        ends: np.ndarray,
        prefix: _Prefix | None,
    ) -> _Plan:
        """The :class:`_Plan` of rows computing positions ``starts..ends-1``."""
        slot = np.arange(int((ends - starts).max()))
        computed = slot < (ends - starts)[:, None]
        positions = np.where(computed, starts[:, None] + slot, 0)
        ids = np.where(computed, np.take_along_axis(tokens, positions, axis=1), 0)
        width = int(positions.max()) + 1
        pairs, inverse = np.unique(ids * width + positions, return_inverse=True)
        net = self.net
        inputs = net.item_embedding(torch.from_numpy(pairs // width))
        inputs = _layer_norm(
            inputs + net.position_embedding(torch.from_numpy(pairs % width)), net.LayerNorm
        )
        projected = F.linear(inputs, *self.qkv[0])
        pairs = inverse.reshape(ids.shape)
        return _Plan(tokens, read, starts, ends, positions, pairs, inputs, projected, prefix)

    def _pass(self, plan: _Plan, rows: np.ndarray) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """One forward over ``rows`` of ``plan``: the output at their read positions
        ``(G, hidden)`` and, per layer, the computed positions' states (keys and values, and
        for the last layer its input)."""
        starts, ends = plan.starts[rows], plan.ends[rows]
        span, width = int((ends - starts).max()), int(ends.max())
        pairs = torch.from_numpy(plan.pairs[rows, :span].reshape(-1))
        hidden = plan.inputs.index_select(0, pairs).view(len(rows), span, -1)
        qkv = plan.projected.index_select(0, pairs).view(len(rows), span, -1)
        key_ok = torch.from_numpy(plan.tokens[rows, :width] != 0)
        gather = None
        prefix = plan.prefix
        if prefix is not None and starts.any():
            key = np.arange(width)
            inside = np.arange(len(rows))[:, None] * span + np.clip(
                key - starts[:, None], 0, span - 1
            )
            gather = np.where(
                key < starts[:, None],
                prefix.origin[rows, None] * prefix.width + key,
                prefix.size + inside,
            )
            gather = torch.from_numpy(gather.reshape(-1))

        def everywhere(states: torch.Tensor, depth: int) -> torch.Tensor:
            """The states at every key position: the prefix's, then the computed ones."""
            if gather is None:
                return states
            buffer = prefix.states[depth]
            buffer[prefix.size : prefix.size + len(rows) * span].view(states.shape).copy_(states)
            return buffer.index_select(0, gather).view(len(rows), width, -1)

        states = []
        mask = self._mask(torch.from_numpy(plan.positions[rows, :span]), key_ok)
        for depth, layer in enumerate(self.layers[:-1]):
            if depth:
                qkv = F.linear(hidden, *self.qkv[depth])
            states.append(qkv[..., self.size :])
            query, kv = qkv[..., : self.size], everywhere(states[-1], depth)
            hidden = self._attend(layer, hidden, query, kv, mask)
        states.append(hidden)
        own = hidden[torch.arange(len(rows)), torch.from_numpy(plan.read[rows] - starts)]
        mask = self._mask(torch.from_numpy(plan.read[rows]).unsqueeze(1), key_ok).squeeze(2)
        return self._attend_one(own, everywhere(hidden, len(self.layers) - 1), mask), states

    def _mask(self, at: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        """RecBole's additive mask ``(G, 1, queries, keys)`` for queries at positions ``at``:
        0 where a key is an item (and, left to right, not after the query), else -10000."""
        allowed = key_ok.unsqueeze(1)
        if self.causal:
            allowed = allowed & (torch.arange(key_ok.shape[1]) <= at.unsqueeze(-1))
        return torch.where(allowed, 0.0, -10000.0).unsqueeze(1)

    def _attend(
        self,
        layer: torch.nn.Module,
        inputs: torch.Tensor,
        query: torch.Tensor,
        kv: torch.Tensor,
        mask: torch.Tensor,
    ) -> torch.Tensor:
        """One ``TransformerLayer`` at every computed position (``inputs``: the layer input)."""
        q = query.unflatten(-1, (self.heads, -1)).transpose(1, 2)
        k, v = kv.unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)
        context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self._feed(layer, inputs, context.transpose(1, 2).flatten(2))

    def _attend_one(
        self, inputs: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """The last ``TransformerLayer`` at one position per row: ``inputs`` ``(G, hidden)``
        its layer input there, ``keys`` ``(G, W, hidden)`` the layer input everywhere."""
        layer = self.layers[-1]
        weight, bias = self.qkv[-1]
        size, heads = self.size, self.heads
        per_head = weight.view(3, heads, -1, size)  # (query/key/value, h, d, H)
        query = F.linear(inputs, weight[:size], bias[:size]).view(len(inputs), heads, -1)
        back = torch.bmm(query.transpose(0, 1), per_head[1]).transpose(0, 1)  # (G, h, H)
        scale = 1 / layer.multi_head_attention.sqrt_attention_head_size
        scores = torch.baddbmm(mask, back, keys.transpose(1, 2), alpha=scale)
        mixed = torch.bmm(torch.softmax(scores, dim=-1), keys)  # (G, h, H)
        context = torch.bmm(mixed.transpose(0, 1), per_head[2].transpose(1, 2))  # (h, G, d)
        context = context.transpose(0, 1).flatten(1) + bias[2 * size :]
        return self._feed(layer, inputs, context)

    def _feed(
        self, layer: torch.nn.Module, inputs: torch.Tensor, context: torch.Tensor
    ) -> torch.Tensor:
        """The rest of a ``TransformerLayer`` after attention: output projection, residual and
        norm, feed-forward block, residual and norm."""
        mha, ff = layer.multi_head_attention, layer.feed_forward
        attended = F.linear(context, mha.dense.weight, mha.dense.bias).add_(inputs)
        attended = _layer_norm(attended, mha.LayerNorm)
        inner = self.act(F.linear(attended, ff.dense_1.weight, ff.dense_1.bias))
        out = F.linear(inner, ff.dense_2.weight, ff.dense_2.bias).add_(attended)
        return _layer_norm(out, ff.LayerNorm)


class SASRecModel(SequentialModel):
    """RecBole's SASRec: left-to-right attention; the recommendation is appended."""

    causal_attention = True

    def _forward(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.forward(batch, lengths)

    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        tokens, lengths = _padded(seqs, 0)
        if self.fast_scoring:
            edits = seqs if isinstance(seqs, Edits) else None
            hidden = _Transformer(self.net, causal=True).read(tokens, lengths - 1, edits)
        else:
            hidden = self.net.forward(torch.from_numpy(tokens), torch.from_numpy(lengths))
        return hidden @ self.net.item_embedding.weight.T


class BERT4RecModel(SequentialModel):
    """RecBole's BERT4Rec: bidirectional attention; scored at a mask token after the history.

    RecBole's own ``full_sort_predict`` drops the oldest history item when it inserts the
    mask; this adapter builds ``[s1..sn, MASK]`` itself so no item is lost.
    """

    causal_attention = False

    @property
    def mask_id(self) -> int:
        """Internal id of the mask token (one past the last item id)."""
        return int(self.net.mask_token)

    def _forward(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.forward(batch)

    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        net = self.net
        tokens, lengths = _padded(seqs, 1)
        tokens[np.arange(len(seqs)), lengths] = self.mask_id
        if self.fast_scoring:
            hidden = _Transformer(net, causal=False).read(tokens, lengths, None)
            hidden = net.output_ln(net.output_gelu(net.output_ffn(hidden)))
        else:
            hidden = net.forward(torch.from_numpy(tokens))[torch.arange(len(seqs)), lengths]
        return F.linear(hidden, net.item_embedding.weight[: net.n_items], net.output_bias)


class RecBoleSequentialModel(SequentialModel):
    """Any RecBole sequential model that scores from the item sequence alone.

    Scores come from the network's own ``full_sort_predict``. The base class has no attention
    to read (GRU4Rec, NARM, STAMP, ...): ``score``/``recommend`` work, ``attention`` raises
    :class:`UnsupportedModelError`. Subclasses name a ``TransformerEncoder`` in
    ``encoder_path`` to make attention readable.
    """

    encoder_path = None

    def _pad(self, seqs: Sequence[np.ndarray], extra: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded to ``max_seq_length`` as RecBole's dataloaders do: some models depend on the
        padding (NextItNet reads the last slot, LightSANs pools over every slot)."""
        batch, lengths = super()._pad(seqs, extra)
        if batch.shape[1] < self.max_seq_length:
            pad = torch.zeros(
                (batch.shape[0], self.max_seq_length - batch.shape[1]), dtype=batch.dtype
            )
            batch = torch.cat([batch, pad], dim=1)
        return batch, lengths

    def _interaction(self, batch: torch.Tensor, lengths: torch.Tensor) -> Any:
        from recbole.data.interaction import Interaction

        return Interaction({self.net.ITEM_SEQ: batch, self.net.ITEM_SEQ_LEN: lengths})

    def _forward(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.full_sort_predict(self._interaction(batch, lengths))

    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        batch, lengths = self._pad(seqs, extra=0)
        return self._forward(batch, lengths).float().reshape(len(seqs), -1)


class LightSANsModel(RecBoleSequentialModel):
    """RecBole's LightSANs: scores only; its attention is low-rank (items attend to k latent
    interests, not to each other), so there is no item-to-item matrix to read."""

    no_attention_reason = (
        "no token-to-token self-attention (LightSANs attends to k latent interests)"
    )


class GCSANModel(RecBoleSequentialModel):
    """RecBole's GCSAN: a gated graph network over the session, then left-to-right attention
    (its ``self_attention`` encoder) over the positions; the recommendation is appended.

    The tokens entering the attention already mix neighbouring items through the session
    graph, so the attention is a weaker reading of item-to-item influence than SASRec's.
    """

    causal_attention = True
    encoder_path = "self_attention"


class COREModel(RecBoleSequentialModel):
    """RecBole's CORE: with ``dnn_type: trm`` a left-to-right ``TransformerEncoder`` weighs
    the items of the session (attention readable); with ``dnn_type: ave`` scores only."""

    causal_attention = True
    encoder_path = "net.trm_encoder"
    no_attention_reason = "no self-attention (CORE with dnn_type 'ave' averages the items)"


ADAPTERS: dict[str, type[SequentialModel]] = {
    "SASRec": SASRecModel,
    "BERT4Rec": BERT4RecModel,
    "GCSAN": GCSANModel,
    "CORE": COREModel,
    "LightSANs": LightSANsModel,
    "GRU4Rec": RecBoleSequentialModel,
    "NARM": RecBoleSequentialModel,
    "STAMP": RecBoleSequentialModel,
    "NextItNet": RecBoleSequentialModel,
    "SRGNN": RecBoleSequentialModel,
    "RepeatNet": RecBoleSequentialModel,
}
"""RecBole model class name → adapter.

Not listed, because they cannot be rebuilt from weights and an item-id map or do not score
from the item sequence alone: models that need user ids (Caser, FPMC, HGN, HRM, NPE, SHAN,
TransRec, FOSSIL, SINE), item features (SASRecF, FDSA, GRU4RecF, S3Rec, KSR, GRU4RecKG), or
the training interactions at construction (FEARec, whose attention is also mixed with a
frequency-domain filter); SASRecCPR, whose softmax-CPR head reads the last padded slot rather
than the last item (so no history position makes the recommendation) and whose
``full_sort_predict`` needs the true next item; GRU4RecCPR (the same head)."""

#: models whose attention can be read (the rest score only)
ATTENTION_MODELS = ("SASRec", "BERT4Rec", "GCSAN", "CORE")


def _as_batch(histories: Sequence[History]) -> Sequence[History]:
    if isinstance(histories, str) or (len(histories) > 0 and isinstance(histories[0], str)):
        raise InvalidInputError(
            "expected a batch (a list of histories, each a list of item tokens); "
            "for one history pass [history]"
        )
    return histories


def build_network(model_name: str, recbole_params: dict[str, Any], n_items: int) -> torch.nn.Module:
    """Instantiate a RecBole model class from a bundle's stored parameters."""
    if model_name not in ADAPTERS:
        raise UnsupportedModelError(
            f"model {model_name!r} is not supported; supported: {', '.join(ADAPTERS)}"
        )
    from recbole.utils import get_model

    config = _ConfigView(recbole_params)
    config["device"] = torch.device("cpu")
    item_field = config["ITEM_ID_FIELD"] or "item_id"
    max_len = int(config["MAX_ITEM_LIST_LENGTH"] or 0)
    with torch.random.fork_rng():
        net = get_model(model_name)(config, _DatasetView(item_field, n_items, max_len))
    return net


def from_bundle(bundle: Bundle, dataset: Any = None) -> SequentialModel:
    """Build the adapter for a bundle read by :func:`recausal.models.bundle.read_bundle`."""
    from recausal.errors import BundleError

    net = build_network(
        bundle.model_name, bundle.config.get("recbole", {}), int(bundle.config["n_items"])
    )
    try:
        net.load_state_dict(bundle.state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise BundleError(f"bundle {bundle.path} weights do not fit its config: {first}") from None
    if len(bundle.items) != int(bundle.config["n_items"]):
        raise BundleError(
            f"bundle {bundle.path}: items.json has {len(bundle.items)} tokens but the model "
            f"has {bundle.config['n_items']} item ids"
        )
    return ADAPTERS[bundle.model_name](
        net,
        bundle.items,
        name=bundle.path.name,
        meta=bundle.meta,
        path=bundle.path,
        dataset=dataset,
    )


def from_recbole(model: torch.nn.Module, dataset: Any, *, name: str = "") -> SequentialModel:
    """Wrap a RecBole model object and the RecBole dataset it was built for.

    ``model`` is an instance of a supported RecBole sequential model (see ``ADAPTERS``);
    ``dataset`` is its RecBole ``Dataset`` (or a dataloader's ``.dataset``), whose
    ``field2id_token`` gives the item tokens. The adapter holds a CPU copy of the model taken
    now, in eval mode: the caller's model is not changed, and later training does not reach
    the adapter (wrap again after training).
    """
    import copy

    family = next(
        (
            cls.__name__
            for cls in type(model).__mro__
            if cls.__name__ in ADAPTERS and cls.__module__.startswith("recbole.")
        ),
        None,
    )
    if family is None:
        raise UnsupportedModelError(
            f"model of type {type(model).__name__} is not supported; supported RecBole "
            f"models: {', '.join(ADAPTERS)}"
        )
    tokens_by_field = getattr(dataset, "field2id_token", None)
    if not isinstance(tokens_by_field, dict):
        raise InvalidInputError(
            "dataset must be the RecBole Dataset the model was built for (an object with "
            f"field2id_token), got {type(dataset).__name__}"
        )
    item_field = model.ITEM_ID
    if item_field not in tokens_by_field:
        raise InvalidInputError(f"dataset has no item field {item_field!r} in field2id_token")
    items = [str(t) for t in tokens_by_field[item_field]]
    if len(items) != int(model.n_items):
        raise InvalidInputError(
            f"dataset has {len(items)} item ids but model {family} was built for "
            f"{model.n_items}; pass the dataset the model was trained on"
        )
    net = copy.deepcopy(model).cpu()
    if hasattr(net, "device"):
        net.device = torch.device("cpu")
    config = getattr(dataset, "config", None)
    folder = config["data_path"] if config is not None else None
    folder = str(folder) if folder and Path(str(folder)).is_dir() else None
    meta = {
        "model": family,
        "source": "in-memory RecBole model (recausal.from_recbole)",
        "dataset": {"name": str(getattr(dataset, "dataset_name", "")), "directory": folder},
    }
    return ADAPTERS[family](net, items, name=name or family, meta=meta, dataset=folder)
