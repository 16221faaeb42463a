"""Explainers: which history items caused a recommendation. One interface for all."""

from __future__ import annotations

from typing import Any

from recausal.errors import InvalidInputError
from recausal.explain.base import Explainer, Explanation, RankedItem
from recausal.explain.baselines import (
    AttentionExplainer,
    ExhaustiveExplainer,
    OcclusionExplainer,
    RandomExplainer,
    RecencyExplainer,
)
from recausal.explain.causal import CausalExplainer

EXPLAINERS: dict[str, type[Explainer]] = {
    cls.name: cls
    for cls in (
        CausalExplainer,
        AttentionExplainer,
        RecencyExplainer,
        RandomExplainer,
        OcclusionExplainer,
        ExhaustiveExplainer,
    )
}


def get_explainer(name: str, **params: Any) -> Explainer:
    """An explainer by name (``causal``, ``attention``, ``recency``, ``random``, ``occlusion``,
    ``exhaustive``) with its parameters (``max_size``, ``removal``, ``seed``, ...)."""
    cls = EXPLAINERS.get(name)
    if cls is None:
        raise InvalidInputError(
            f"unknown explainer {name!r}; choose one of {', '.join(EXPLAINERS)}"
        )
    try:
        return cls(**params)
    except TypeError as exc:
        raise InvalidInputError(f"explainer {name!r}: {exc}") from None


__all__ = [
    "EXPLAINERS",
    "CausalExplainer",
    "Explainer",
    "Explanation",
    "RankedItem",
    "get_explainer",
]
