"""recausal's inference forward of RecBole's SASRec/BERT4Rec: :class:`Transformer`.

It computes what the network's own ``forward`` computes, faster, for scoring many edits of a
few histories (see the class docstring). The families that use it are in
:mod:`recausal.models.families`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from recausal.models.batch import Edits, padded


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
    """The states of the originals an edit batch was made from, for :class:`Transformer`."""

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
    """The positions a batch computes, and its first layer's inputs, for :class:`Transformer`.

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


class Transformer:
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
    -10000, where float32 rounds them to 1e-3. Those rows are computed by
    :func:`empty_history_state`, the same for every batch.

    It runs on the network's device: the batch plans are made with numpy on the host and
    their index tensors moved there; the result stays on the device.

    Args:
        net: a RecBole SASRec or BERT4Rec network (``trm_encoder``, ``item_embedding``,
            ``position_embedding``, ``LayerNorm``, ``hidden_act``).
        causal: attend left to right (SASRec) rather than both ways (BERT4Rec).
    """

    #: positions computed per pass, padding included
    positions_per_pass: ClassVar[int] = 6144

    def __init__(self, net: torch.nn.Module, causal: bool) -> None:
        self.net = net
        self.causal = causal
        self.device = net.item_embedding.weight.device
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

    def _on(self, array: np.ndarray) -> torch.Tensor:
        """A numpy array as a tensor on the network's device."""
        return torch.from_numpy(array).to(self.device)

    def read(self, tokens: np.ndarray, read: np.ndarray, edits: Edits | None) -> torch.Tensor:
        """The deepest layer's output at one position per row.

        Args:
            tokens: a padded batch ``(B, W)`` of internal item ids.
            read: per row, the position read.
            edits: the histories the rows were padded from, for reuse (or ``None``).

        Returns:
            The hidden states ``(B, hidden)`` at the ``read`` positions.
        """
        ends = read + 1
        starts = np.zeros_like(read)
        prefix = None
        out = torch.empty((len(tokens), self.size), device=self.device)
        todo = np.arange(len(tokens))
        if self.causal:
            emptied = ~tokens.any(axis=1)
            if emptied.any():  # see the class docstring
                out[self._on(emptied)] = empty_history_state(self.net, int(emptied.sum()))
                todo = np.flatnonzero(~emptied)
            if edits is not None:
                starts, prefix = self._shared(tokens, read, edits)
        plan = self._plan(tokens, read, starts, ends, prefix)
        order = todo[np.argsort((ends - starts)[todo], kind="stable")]
        work = (ends - starts)[order]
        start = 0
        while start < len(order):  # rows while the pass's padded positions fit the budget
            cost = np.arange(1, len(order) - start + 1) * work[start:]
            stop = start + max(1, int(np.searchsorted(cost, self.positions_per_pass, "right")))
            out[self._on(order[start:stop])] = self._pass(plan, order[start:stop])[0]
            start = stop
        return out

    def _shared(
        self, tokens: np.ndarray, read: np.ndarray, edits: Edits
    ) -> tuple[np.ndarray, _Prefix | None]:
        """Per row, the length of the prefix it shares with its original (items, not padding;
        at most up to its read position), and the originals' states."""
        used, origin = np.unique(edits.owners, return_inverse=True)
        originals, lengths = padded([edits.originals[u] for u in used], 0)
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
        inputs = net.item_embedding(self._on(pairs // width))
        inputs = _layer_norm(
            inputs + net.position_embedding(self._on(pairs % width)), net.LayerNorm
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
        pairs = self._on(plan.pairs[rows, :span].reshape(-1))
        hidden = plan.inputs.index_select(0, pairs).view(len(rows), span, -1)
        qkv = plan.projected.index_select(0, pairs).view(len(rows), span, -1)
        key_ok = self._on(plan.tokens[rows, :width] != 0)
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
            gather = self._on(gather.reshape(-1))

        def everywhere(states: torch.Tensor, depth: int) -> torch.Tensor:
            """The states at every key position: the prefix's, then the computed ones."""
            if gather is None:
                return states
            buffer = prefix.states[depth]
            buffer[prefix.size : prefix.size + len(rows) * span].view(states.shape).copy_(states)
            return buffer.index_select(0, gather).view(len(rows), width, -1)

        states = []
        mask = self._mask(self._on(plan.positions[rows, :span]), key_ok)
        for depth, layer in enumerate(self.layers[:-1]):
            if depth:
                qkv = F.linear(hidden, *self.qkv[depth])
            states.append(qkv[..., self.size :])
            query, kv = qkv[..., : self.size], everywhere(states[-1], depth)
            hidden = self._attend(layer, hidden, query, kv, mask)
        states.append(hidden)
        at = self._on(plan.read[rows] - starts)
        own = hidden[torch.arange(len(rows), device=self.device), at]
        mask = self._mask(self._on(plan.read[rows]).unsqueeze(1), key_ok).squeeze(2)
        return self._attend_one(own, everywhere(hidden, len(self.layers) - 1), mask), states

    def _mask(self, at: torch.Tensor, key_ok: torch.Tensor) -> torch.Tensor:
        """RecBole's additive mask ``(G, 1, queries, keys)`` for queries at positions ``at``:
        0 where a key is an item (and, left to right, not after the query), else -10000."""
        allowed = key_ok.unsqueeze(1)
        if self.causal:
            keys = torch.arange(key_ok.shape[1], device=key_ok.device)
            allowed = allowed & (keys <= at.unsqueeze(-1))
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


def empty_history_state(net: torch.nn.Module, n: int) -> torch.Tensor:
    """The left-to-right network's output for ``n`` emptied histories (every item removed).

    With no item, every key is masked and the output depends on how much padding the batch
    has; it is computed here at one padding token, so that an emptied history scores the same
    in every batch (and on either scoring path).

    Args:
        net: a RecBole SASRec network.
        n: how many rows.

    Returns:
        The hidden states ``(n, hidden)``, on the network's device.
    """
    device = net.item_embedding.weight.device
    return net.forward(
        torch.zeros((n, 1), dtype=torch.int64, device=device),
        torch.ones(n, dtype=torch.int64, device=device),
    )
