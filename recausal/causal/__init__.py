"""Causal discovery from self-attention: pure numpy/scipy/networkx (no torch, no RecBole).

attention → :func:`correlation_from_attention` → CI tests (:class:`AttentionCITest`,
Fisher z with the model's hidden size as sample size) → :func:`icd` / :func:`fci`
(optionally order-aware) → :class:`PAG`. :func:`learn_pags` does a batch of users at once.
The explainer searches a PAG's possible-d-separation tree (:class:`PDSTree`, :func:`pds_tree`).
Ground truth for tests (d-separation oracle, true PAGs) lives in :mod:`recausal.testing`.
"""

from recausal.causal.aggregate import aggregate_pags
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
from recausal.causal.pag import PAG
from recausal.causal.pds import PDSTree, pds_tree
from recausal.causal.result import StructureResult

__all__ = [
    "PAG",
    "AttentionCITest",
    "CITest",
    "CorrelationCITest",
    "FisherZTest",
    "PDSTree",
    "StructureResult",
    "aggregate_pags",
    "correlation_from_attention",
    "fci",
    "icd",
    "learn_pags",
    "pag_from_attention",
    "pds_tree",
]
