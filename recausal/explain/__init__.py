"""Explainers: which history items caused a recommendation. One interface for all.

Build one by name with :func:`get_explainer` (names: :func:`explainer_names`, classes:
:data:`EXPLAINERS`), then call ``explain(model, history)`` for an :class:`Explanation`. The
explainer classes come from the registry, which lists them all (:mod:`recausal.explain.registry`).
"""

from __future__ import annotations

from recausal.explain.base import Explainer, RankingExplainer
from recausal.explain.batch import remove_positions
from recausal.explain.explanation import SCHEMA_VERSION, Explanation, RankedItem
from recausal.explain.registry import (
    EXPLAINERS,
    AttentionExplainer,
    CausalExplainer,
    ExhaustiveExplainer,
    IntegratedGradientsExplainer,
    KernelShapExplainer,
    LimeExplainer,
    OcclusionExplainer,
    PaperCausalExplainer,
    RandomExplainer,
    RecencyExplainer,
    ShapleySamplingExplainer,
    explainer_names,
    get_explainer,
)

__all__ = [
    "EXPLAINERS",
    "SCHEMA_VERSION",
    "AttentionExplainer",
    "CausalExplainer",
    "ExhaustiveExplainer",
    "Explainer",
    "Explanation",
    "IntegratedGradientsExplainer",
    "KernelShapExplainer",
    "LimeExplainer",
    "OcclusionExplainer",
    "PaperCausalExplainer",
    "RandomExplainer",
    "RankedItem",
    "RankingExplainer",
    "RecencyExplainer",
    "ShapleySamplingExplainer",
    "explainer_names",
    "get_explainer",
    "remove_positions",
]
