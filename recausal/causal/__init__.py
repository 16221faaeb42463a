"""Causal discovery from self-attention: pure numpy/scipy/networkx (no torch, no RecBole).

attention → :func:`correlation_from_attention` → CI tests (:class:`AttentionCITest`,
Fisher z with the model's hidden size as sample size) → :func:`icd` / :func:`fci`
(optionally order-aware) → :class:`PAG`. :func:`learn_pags` does a batch of users at once.
"""

from recausal.causal._graph import StructureResult
from recausal.causal.citest import (
    AttentionCITest,
    CITest,
    CorrelationCITest,
    FisherZTest,
    correlation_from_attention,
)
from recausal.causal.fci import fci
from recausal.causal.icd import icd
from recausal.causal.learn import learn_pags, pag_from_attention
from recausal.causal.oracle import DSeparationOracle, true_pag
from recausal.causal.pag import PAG, PDSTree, aggregate_pags

__all__ = [
    "PAG",
    "AttentionCITest",
    "CITest",
    "CorrelationCITest",
    "DSeparationOracle",
    "FisherZTest",
    "PDSTree",
    "StructureResult",
    "aggregate_pags",
    "correlation_from_attention",
    "fci",
    "icd",
    "learn_pags",
    "pag_from_attention",
    "true_pag",
]
