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

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

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
    #: score with a last layer computed only at the position that is read (SASRec, BERT4Rec)
    one_row_last_layer: bool = True

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
        """Left-aligned padded batch and lengths. An empty history (every item removed by an
        explainer) is read as one padding token: the model's output given no items."""
        seqs = [s if len(s) else np.zeros(1, dtype=np.int64) for s in seqs]
        lengths = torch.tensor([len(s) for s in seqs], dtype=torch.long)
        width = int(lengths.max()) + extra
        batch = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, s in enumerate(seqs):
            batch[row, : len(s)] = torch.from_numpy(np.asarray(s, dtype=np.int64))
        return batch, lengths

    @abstractmethod
    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores (B, n_items) for already-encoded histories."""

    def score_ids(self, seqs: Sequence[np.ndarray], batch_size: int = 1024) -> np.ndarray:
        """Score encoded histories (each within ``capacity``); padding id 0 scores -inf."""
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
        handle = module.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
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


def _encode_at(
    net: torch.nn.Module, batch: torch.Tensor, rows: torch.Tensor, bidirectional: bool
) -> torch.Tensor:
    """The deepest transformer layer's output at one position per sequence, ``(B, hidden)``.

    The same computation as RecBole's SASRec/BERT4Rec ``forward`` (evaluation mode, dropout is
    the identity) followed by picking position ``rows[b]`` of sequence ``b``, except that the
    last layer computes its query, attention output and feed-forward block only for that
    position: every other position of the last layer is discarded anyway. Keys and values
    still come from every position, so the result is the same up to float rounding.
    """
    length = batch.size(1)
    positions = torch.arange(length, dtype=torch.long).unsqueeze(0).expand_as(batch)
    hidden = net.LayerNorm(net.item_embedding(batch) + net.position_embedding(positions))
    mask = net.get_attention_mask(batch, bidirectional=bidirectional)  # (B, 1, L or 1, L)
    layers = net.trm_encoder.layer
    for layer in layers[:-1]:
        hidden = layer(hidden, mask)
    last = layers[-1]
    mha = last.multi_head_attention
    index = torch.arange(batch.size(0))
    own = hidden[index, rows]  # (B, hidden)
    heads, size = mha.num_attention_heads, mha.attention_head_size
    query = mha.query(own).view(-1, heads, 1, size)
    key = mha.key(hidden).view(batch.size(0), length, heads, size).permute(0, 2, 3, 1)
    value = mha.value(hidden).view(batch.size(0), length, heads, size).permute(0, 2, 1, 3)
    scores = torch.matmul(query, key) / mha.sqrt_attention_head_size
    row_mask = mask[index, :, rows if mask.size(2) > 1 else 0].unsqueeze(2)  # (B, 1, 1, L)
    probs = mha.softmax(scores + row_mask)
    context = torch.matmul(probs, value).reshape(-1, mha.all_head_size)
    attended = mha.LayerNorm(mha.dense(context) + own)
    return last.feed_forward(attended)


class SASRecModel(SequentialModel):
    """RecBole's SASRec: left-to-right attention; the recommendation is appended."""

    causal_attention = True

    def _forward(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.forward(batch, lengths)

    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        batch, lengths = self._pad(seqs, extra=0)
        if self.one_row_last_layer:
            hidden = _encode_at(self.net, batch, lengths - 1, bidirectional=False)
        else:
            hidden = self.net.forward(batch, lengths)
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
        batch, lengths = self._pad(seqs, extra=1)
        batch[torch.arange(len(seqs)), lengths] = self.mask_id
        if self.one_row_last_layer:
            net = self.net
            hidden = _encode_at(net, batch, lengths, bidirectional=True)
            hidden = net.output_ln(net.output_gelu(net.output_ffn(hidden)))
        else:
            hidden = self.net.forward(batch)[torch.arange(len(seqs)), lengths]
        weights = self.net.item_embedding.weight[: self.net.n_items]
        return hidden @ weights.T + self.net.output_bias


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
