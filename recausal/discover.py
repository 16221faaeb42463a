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

from recausal.causal._graph import StructureResult
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
    head_ids: tuple[int, ...] = ()

    def pag(self, head: int | None = None) -> PAG:
        """The aggregate graph (``head=None``) or one head's graph."""
        if head is None:
            if self.aggregate is None:
                raise InvalidInputError("the aggregate graph was not learned (heads='each')")
            return self.aggregate
        if head not in self.head_ids:
            learned = ", ".join(map(str, self.head_ids)) or "none (heads='aggregate')"
            raise InvalidInputError(f"no graph was learned for head {head!r}; learned: {learned}")
        return self.heads[self.head_ids.index(head)]


def _meta(
    settings: DiscoverySettings,
    n_samples: int,
    order_aware: bool,
    aggregate: bool,
    head: int | None,
    result: StructureResult,
) -> dict[str, Any]:
    return {
        **settings.to_dict(),
        "n_samples": n_samples,
        "order_aware": order_aware,
        "heads": "aggregate" if aggregate else head,
        "n_tests": int(result.n_tests),
        "max_cond_size_reached": int(result.max_cond_size_reached),
    }


def structure_to_pag(
    result: StructureResult,
    items: Sequence[str],
    settings: DiscoverySettings,
    n_samples: int,
    order_aware: bool,
    aggregate: bool,
    head: int | None = None,
) -> PAG:
    """The PAG (items, sepsets and meta attached) of one learned structure."""
    meta = _meta(settings, n_samples, order_aware, aggregate, head, result)
    if len(items) != result.n_nodes:
        raise InvalidInputError(
            f"items has {len(items)} entries but the structure has {result.n_nodes} nodes"
        )
    return PAG._from_learned(result.marks, items, result.sepsets, meta)


def learn_graph(
    attention: np.ndarray,
    items: Sequence[str],
    settings: DiscoverySettings,
    n_samples: int,
    order_aware: bool,
    aggregate: bool,
    head: int | None = None,
) -> PAG:
    """One PAG from attention ``(n, n)`` (or ``(H, n, n)`` summed over heads if ``aggregate``).

    The plain path: one CI test object and one structure search for one matrix.
    """
    result = _learn_structure(attention, settings, n_samples, order_aware, aggregate)
    return structure_to_pag(result, items, settings, n_samples, order_aware, aggregate, head)


def _learn_structure(
    attention: np.ndarray,
    settings: DiscoverySettings,
    n_samples: int,
    order_aware: bool,
    aggregate: bool,
) -> StructureResult:
    """ICD or FCI on one attention matrix (summed over heads if ``aggregate``)."""
    from recausal.causal.citest import AttentionCITest
    from recausal.causal.fci import fci
    from recausal.causal.icd import icd

    test = AttentionCITest(
        attention, n_samples=n_samples, alpha=settings.alpha, aggregate_heads=aggregate
    )
    learn = icd if settings.algorithm == "icd" else fci
    n = attention.shape[-1]
    return learn(test, n, max_cond_size=settings.max_cond_size, order_aware=order_aware)


def heads_to_learn(heads: Heads, n_heads: int) -> tuple[list[int], bool]:
    """For ``heads`` (see :func:`discover`) and a model with ``n_heads``: the head indices
    to learn one graph each from, and whether to learn the aggregate."""
    if isinstance(heads, int) and not isinstance(heads, bool):
        if not 0 <= heads < n_heads:
            raise InvalidInputError(f"head must be in [0, {n_heads - 1}], got {heads}")
        return [heads], False
    if heads in ("each", "all"):
        return list(range(n_heads)), heads == "all"
    if heads == "aggregate":
        return [], True
    raise InvalidInputError(
        f"heads must be 'aggregate', 'each', 'all' or a head index, got {heads!r}"
    )


@dataclass(frozen=True)
class Structures:
    """The structures learned for one history (before they are wrapped as PAGs)."""

    heads: tuple[StructureResult, ...]
    aggregate: StructureResult | None


def learn_structures(
    attentions: Sequence[np.ndarray],
    settings: DiscoverySettings,
    n_samples: int,
    order_aware: bool,
    heads: Heads = "aggregate",
    batched: bool = True,
) -> list[Structures]:
    """The requested structures for many histories' attention ``(H, n+1, n+1)`` at once.

    Histories of the same length are learned together (:func:`recausal.causal.learn.learn_pags`
    shares the correlation matrices and the order-0 and order-1 tests of the whole group);
    the result equals :func:`learn_graph` on each matrix alone. ``batched=False`` takes that
    plain path (one CI test object and one search per matrix), for comparisons.
    """
    from recausal.causal.learn import learn_pags

    if not attentions:
        return []
    wanted, aggregate = heads_to_learn(heads, attentions[0].shape[0])
    if not batched:
        return [
            _plain_structures(a, settings, n_samples, order_aware, wanted, aggregate)
            for a in attentions
        ]
    groups: dict[int, list[int]] = {}
    for u, a in enumerate(attentions):
        groups.setdefault(a.shape[-1], []).append(u)
    per_head: list[list[StructureResult]] = [[] for _ in attentions]
    agg: list[StructureResult | None] = [None] * len(attentions)
    options = {
        "n_samples": n_samples,
        "alpha": settings.alpha,
        "algorithm": settings.algorithm,
        "order_aware": order_aware,
        "max_cond_size": settings.max_cond_size,
    }
    for members in groups.values():
        stack = np.stack([attentions[u] for u in members])
        for h in wanted:
            for u, res in zip(members, learn_pags(stack[:, h], **options), strict=True):
                per_head[u].append(res)
        if aggregate:
            found = learn_pags(stack, aggregate_heads=True, **options)
            for u, res in zip(members, found, strict=True):
                agg[u] = res
    return [Structures(tuple(h), a) for h, a in zip(per_head, agg, strict=True)]


def _plain_structures(
    attention: np.ndarray,
    settings: DiscoverySettings,
    n_samples: int,
    order_aware: bool,
    wanted: list[int],
    aggregate: bool,
) -> Structures:
    heads = tuple(
        _learn_structure(attention[h], settings, n_samples, order_aware, False) for h in wanted
    )
    agg = _learn_structure(attention, settings, n_samples, order_aware, True) if aggregate else None
    return Structures(heads, agg)


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
    wanted, aggregate = heads_to_learn(heads, attention.shape[0])
    per_head = tuple(
        learn_graph(attention[h], items, settings, n_samples, order_aware, False, h) for h in wanted
    )
    agg = None
    if aggregate:
        agg = learn_graph(attention, items, settings, n_samples, order_aware, True)
    return Discovery(
        history=tuple(items[:-1]),
        target=items[-1],
        attention=attention,
        heads=per_head,
        aggregate=agg,
        head_ids=tuple(wanted),
    )


def graphs_from_attention_many(
    model: SequentialModel,
    ids: Sequence[np.ndarray],
    targets: Sequence[int],
    attentions: Sequence[np.ndarray],
    settings: DiscoverySettings,
    heads: Heads = "aggregate",
) -> list[Discovery]:
    """:func:`graphs_from_attention` for many histories, learned in batches of equal length."""
    n_samples = settings.n_samples or model.hidden_size
    order_aware = model.causal_attention if settings.order_aware is None else settings.order_aware
    learned = learn_structures(attentions, settings, n_samples, order_aware, heads)
    wanted, _ = heads_to_learn(heads, attentions[0].shape[0]) if attentions else ([], False)
    out = []
    for s, t, a, found in zip(ids, targets, attentions, learned, strict=True):
        items = [*model.decode(s), model.items[t]]
        per_head = tuple(
            structure_to_pag(r, items, settings, n_samples, order_aware, False, h)
            for h, r in zip(wanted, found.heads, strict=True)
        )
        agg = None
        if found.aggregate is not None:
            agg = structure_to_pag(found.aggregate, items, settings, n_samples, order_aware, True)
        out.append(Discovery(tuple(items[:-1]), items[-1], a, per_head, agg, tuple(wanted)))
    return out


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
