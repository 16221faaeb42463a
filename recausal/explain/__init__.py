"""Explainers: which history items caused a recommendation. One interface for all.

Build one by name with :func:`get_explainer` (names: :func:`explainer_names`, classes:
:data:`EXPLAINERS`), then call ``explain(model, history)`` for an :class:`Explanation`.
"""

from __future__ import annotations

from recausal.explain.attribution import (
    IntegratedGradientsExplainer,
    KernelShapExplainer,
    LimeExplainer,
    ShapleySamplingExplainer,
)
from recausal.explain.base import Explainer, RankingExplainer
from recausal.explain.baselines import (
    AttentionExplainer,
    ExhaustiveExplainer,
    OcclusionExplainer,
    RandomExplainer,
    RecencyExplainer,
)
from recausal.explain.batch import remove_positions
from recausal.explain.causal import CausalExplainer
from recausal.explain.explanation import SCHEMA_VERSION, Explanation, RankedItem
from recausal.explain.registry import EXPLAINERS, explainer_names, get_explainer

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
    "RandomExplainer",
    "RankedItem",
    "RankingExplainer",
    "RecencyExplainer",
    "ShapleySamplingExplainer",
    "explainer_names",
    "get_explainer",
    "remove_positions",
]
