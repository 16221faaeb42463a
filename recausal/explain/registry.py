"""The one registry of explainers: name -> class, and :func:`get_explainer` to build one."""

from __future__ import annotations

from typing import Any

from recausal.errors import InvalidInputError
from recausal.explain.attribution import (
    IntegratedGradientsExplainer,
    KernelShapExplainer,
    LimeExplainer,
    ShapleySamplingExplainer,
)
from recausal.explain.base import Explainer
from recausal.explain.baselines import (
    AttentionExplainer,
    ExhaustiveExplainer,
    OcclusionExplainer,
    RandomExplainer,
    RecencyExplainer,
)
from recausal.explain.causal import CausalExplainer, PaperCausalExplainer

#: every explainer by its ``name``, in the order the command line and reports list them
EXPLAINERS: dict[str, type[Explainer]] = {
    cls.name: cls
    for cls in (
        CausalExplainer,
        PaperCausalExplainer,
        AttentionExplainer,
        RecencyExplainer,
        RandomExplainer,
        OcclusionExplainer,
        ExhaustiveExplainer,
        IntegratedGradientsExplainer,
        KernelShapExplainer,
        LimeExplainer,
        ShapleySamplingExplainer,
    )
}


def explainer_names() -> tuple[str, ...]:
    """The names :func:`get_explainer` accepts.

    Returns:
        ``("causal", "causal-paper", "attention", "recency", "random", "occlusion", "exhaustive",
        "integrated-gradients", "kernel-shap", "lime", "shapley-sampling")`` (the last four
        need the ``captum`` extra when they explain).

    Example:
        >>> "causal" in explainer_names()
        True
    """
    return tuple(EXPLAINERS)


def get_explainer(name: str, **params: Any) -> Explainer:
    """An explainer by name, with its parameters.

    Args:
        name: one of :func:`explainer_names` (``causal``, ``attention``, ``recency``,
            ``random``, ``occlusion``, ``exhaustive``, ``integrated-gradients``,
            ``kernel-shap``, ``lime``, ``shapley-sampling``).
        **params: the explainer's parameters (``max_size``, ``removal``, ``seed``,
            ``exclude_seen``; for ``causal`` also ``heads``, ``alpha``, ...; ``n_steps``,
            ``n_samples`` or ``n_permutations`` for the Captum explainers).

    Returns:
        The :class:`~recausal.explain.Explainer`.

    Raises:
        InvalidInputError: an unknown name or parameter, or a bad value.

    Example:
        >>> explainer = get_explainer("causal", max_size=3)
        >>> explanation = explainer.explain(model, history)  # doctest: +SKIP
    """
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
    "AttentionExplainer",
    "CausalExplainer",
    "ExhaustiveExplainer",
    "IntegratedGradientsExplainer",
    "KernelShapExplainer",
    "LimeExplainer",
    "OcclusionExplainer",
    "PaperCausalExplainer",
    "RandomExplainer",
    "RecencyExplainer",
    "ShapleySamplingExplainer",
    "explainer_names",
    "get_explainer",
]
