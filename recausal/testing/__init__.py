"""Test support shipped with the package: ground truth and synthetic inputs for the causal core.

Not part of the explaining API. :mod:`recausal.testing.oracle` gives a perfect d-separation CI
test and the true PAG of a DAG with latents; :mod:`recausal.testing.attention` gives seeded
synthetic attention matrices (used by the tests and the benchmarks).
"""

from __future__ import annotations

from recausal.testing.attention import random_softmax_attention, sem_attention
from recausal.testing.oracle import DSeparationOracle, random_dag_with_latents, true_pag

__all__ = [
    "DSeparationOracle",
    "random_dag_with_latents",
    "random_softmax_attention",
    "sem_attention",
    "true_pag",
]
