"""Per-user causal discovery: the model's attention on one history -> partial ancestral graphs.

The abductive step feeds the history back with the recommended item in its last slot, reads
one layer's attention per head (the deepest by default), and learns a PAG over the history
positions and the recommended item (the target, the last node) from each head. The
*aggregate* graph is learned from the heads' summed covariance ``sum_h A_h A_h^T`` (the
multi-head output concatenates the heads' ``A_h V_h``; with independent values per head its
covariance is that sum): one graph that uses every head's evidence.

:func:`discover` learns both kinds by default (``heads="all"``). The causal explainer searches
the per-head graphs by default (``heads="each"``, as in the reference code), which found the
planted causes more often in the tests. Both go through one pipeline, :func:`discover_ids`:
the settings' defaults are resolved there once, the structures of equal-length histories
are learned together, and PAGs and PDS trees are built only when asked for.
"""

from recausal.discovery.graphs import Discovery, structure_to_pag
from recausal.discovery.pipeline import discover, discover_ids
from recausal.discovery.settings import DiscoverySettings, Heads, heads_to_learn
from recausal.discovery.structures import Structures, learn_structures

__all__ = [
    "Discovery",
    "DiscoverySettings",
    "Heads",
    "Structures",
    "discover",
    "discover_ids",
    "heads_to_learn",
    "learn_structures",
    "structure_to_pag",
]
