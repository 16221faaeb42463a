"""Cross-check: our FCI and causal-learn's FCI, both fed the same d-separation oracle, must
agree edge mark by edge mark."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from causallearn.search.ConstraintBased.FCI import fci as cl_fci

from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.causal.fci import fci
from recausal.causal.icd import icd
from recausal.testing.oracle import DSeparationOracle, random_dag_with_latents, textbook_cases

# causal-learn's endpoint codes: graph[i, j] is the endpoint at i on the edge i - j
_CL = {0: NONE, -1: TAIL, 1: ARROW, 2: CIRCLE}

CASES = [(5 + s % 5, 1 + s % 2, 2.0 + 0.5 * (s % 2), 100 + s) for s in range(12)]


def _causallearn_pag(dag: nx.DiGraph, observed: list) -> np.ndarray:
    """Run causal-learn's FCI with its d-separation test on ``dag`` relabelled so that the
    observed nodes are 0..n-1 (the columns of a dummy data matrix)."""
    n = len(observed)
    latent = [v for v in dag.nodes if v not in set(observed)]
    mapping = {v: k for k, v in enumerate(observed)}
    mapping.update({v: n + k for k, v in enumerate(latent)})
    relabelled = nx.relabel_nodes(dag, mapping)
    data = np.zeros((10, n))
    g, _ = cl_fci(
        data, "d_separation", alpha=0.01, true_dag=relabelled, show_progress=False, verbose=False
    )
    ep = g.graph
    marks = np.zeros((n, n), dtype=np.int8)
    for i in range(n):
        for j in range(n):
            if i != j:
                marks[j, i] = _CL[int(ep[i, j])]  # ours: marks[j, i] is the mark at i
    return marks


def _cases() -> list[tuple[str, nx.DiGraph, list]]:
    out = [(name, dag, obs) for name, (dag, obs, _) in sorted(textbook_cases().items())]
    for n_obs, n_lat, deg, seed in CASES:
        dag, obs = random_dag_with_latents(n_obs, n_lat, avg_degree=deg, seed=seed)
        out.append((f"random-n{n_obs}-s{seed}", dag, obs))
    return out


@pytest.mark.parametrize(("name", "dag", "obs"), _cases(), ids=[c[0] for c in _cases()])
def test_fci_matches_causallearn(name: str, dag: nx.DiGraph, obs: list) -> None:
    theirs = _causallearn_pag(dag, obs)
    ours = fci(DSeparationOracle(dag, obs), len(obs)).marks
    diff = [
        (int(i), int(j), int(ours[i, j]), int(theirs[i, j])) for i, j in np.argwhere(ours != theirs)
    ]
    assert not diff, diff
    # and ICD reaches the same PAG
    assert np.array_equal(icd(DSeparationOracle(dag, obs), len(obs)).marks, theirs)
