"""Ground truth for testing: a d-separation CI oracle and the true MAG / PAG of a DAG with
latent nodes.

The true PAG is derived without any CI test and without the FCI/ICD adjacency searches:

1. MAG adjacency (Richardson & Spirtes 2002): two observed nodes are adjacent iff there is an
   inducing path between them relative to the latents, i.e. iff no set of observed nodes
   d-separates them. By the pairwise Markov property of maximal ancestral graphs it suffices
   to test the single set ``An({x, y}) ∩ O \\ {x, y}`` (``exhaustive=True`` tries every
   subset instead; the tests check that both agree).
2. MAG marks: the mark at y on ``x``–``y`` is a tail iff y is an ancestor of x in the DAG,
   else an arrowhead (no selection variables).
3. PAG = the MAG's Markov equivalence class: the MAG skeleton with circles, the colliders of
   unshielded triples and of discriminating paths *read off the MAG* (Zhang 2008 shows
   those are the invariant arrowheads R0 and R4 need), then the orientation rules R1–R4,
   R8–R10, which are arrowhead- and tail-complete (Zhang 2008).

Step 3 shares the rule engine with FCI/ICD. The tests therefore also check ``true_pag``
against a fully independent route on small graphs: enumerate every MAG with the same
skeleton, keep the ones with exactly the same m-separations, and mark an end as
invariant iff all of them agree (:func:`pag_by_enumeration`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import combinations, product

import networkx as nx
import numpy as np

from recausal.causal._graph import MarkGraph
from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.causal._orient import close_r1_r4, close_tail_rules, rule0
from recausal.errors import InvalidInputError

__all__ = [
    "DSeparationOracle",
    "chain_dag",
    "collider_dag",
    "pag_by_enumeration",
    "random_dag_with_latents",
    "textbook_cases",
    "true_mag",
    "true_pag",
]

_d_separated = getattr(nx, "is_d_separator", None) or nx.d_separated


def _check_dag(dag: nx.DiGraph, observed: Sequence[Hashable]) -> list[Hashable]:
    if not isinstance(dag, nx.DiGraph) or not nx.is_directed_acyclic_graph(dag):
        raise InvalidInputError("dag must be a networkx DiGraph without directed cycles")
    obs = list(observed)
    if len(set(obs)) != len(obs):
        raise InvalidInputError(f"observed has duplicates: {obs!r}")
    missing = [v for v in obs if v not in dag]
    if missing:
        raise InvalidInputError(f"observed nodes not in the DAG: {missing!r}")
    if len(obs) < 2:
        raise InvalidInputError(f"need at least 2 observed nodes; got {len(obs)}")
    return obs


class DSeparationOracle:
    """Perfect CI test: ``independent(i, j, cond)`` is d-separation in ``dag`` between the
    observed nodes ``observed[i]`` and ``observed[j]`` given ``observed[c]`` for c in cond.

    Results are cached; ``n_tests`` counts the distinct queries answered.

    Args:
        dag: the true DAG (a networkx ``DiGraph``), latents included.
        observed: the observed DAG nodes; CI-test node ``k`` is ``observed[k]``.
    """

    def __init__(self, dag: nx.DiGraph, observed: Sequence[Hashable]) -> None:
        self.observed = _check_dag(dag, observed)
        self.dag = dag
        self.n_nodes = len(self.observed)
        self.n_tests = 0
        self._cache: dict[tuple[int, int, frozenset[int]], bool] = {}

    def independent(self, i: int, j: int, cond: Sequence[int] = ()) -> bool:
        """Whether observed nodes i and j are d-separated given the observed nodes ``cond``.

        Args:
            i: first node (index into ``observed``).
            j: second node.
            cond: the conditioning nodes.

        Returns:
            True if d-separated.
        """
        i, j = (int(i), int(j)) if i < j else (int(j), int(i))
        key = (i, j, frozenset(int(c) for c in cond))
        hit = self._cache.get(key)
        if hit is None:
            self.n_tests += 1
            o = self.observed
            hit = bool(_d_separated(self.dag, {o[i]}, {o[j]}, {o[c] for c in key[2]}))
            self._cache[key] = hit
        return hit


def true_mag(
    dag: nx.DiGraph, observed: Sequence[Hashable], *, exhaustive: bool = False
) -> np.ndarray:
    """The MAG over ``observed`` (index order) of a DAG with latents.

    Args:
        dag: the true DAG.
        observed: the observed nodes, in node-index order.
        exhaustive: decide each adjacency by trying every observed subset (slow, for checks).

    Returns:
        The ``int8`` ``(n, n)`` mark matrix.
    """
    obs = _check_dag(dag, observed)
    n = len(obs)
    anc = {v: nx.ancestors(dag, v) for v in obs}
    marks = np.zeros((n, n), dtype=np.int8)
    for i, j in combinations(range(n), 2):
        x, y = obs[i], obs[j]
        others = [obs[k] for k in range(n) if k not in (i, j)]
        if exhaustive:
            sets = (set(s) for r in range(len(others) + 1) for s in combinations(others, r))
        else:
            sets = iter([{v for v in others if v in anc[x] or v in anc[y]}])
        if any(_d_separated(dag, {x}, {y}, z) for z in sets):
            continue
        marks[i, j] = TAIL if y in anc[x] else ARROW
        marks[j, i] = TAIL if x in anc[y] else ARROW
    return marks


def true_pag(dag: nx.DiGraph, observed: Sequence[Hashable]) -> np.ndarray:
    """The PAG (Markov equivalence class of the MAG) over ``observed``.

    Args:
        dag: the true DAG.
        observed: the observed nodes, in node-index order.

    Returns:
        The ``int8`` ``(n, n)`` mark matrix.
    """
    mag = true_mag(dag, observed)
    n = mag.shape[0]
    g = MarkGraph(n)
    for i, j in zip(*np.nonzero(mag), strict=False):
        g.m[int(i)][int(j)] = CIRCLE
        g.adj[int(i)].add(int(j))

    def c0(a: int, b: int, c: int) -> bool:
        return bool(mag[a, b] == ARROW and mag[c, b] == ARROW)

    def c4(d: int, a: int, b: int, c: int) -> bool:
        return bool(mag[a, b] == ARROW and mag[c, b] == ARROW)

    rule0(g, c0)
    close_r1_r4(g, c4)
    close_tail_rules(g, c4)
    return g.to_array()


# --------------------------------------------------------------------------------------------
# independent route for small graphs: enumerate the Markov equivalence class
# --------------------------------------------------------------------------------------------


def _mixed_to_dag(marks: np.ndarray) -> nx.DiGraph:
    """A DAG whose d-separations over 0..n-1 are the m-separations of the mixed graph."""
    n = marks.shape[0]
    d = nx.DiGraph()
    d.add_nodes_from(range(n))
    for i, j in zip(*np.nonzero(marks), strict=False):
        i, j = int(i), int(j)
        if marks[i, j] == ARROW and marks[j, i] == TAIL:
            d.add_edge(i, j)
        elif marks[i, j] == ARROW and marks[j, i] == ARROW and i < j:
            d.add_edge(("L", i, j), i)
            d.add_edge(("L", i, j), j)
    return d


def _is_ancestral(marks: np.ndarray) -> bool:
    n = marks.shape[0]
    d = nx.DiGraph()
    d.add_nodes_from(range(n))
    for i, j in zip(*np.nonzero((marks == ARROW) & (marks.T == TAIL)), strict=False):
        d.add_edge(int(i), int(j))
    if not nx.is_directed_acyclic_graph(d):
        return False
    for i, j in zip(*np.nonzero((marks == ARROW) & (marks.T == ARROW)), strict=False):
        if nx.has_path(d, int(i), int(j)):
            return False
    return True


def _colliders(marks: np.ndarray) -> set[tuple[int, int, int]]:
    n = marks.shape[0]
    out = set()
    for b in range(n):
        nb = np.flatnonzero(marks[b])
        for a, c in combinations(nb.tolist(), 2):
            if marks[a, c] == NONE and marks[a, b] == ARROW and marks[c, b] == ARROW:
                out.add((a, b, c))
    return out


def _independence_model(marks: np.ndarray) -> frozenset:
    n = marks.shape[0]
    d = _mixed_to_dag(marks)
    out = []
    for i, j in combinations(range(n), 2):
        others = [k for k in range(n) if k not in (i, j)]
        for r in range(len(others) + 1):
            for z in combinations(others, r):
                if _d_separated(d, {i}, {j}, set(z)):
                    out.append((i, j, z))
    return frozenset(out)


def pag_by_enumeration(mag: np.ndarray) -> np.ndarray:
    """PAG of a MAG by brute force: all MAGs on its skeleton with the same m-separations;
    a mark is kept iff it is the same in all of them (circle otherwise). Small graphs only
    (3^edges candidates).

    Args:
        mag: the MAG's ``(n, n)`` mark matrix (at most 9 edges).

    Returns:
        The PAG's ``int8`` mark matrix.
    """
    mag = np.asarray(mag)
    n = mag.shape[0]
    edges = [(int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(mag)), strict=False)]
    if len(edges) > 9:
        raise InvalidInputError(f"pag_by_enumeration is for <= 9 edges; got {len(edges)}")
    target_coll = _colliders(mag)
    target_model = _independence_model(mag)
    members = []
    for choice in product(range(3), repeat=len(edges)):
        cand = np.zeros((n, n), dtype=np.int8)
        for (i, j), c in zip(edges, choice, strict=False):
            cand[i, j], cand[j, i] = ((ARROW, TAIL), (TAIL, ARROW), (ARROW, ARROW))[c]
        if not _is_ancestral(cand) or _colliders(cand) != target_coll:
            continue
        if _independence_model(cand) == target_model:
            members.append(cand)
    stack = np.stack(members)
    pag = np.where((stack == stack[0]).all(axis=0), stack[0], CIRCLE).astype(np.int8)
    pag[mag == NONE] = NONE
    return pag


# --------------------------------------------------------------------------------------------
# benchmark graphs
# --------------------------------------------------------------------------------------------


def random_dag_with_latents(
    n_observed: int, n_latent: int, *, avg_degree: float = 2.5, seed: int = 0
) -> tuple[nx.DiGraph, list[int]]:
    """A random DAG over ``n_observed + n_latent`` nodes (topological order = labels, each
    pair an edge with probability ``avg_degree / (nodes - 1)``) and its observed nodes.
    Latents are chosen among nodes with at least two children, so each one confounds
    something; fewer are hidden if not enough such nodes exist.

    Args:
        n_observed: observed nodes wanted.
        n_latent: latent nodes wanted.
        avg_degree: expected degree of a node.
        seed: random seed.

    Returns:
        ``(dag, observed)``.
    """
    rng = np.random.default_rng(seed)
    total = n_observed + n_latent
    edge_prob = min(1.0, avg_degree / max(total - 1, 1))
    dag = nx.DiGraph()
    dag.add_nodes_from(range(total))
    for i, j in combinations(range(total), 2):
        if rng.random() < edge_prob:
            dag.add_edge(i, j)
    cands = [v for v in range(total) if dag.out_degree(v) >= 2]
    rng.shuffle(cands)
    latent = set(cands[:n_latent])
    observed = [v for v in range(total) if v not in latent]
    return dag, observed


def chain_dag(n: int) -> tuple[nx.DiGraph, list[int]]:
    """``0 -> 1 -> ... -> n-1``, all observed.

    Args:
        n: number of nodes.

    Returns:
        ``(dag, observed)``.
    """
    return nx.path_graph(n, create_using=nx.DiGraph), list(range(n))


def collider_dag() -> tuple[nx.DiGraph, list[int]]:
    """``0 -> 2 <- 1``, all observed.

    Returns:
        ``(dag, observed)``.
    """
    return nx.DiGraph([(0, 2), (1, 2)]), [0, 1, 2]


def textbook_cases() -> dict[str, tuple[nx.DiGraph, list[Hashable], np.ndarray]]:
    """Named small cases with hand-derived PAGs.

    Returns:
        ``{name: (dag, observed, expected PAG marks)}``.
    """
    C, A, T = CIRCLE, ARROW, TAIL
    cases: dict[str, tuple[nx.DiGraph, list[Hashable], np.ndarray]] = {}

    def pag(n: int, edges: list[tuple[int, int, int, int]]) -> np.ndarray:
        m = np.zeros((n, n), dtype=np.int8)
        for i, j, mark_i, mark_j in edges:
            m[j, i], m[i, j] = mark_i, mark_j
        return m

    dag, obs = chain_dag(3)
    cases["chain"] = (dag, obs, pag(3, [(0, 1, C, C), (1, 2, C, C)]))
    dag, obs = collider_dag()
    cases["collider"] = (dag, obs, pag(3, [(0, 2, C, A), (1, 2, C, A)]))
    # Y-structure: 0 -> 2 <- 1, 2 -> 3: the edge out of the collider is oriented
    dag = nx.DiGraph([(0, 2), (1, 2), (2, 3)])
    cases["y_structure"] = (dag, [0, 1, 2, 3], pag(4, [(0, 2, C, A), (1, 2, C, A), (2, 3, T, A)]))
    # latent confounders: a <- L1 -> b <- L2 -> c  gives  a o-> b <-o c (bidirected in the MAG)
    dag = nx.DiGraph([("L1", "a"), ("L1", "b"), ("L2", "b"), ("L2", "c")])
    cases["latent_collider"] = (dag, ["a", "b", "c"], pag(3, [(0, 1, C, A), (2, 1, C, A)]))
    # discriminating path <D, A, B, C> for B, B a non-collider (Zhang 2008, R4 first case):
    # D -> A <- L1 -> B, A -> C, B -> C  gives  D o-> A <-o B, A -> C, B -> C  (the MAG has
    # A <-> B, but B -> A is Markov equivalent, so the mark at B stays a circle)
    dag = nx.DiGraph([("D", "A"), ("L1", "A"), ("L1", "B"), ("A", "C"), ("B", "C")])
    cases["discriminating_noncollider"] = (
        dag,
        ["D", "A", "B", "C"],
        pag(4, [(0, 1, C, A), (1, 2, A, C), (1, 3, T, A), (2, 3, T, A)]),
    )
    # the same with B <- L2 -> C: B is a collider on the discriminating path: A <-> B <-> C
    dag = nx.DiGraph([("D", "A"), ("L1", "A"), ("L1", "B"), ("A", "C"), ("L2", "B"), ("L2", "C")])
    cases["discriminating_collider"] = (
        dag,
        ["D", "A", "B", "C"],
        pag(4, [(0, 1, C, A), (1, 2, A, A), (1, 3, T, A), (2, 3, A, A)]),
    )
    return cases
