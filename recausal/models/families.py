"""The model families: one :class:`~recausal.models.base.SequentialModel` per RecBole model.

Supported RecBole families (``ADAPTERS``): SASRec and BERT4Rec; GCSAN and CORE (``dnn_type:
trm``), whose RecBole ``TransformerEncoder`` attends left to right over the positions as
SASRec's does, so their attention is read the same way; and, for scores only (``score``,
``recommend``, and the explainers that only score: occlusion, exhaustive), GRU4Rec, NARM,
STAMP, NextItNet, SRGNN, RepeatNet, LightSANs (low-rank item-to-interest attention, no
item-to-item matrix) and CORE with ``dnn_type: ave``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from recausal.models.base import SequentialModel
from recausal.models.batch import Edits, padded
from recausal.models.inference import Transformer, empty_history_state


class SASRecModel(SequentialModel):
    """RecBole's SASRec: left-to-right attention; the recommendation is appended."""

    causal_attention = True

    def _forward(self, batch: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net.forward(batch, lengths)

    def _score_batch(self, seqs: Sequence[np.ndarray]) -> torch.Tensor:
        tokens, lengths = padded(seqs, 0)
        if self.fast_scoring:
            edits = seqs if isinstance(seqs, Edits) else None
            hidden = Transformer(self.net, causal=True).read(tokens, lengths - 1, edits)
        else:
            hidden = self.net.forward(
                torch.from_numpy(tokens).to(self.device), torch.from_numpy(lengths).to(self.device)
            )
            emptied = ~tokens.any(axis=1)
            if emptied.any():
                rows = torch.from_numpy(emptied).to(self.device)
                hidden[rows] = empty_history_state(self.net, int(emptied.sum()))
        return hidden @ self.net.item_embedding.weight.T

    differentiable = True

    def network_input(self, seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """The padded windows, read at their last item, on the host (see the base class)."""
        tokens, lengths = padded(seqs, 0)
        return torch.from_numpy(tokens), torch.from_numpy(lengths - 1)

    def score_tokens(
        self, tokens: torch.Tensor, read: torch.Tensor, *, net: torch.nn.Module | None = None
    ) -> torch.Tensor:
        """Differentiable scores: the network's ``forward`` (see the base class)."""
        net = self.net if net is None else net
        tokens, read = tokens.to(self.device), read.to(self.device)
        return net.forward(tokens, read + 1) @ net.item_embedding.weight.T


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
        tokens, lengths = padded(seqs, 1)
        tokens[np.arange(len(seqs)), lengths] = self.mask_id
        if self.fast_scoring:
            hidden = Transformer(net, causal=False).read(tokens, lengths, None)
            hidden = net.output_ln(net.output_gelu(net.output_ffn(hidden)))
        else:
            at = torch.from_numpy(lengths).to(self.device)
            hidden = net.forward(torch.from_numpy(tokens).to(self.device))
            hidden = hidden[torch.arange(len(seqs), device=self.device), at]
        return F.linear(hidden, net.item_embedding.weight[: net.n_items], net.output_bias)

    differentiable = True

    def network_input(self, seqs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """The padded windows with the mask token after each, read there, on the host (see the
        base class)."""
        tokens, lengths = padded(seqs, 1)
        tokens[np.arange(len(seqs)), lengths] = self.mask_id
        return torch.from_numpy(tokens), torch.from_numpy(lengths)

    def score_tokens(
        self, tokens: torch.Tensor, read: torch.Tensor, *, net: torch.nn.Module | None = None
    ) -> torch.Tensor:
        """Differentiable scores: the network's ``forward`` at the mask token, through its
        output layer (see the base class)."""
        net = self.net if net is None else net
        tokens, read = tokens.to(self.device), read.to(self.device)
        hidden = net.forward(tokens)[torch.arange(len(tokens), device=self.device), read]
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
                (batch.shape[0], self.max_seq_length - batch.shape[1]),
                dtype=batch.dtype,
                device=batch.device,
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
