"""Adapters that run a trained RecBole sequential recommender on item-token histories.

One class per model family behind :class:`SequentialModel`: ``recommend``, ``score`` and
``attention``. Histories are lists of external item tokens, oldest first. Each adapter
uses at most ``capacity = max_seq_length - 1`` history items, the most recent, so that the
recommended item fits in the sequence beside them (appended for SASRec, in place of the mask
token for BERT4Rec): the recommendation that is explained is exactly the one shown.
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


class _ConfigView(dict):
    """The subset of a RecBole ``Config`` a model constructor reads (missing keys are None)."""

    def __getitem__(self, key: str) -> Any:
        return self.get(key)


class _DatasetView:
    """Stands in for a RecBole dataset where a model constructor only asks for sizes."""

    def __init__(self, item_field: str, n_items: int) -> None:
        self._item_field = item_field
        self._n_items = n_items

    def num(self, field: str) -> int:
        if field != self._item_field:
            raise UnsupportedModelError(f"the model asks for the size of field {field!r}")
        return self._n_items


class SequentialModel(ABC):
    """A trained sequential recommender, addressed with external item tokens."""

    #: attention is left-to-right (a later position cannot influence an earlier one)
    causal_attention: bool = False

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
        self.n_layers = len(net.trm_encoder.layer)
        first = net.trm_encoder.layer[0].multi_head_attention
        self.n_heads = int(first.num_attention_heads)
        self.hidden_size = int(first.all_head_size)

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
        return out

    def score(self, histories: Sequence[History]) -> np.ndarray:
        """Full score vectors, shape (len(histories), n_items); column i is item ``items[i]``."""
        return self.score_ids([self.encode(h) for h in _as_batch(histories)])

    def recommend(self, histories: Sequence[History], k: int = 10) -> list[Recommendation]:
        """Top-k items and scores for each history of a batch."""
        if not isinstance(k, int | np.integer) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}")
        k = min(int(k), self.n_items - 1)
        scores = self.score(histories)
        return [self._top_k(row, k) for row in scores]

    def _top_k(self, row: np.ndarray, k: int) -> Recommendation:
        top = np.argpartition(-row, k - 1)[:k]
        top = top[np.lexsort((top, -row[top]))]
        return Recommendation(tuple(self.items[i] for i in top), tuple(float(row[i]) for i in top))

    # ----------------------------------------------------------------- attention
    def _abductive_input(self, seqs: Sequence[np.ndarray], targets: Sequence[int]) -> torch.Tensor:
        """The sequences fed back with their recommended item in the last real slot.

        SASRec appends it; for BERT4Rec it takes the place of the mask token. Both are
        ``[s1..sn, target]``.
        """
        return self._pad([np.append(s, t) for s, t in zip(seqs, targets, strict=True)], 0)[0]

    def attention_ids(
        self, seqs: Sequence[np.ndarray], targets: Sequence[int], layer: int = -1
    ) -> list[np.ndarray]:
        """Per-head attention (H, n+1, n+1) of each encoded history with its target appended."""
        if not -self.n_layers <= layer < self.n_layers:
            raise InvalidInputError(
                f"layer must be in [{-self.n_layers}, {self.n_layers - 1}], got {layer}"
            )
        captured: list[torch.Tensor] = []
        module = self.net.trm_encoder.layer[layer].multi_head_attention.attn_dropout
        handle = module.register_forward_hook(lambda m, inp, out: captured.append(inp[0]))
        try:
            with torch.inference_mode():
                self._forward(self._abductive_input(seqs, targets))
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
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Run the network on a padded batch."""

    def attention(self, history: History, target: str | None = None, layer: int = -1) -> np.ndarray:
        """Attention probabilities per head of ``layer`` (default: the deepest).

        Shape (heads, n+1, n+1) over the real positions: the (possibly truncated) history,
        then the recommended item ``target`` (default: the model's top-1). Rows sum to 1;
        the probability mass RecBole leaves on masked positions (its mask is -10000, not
        -inf, so it is ~1e-4000) is dropped and each row renormalised.
        """
        ids = self.encode(history)
        if target is None:
            tid = int(np.argmax(self.score_ids([ids])[0]))
        else:
            tid = self.item_ids.get(str(target), -1)
            if tid < 0:
                raise UnknownItemError(f"target item {target!r} is not known to model {self.name}")
        return self.attention_ids([ids], [tid], layer)[0]


class SASRecModel(SequentialModel):
    """RecBole's SASRec: left-to-right attention; the recommendation is appended."""

    causal_attention = True

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        lengths = (batch != 0).sum(dim=1)
        return self.net.forward(batch, lengths)

    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        batch, lengths = self._pad(seqs, extra=0)
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

    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.net.forward(batch)

    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        batch, lengths = self._pad(seqs, extra=1)
        batch[torch.arange(len(seqs)), lengths] = self.mask_id
        hidden = self.net.forward(batch)[torch.arange(len(seqs)), lengths]
        weights = self.net.item_embedding.weight[: self.net.n_items]
        return hidden @ weights.T + self.net.output_bias


ADAPTERS: dict[str, type[SequentialModel]] = {"SASRec": SASRecModel, "BERT4Rec": BERT4RecModel}


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
    with torch.random.fork_rng():
        net = get_model(model_name)(config, _DatasetView(item_field, n_items))
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
