"""Per-user causal discovery: the model's attention on one history → partial ancestral graphs.

The abductive step feeds the history back with the recommended item in its last slot, reads
the deepest layer's attention per head, and learns a PAG over the history positions and the
recommended item (the target, the last node) from each head. The *aggregate* graph is learned
from the heads' summed covariance ``Σ_h A_h·A_hᵀ`` (the multi-head output concatenates the
heads' ``A_h·V_h``; with independent values per head its covariance is that sum). It is one
graph that uses every head's evidence, which is why recausal explains with it by default;
per-head graphs (as in the reference code) are available too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from recausal.causal.pag import PAG
from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.models.adapter import SequentialModel

Algorithm = Literal["icd", "fci"]
Heads = Literal["aggregate", "each", "all"] | int


@dataclass(frozen=True)
class DiscoverySettings:
    """How graphs are learned from attention (shared by ``discover`` and the causal explainer).

    ``alpha``: Fisher-z significance level; ``n_samples``: effective sample size (default: the
    model's hidden size); ``order_aware``: use token order as background knowledge (default:
    only for left-to-right attention, i.e. SASRec); ``max_cond_size``: cap on ICD/FCI's
    conditioning-set size; ``layer``: which transformer layer (default: the deepest).
    """

    algorithm: Algorithm = "icd"
    alpha: float = 0.01
    n_samples: int | None = None
    order_aware: bool | None = None
    max_cond_size: int | None = None
    layer: int = -1

    def __post_init__(self) -> None:
        if self.algorithm not in ("icd", "fci"):
            raise InvalidInputError(f"algorithm must be 'icd' or 'fci', got {self.algorithm!r}")
        if not 0 < self.alpha < 1:
            raise InvalidInputError(f"alpha must be in (0, 1), got {self.alpha!r}")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict."""
        return {
            "algorithm": self.algorithm,
            "alpha": self.alpha,
            "n_samples": self.n_samples,
            "order_aware": self.order_aware,
            "max_cond_size": self.max_cond_size,
            "layer": self.layer,
        }


@dataclass(frozen=True)
class Discovery:
    """The graphs learned for one history: per head and/or the aggregate over heads."""

    history: tuple[str, ...]
    target: str
    attention: np.ndarray = field(repr=False)
    heads: tuple[PAG, ...] = ()
    aggregate: PAG | None = None

    def pag(self, head: int | None = None) -> PAG:
        """The aggregate graph (``head=None``) or one head's graph."""
        if head is None:
            if self.aggregate is None:
                raise InvalidInputError("the aggregate graph was not learned (heads='each')")
            return self.aggregate
        if not self.heads:
            raise InvalidInputError("per-head graphs were not learned (heads='aggregate')")
        if not 0 <= head < len(self.heads):
            raise InvalidInputError(f"head must be in [0, {len(self.heads) - 1}], got {head}")
        return self.heads[head]


def learn_graph(
    attention: np.ndarray,
    items: Sequence[str],
    settings: DiscoverySettings,
    n_samples: int,
    order_aware: bool,
    aggregate: bool,
    head: int | None = None,
) -> PAG:
    """One PAG from attention ``(n, n)`` (or ``(H, n, n)`` summed over heads if ``aggregate``)."""
    from recausal.causal.citest import AttentionCITest
    from recausal.causal.fci import fci
    from recausal.causal.icd import icd

    test = AttentionCITest(
        attention, n_samples=n_samples, alpha=settings.alpha, aggregate_heads=aggregate
    )
    learn = icd if settings.algorithm == "icd" else fci
    result = learn(test, len(items), max_cond_size=settings.max_cond_size, order_aware=order_aware)
    meta = {
        **settings.to_dict(),
        "n_samples": n_samples,
        "order_aware": order_aware,
        "heads": "aggregate" if aggregate else head,
        "n_tests": int(result.n_tests),
        "max_cond_size_reached": int(result.max_cond_size_reached),
    }
    return PAG.from_marks(
        result.marks, items=list(items), target=len(items) - 1, sepsets=result.sepsets, meta=meta
    )


def graphs_from_attention(
    model: SequentialModel,
    ids: np.ndarray,
    target: int,
    attention: np.ndarray,
    settings: DiscoverySettings,
    heads: Heads = "aggregate",
) -> Discovery:
    """Learn the requested graphs from one history's attention ``(H, n+1, n+1)``."""
    items = [*model.decode(ids), model.items[target]]
    n_samples = settings.n_samples or model.hidden_size
    order_aware = model.causal_attention if settings.order_aware is None else settings.order_aware
    if isinstance(heads, int) and not isinstance(heads, bool):
        if not 0 <= heads < attention.shape[0]:
            raise InvalidInputError(f"head must be in [0, {attention.shape[0] - 1}], got {heads}")
        wanted = [heads]
    elif heads in ("each", "all"):
        wanted = list(range(attention.shape[0]))
    elif heads == "aggregate":
        wanted = []
    else:
        raise InvalidInputError(
            f"heads must be 'aggregate', 'each', 'all' or a head index, got {heads!r}"
        )
    per_head = tuple(
        learn_graph(attention[h], items, settings, n_samples, order_aware, False, h) for h in wanted
    )
    agg = None
    if heads in ("aggregate", "all"):
        agg = learn_graph(attention, items, settings, n_samples, order_aware, True)
    return Discovery(
        history=tuple(items[:-1]),
        target=items[-1],
        attention=attention,
        heads=per_head,
        aggregate=agg,
    )


def discover(
    model: SequentialModel,
    history: Sequence[str],
    *,
    target: str | None = None,
    heads: Heads = "all",
    settings: DiscoverySettings | None = None,
    **options: Any,
) -> Discovery:
    """Learn causal graphs over one history and its recommendation from the model's attention.

    ``target``: the recommended item (default: the model's top-1). ``heads``: ``"all"`` (each
    head's graph and the aggregate), ``"aggregate"``, ``"each"`` or one head's index.
    ``options`` are :class:`DiscoverySettings` fields (``algorithm``, ``alpha``, ...).
    """
    settings = settings or DiscoverySettings(**options)
    ids = model.encode(history)
    if target is None:
        tid = int(np.argmax(model.score_ids([ids])[0]))
    else:
        tid = model.item_ids.get(str(target), -1)
        if tid < 0:
            from recausal.errors import UnknownItemError

            raise UnknownItemError(f"target item {target!r} is not known to model {model.name}")
    attention = model.attention_ids([ids], [tid], settings.layer)[0]
    return graphs_from_attention(model, ids, tid, attention, settings, heads)
