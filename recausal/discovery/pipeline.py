"""The discovery pipeline: encoded histories and their targets -> :class:`Discovery`
objects (:func:`discover_ids`), and :func:`discover` for one history of item tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from recausal.discovery.graphs import Discovery
from recausal.discovery.settings import DiscoverySettings, Heads
from recausal.discovery.structures import learn_structures
from recausal.errors import UnknownItemError

if TYPE_CHECKING:
    from recausal.models import SequentialModel


def discover_ids(
    model: SequentialModel,
    ids: Sequence[np.ndarray],
    targets: Sequence[int],
    settings: DiscoverySettings | None = None,
    heads: Heads = "all",
    *,
    attentions: Sequence[np.ndarray] | None = None,
    batched: bool = True,
) -> list[Discovery]:
    """Learn the requested graphs of many encoded histories (the one discovery pipeline).

    Args:
        model: the recommender.
        ids: encoded histories (``model.encode``).
        targets: each history's recommended item id.
        settings: how to learn (default: :class:`DiscoverySettings`); resolved here.
        heads: ``"all"``, ``"each"``, ``"aggregate"`` or a head's index.
        attentions: the histories' attention ``(H, n+1, n+1)`` if already read (default: one
            forward pass of the model here).
        batched: learn equal-length histories together (False: one matrix at a time).

    Returns:
        One :class:`Discovery` per history.

    Example:
        >>> ids = [model.encode(h) for h in histories]  # doctest: +SKIP
        >>> tops = model.score_ids(ids).argmax(axis=1)  # doctest: +SKIP
        >>> found = discover_ids(model, ids, tops, heads="aggregate")  # doctest: +SKIP
    """
    if len(ids) == 0:
        return []
    settings = (settings or DiscoverySettings()).resolve(model)
    if attentions is None:
        attentions = model.attention_ids(ids, targets, settings.layer)
    learned = learn_structures(attentions, settings, heads, batched)
    return [
        Discovery(tuple(model.decode(s)), model.items[t], a, found, settings)
        for s, t, a, found in zip(ids, targets, attentions, learned, strict=True)
    ]


def _target_id(
    model: SequentialModel, history: Sequence[str], target: str | None, exclude_seen: bool | None
) -> int:
    """The id of ``target``, or of the model's top-1 for ``history`` when it is ``None``."""
    if target is None:
        target = model.recommend([list(history)], k=1, exclude_seen=exclude_seen)[0].items[0]
    if model.item_ids.get(str(target), -1) < 0:
        raise UnknownItemError(f"target item {target!r} is not known to model {model.name}")
    return model.item_ids[str(target)]


def discover(
    model: SequentialModel,
    history: Sequence[str],
    *,
    target: str | None = None,
    exclude_seen: bool | None = None,
    heads: Heads = "all",
    settings: DiscoverySettings | None = None,
    **options: Any,
) -> Discovery:
    """Learn causal graphs over one history and its recommendation from the model's attention.

    The graph is over the window the model reads (the most recent ``capacity`` items).

    Args:
        model: the recommender (SASRec, BERT4Rec, ...).
        history: item tokens, oldest first.
        target: the recommended item (default: the model's top-1).
        exclude_seen: the seen-item policy for the default target (``None``: the model's
            default, see ``SequentialModel.excludes_seen``).
        heads: ``"all"`` (each head's graph and the aggregate), ``"aggregate"``, ``"each"``
            or one head's index.
        settings: how to learn; or give its fields as ``options`` (``algorithm``, ``alpha``...).

    Returns:
        The :class:`Discovery`; ``.pag()`` is the aggregate graph, ``.pag(h)`` head ``h``'s.

    Example:
        >>> import recausal
        >>> model = recausal.load_model("sasrec-ml100k")  # doctest: +SKIP
        >>> found = recausal.discover(model, ["50", "172", "133"], alpha=0.05)  # doctest: +SKIP
        >>> found.pag().n_nodes  # doctest: +SKIP
        4
    """
    settings = settings or DiscoverySettings(**options)
    ids = model.encode(history, warn=False)
    target_id = _target_id(model, history, target, exclude_seen)
    return discover_ids(model, [ids], [target_id], settings, heads)[0]
