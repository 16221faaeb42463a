"""Structure learning for many histories at once: per-head and aggregate structures,
equal-length histories learned together (or one matrix at a time, for comparisons)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from recausal.discovery.settings import DiscoverySettings, Heads, heads_to_learn
from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.causal import StructureResult


@dataclass(frozen=True)
class Structures:
    """The structures learned for one history, before they are wrapped as PAGs.

    ``heads[i]`` was learned from head ``head_ids[i]``; ``aggregate`` from all heads together
    (``None`` when it was not asked for).
    """

    heads: tuple[StructureResult, ...]
    aggregate: StructureResult | None
    head_ids: tuple[int, ...] = ()

    @property
    def keys(self) -> tuple[int | None, ...]:
        """Every structure's key: the head indices, then ``None`` for the aggregate."""
        return (*self.head_ids, *(() if self.aggregate is None else (None,)))

    def get(self, head: int | None = None) -> StructureResult:
        """The aggregate structure (``head=None``) or one head's."""
        if head is None:
            if self.aggregate is None:
                raise InvalidInputError("the aggregate graph was not learned (heads='each')")
            return self.aggregate
        if head not in self.head_ids:
            learned = ", ".join(map(str, self.head_ids)) or "none (heads='aggregate')"
            raise InvalidInputError(f"no graph was learned for head {head!r}; learned: {learned}")
        return self.heads[self.head_ids.index(head)]


def learn_structures(
    attentions: Sequence[np.ndarray],
    settings: DiscoverySettings,
    heads: Heads = "aggregate",
    batched: bool = True,
) -> list[Structures]:
    """The requested structures of many histories' attention ``(H, n+1, n+1)`` at once.

    Histories of the same length are learned together (:func:`recausal.causal.learn.learn_pags`
    shares the correlation matrices and the order-0 and order-1 tests of the whole group); the
    result equals one CI test object and one search per matrix, which ``batched=False`` does.

    Args:
        attentions: per-head attention of each history.
        settings: resolved settings (see :meth:`DiscoverySettings.resolve`).
        heads: which graphs to learn (see :func:`heads_to_learn`).
        batched: learn equal-length histories together (False: the plain path).

    Returns:
        One :class:`Structures` per history.
    """
    from recausal.causal.learn import learn_pags

    if not attentions:
        return []
    settings.check_resolved()
    wanted, aggregate = heads_to_learn(heads, attentions[0].shape[0])
    if not batched:
        return [_plain_structures(a, settings, wanted, aggregate) for a in attentions]
    groups: dict[int, list[int]] = {}
    for u, a in enumerate(attentions):
        groups.setdefault(a.shape[-1], []).append(u)
    per_head: list[list[StructureResult]] = [[] for _ in attentions]
    agg: list[StructureResult | None] = [None] * len(attentions)
    options = _search_options(settings)
    for members in groups.values():
        stack = np.stack([attentions[u] for u in members])
        for h in wanted:
            for u, res in zip(members, learn_pags(stack[:, h], **options), strict=True):
                per_head[u].append(res)
        if aggregate:
            found = learn_pags(stack, aggregate_heads=True, **options)
            for u, res in zip(members, found, strict=True):
                agg[u] = res
    return [Structures(tuple(h), a, tuple(wanted)) for h, a in zip(per_head, agg, strict=True)]


def _search_options(settings: DiscoverySettings) -> dict[str, Any]:
    return {
        "n_samples": settings.n_samples,
        "alpha": settings.alpha,
        "algorithm": settings.algorithm,
        "order_aware": settings.order_aware,
        "max_cond_size": settings.max_cond_size,
    }


def _plain_structures(
    attention: np.ndarray, settings: DiscoverySettings, wanted: list[int], aggregate: bool
) -> Structures:
    """One CI test object and one ICD or FCI search per matrix (the unbatched path)."""
    from recausal.causal.citest import AttentionCITest
    from recausal.causal.fci import fci
    from recausal.causal.icd import icd

    learn = icd if settings.algorithm == "icd" else fci
    n, order_aware = attention.shape[-1], bool(settings.order_aware)

    def one(matrix: np.ndarray, summed: bool) -> StructureResult:
        test = AttentionCITest(
            matrix, n_samples=settings.n_samples, alpha=settings.alpha, aggregate_heads=summed
        )
        return learn(test, n, max_cond_size=settings.max_cond_size, order_aware=order_aware)

    heads = tuple(one(attention[h], False) for h in wanted)
    return Structures(heads, one(attention, True) if aggregate else None, tuple(wanted))
