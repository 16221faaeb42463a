"""Tests of the PAG type, its PDS tree, exports, SVG drawing and the vote aggregate."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from itertools import combinations

import networkx as nx
import numpy as np
import pytest

import recausal.causal.pag as pag_module
from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.causal.pag import PAG, SCHEMA_VERSION, aggregate_pags
from recausal.errors import InvalidInputError

_L = {"o": CIRCLE, "<": ARROW, "-": TAIL}
_R = {"o": CIRCLE, ">": ARROW, "-": TAIL}
SVG = "{http://www.w3.org/2000/svg}"


def make(n: int, edges: list[tuple[int, int, str]]) -> np.ndarray:
    """Marks matrix from edges written like (0, 1, 'o->'), read from the first node."""
    m = np.zeros((n, n), dtype=np.int8)
    for i, j, text in edges:
        m[j, i] = _L[text[0]]
        m[i, j] = _R[text[2]]
    return m


# A graph with every kind of edge; target 5.
MIXED = [(0, 1, "-->"), (1, 2, "<->"), (2, 3, "o->"), (3, 4, "o-o"), (4, 5, "-->"), (0, 5, "o->")]


@pytest.fixture
def mixed() -> PAG:
    return PAG.from_marks(
        make(6, MIXED),
        items=[10, 11, 12, 13, 14, 99],
        sepsets={(0, 2): (1,), (5, 1): ()},
        meta={"alg": "hand"},
    )


# ---------------------------------------------------------------------------- construction


def test_basic_accessors(mixed: PAG) -> None:
    assert mixed.n_nodes == 6
    assert mixed.target == 5
    assert mixed.items == ("10", "11", "12", "13", "14", "99")
    assert mixed.sepsets == {(0, 2): (1,), (1, 5): ()}
    assert mixed.meta == {"alg": "hand"}
    assert mixed.edges() == [
        (0, 1, "-->"),
        (0, 5, "o->"),
        (1, 2, "<->"),
        (2, 3, "o->"),
        (3, 4, "o-o"),
        (4, 5, "-->"),
    ]
    assert mixed.mark(2, 3) == "arrow" and mixed.mark(3, 2) == "circle"
    assert mixed.mark(0, 4) is None


def test_marks_are_a_read_only_copy() -> None:
    src = make(3, [(0, 2, "o->"), (1, 2, "-->")])
    pag = PAG.from_marks(src)
    src[0, 2] = TAIL  # changing the input does not change the PAG
    got = pag.marks
    assert got[0, 2] == ARROW and got.dtype == np.int8
    with pytest.raises(ValueError):
        got[0, 2] = CIRCLE


def test_graph_attributes(mixed: PAG) -> None:
    g = mixed.graph
    assert isinstance(g, nx.Graph) and nx.is_frozen(g)
    assert g.nodes[5] == {"position": 5, "item": "99", "is_target": True}
    assert g.nodes[2] == {"position": 2, "item": "12", "is_target": False}
    assert g.edges[2, 3] == {"marks": {2: "circle", 3: "arrow"}, "text": "o->"}
    assert g.edges[3, 2]["marks"][3] == "arrow"
    assert g.number_of_edges() == len(MIXED)
    assert g.graph["target"] == 5
    with pytest.raises(nx.NetworkXError):
        g.add_edge(0, 3)


def test_target_and_items_optional() -> None:
    pag = PAG.from_marks(make(3, [(0, 1, "o-o")]), target=0)
    assert pag.target == 0 and pag.items is None
    assert pag.graph.nodes[0]["is_target"] and not pag.graph.nodes[2]["is_target"]
    assert pag.graph.nodes[1]["item"] is None


# ---------------------------------------------------------------------------- local structure


def test_local_structure(mixed: PAG) -> None:
    assert mixed.adjacent(5) == (0, 4)
    assert mixed.parents(1) == (0,)
    assert mixed.parents(5) == (4,)
    assert mixed.children(0) == (1,)
    assert mixed.children(4) == (5,)
    assert mixed.spouses(1) == (2,) and mixed.spouses(2) == (1,)
    assert mixed.spouses(3) == ()
    # 2 o-> 3 and 3 o-o 4 could both be x --> 3; nothing else
    assert mixed.possible_parents(3) == (2, 4)
    assert mixed.possible_parents(1) == (0,)  # 1 <-> 2 is into 2: not a possible parent
    assert mixed.possible_parents(5) == (0, 4)


def test_possible_ancestors(mixed: PAG) -> None:
    # 0 o-> 5, 4 --> 5, 3 o-o 4, 2 o-> 3 are possibly directed toward 5; 1 <-> 2 blocks 1
    assert mixed.possible_ancestors(5) == (0, 2, 3, 4)
    assert mixed.possible_ancestors(1) == (0,)
    assert mixed.possible_ancestors(0) == ()
    # o-o works both ways
    assert mixed.possible_ancestors(4) == (2, 3)
    assert mixed.possible_ancestors(3) == (2, 4)


def test_undirected_edge_is_not_possibly_directed() -> None:
    pag = PAG.from_marks(make(3, [(0, 1, "---"), (1, 2, "o->")]))
    assert pag.possible_ancestors(1) == ()
    assert pag.possible_parents(1) == ()
    assert pag.possible_ancestors(2) == (1,)


def test_is_collider(mixed: PAG) -> None:
    assert mixed.is_collider(0, 1, 2)  # 0 --> 1 <-> 2
    assert mixed.is_collider(2, 1, 0)
    assert not mixed.is_collider(1, 2, 3)  # 1 <-> 2 o-> 3: mark at 2 from 3 is a circle
    assert not mixed.is_collider(0, 1, 0)
    assert not mixed.is_collider(0, 2, 3)  # 0 and 2 not adjacent
    assert mixed.is_collider(4, 5, 0)  # 4 --> 5 <-o 0


# ---------------------------------------------------------------------------- PDS tree


def test_pds_chain_of_non_colliders_stops_at_the_neighbour() -> None:
    pag = PAG.from_marks(make(4, [(0, 1, "o-o"), (1, 2, "o-o"), (2, 3, "o-o")]))
    tree = pag.pds_tree()
    assert tree.root == 3
    assert dict(tree.nodes) == {3: 0, 2: 1}
    assert dict(tree.parent) == {2: 3}
    assert tree.members == (2,)


def test_pds_chain_of_colliders_reaches_everything() -> None:
    # 0 o-> 1 <-> 2 <-o 3: every middle node is a collider
    pag = PAG.from_marks(make(4, [(0, 1, "o->"), (1, 2, "<->"), (2, 3, "<-o")]))
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {3: 0, 2: 1, 1: 2, 0: 3}
    assert dict(tree.parent) == {2: 3, 1: 2, 0: 1}
    assert tree.path(0) == (3, 2, 1, 0)
    assert tree.depth == 3
    limited = pag.pds_tree(max_depth=2)
    assert dict(limited.nodes) == {3: 0, 2: 1, 1: 2}
    assert dict(pag.pds_tree(max_depth=0).nodes) == {3: 0}


def test_pds_collider_versus_non_collider() -> None:
    collider = PAG.from_marks(make(3, [(0, 1, "o->"), (1, 2, "<-o")]))
    assert dict(collider.pds_tree().nodes) == {2: 0, 1: 1, 0: 2}
    assert dict(collider.pds_tree(root=0).nodes) == {0: 0, 1: 1, 2: 2}
    # the same skeleton with a non-collider at 1 (1 --> 2)
    chain = PAG.from_marks(make(3, [(0, 1, "o->"), (1, 2, "-->")]))
    assert dict(chain.pds_tree().nodes) == {2: 0, 1: 1}


def test_pds_triangle() -> None:
    # 0, 1, 2 a triangle of circles, 3 hangs off 2 and 1; root 0
    pag = PAG.from_marks(
        make(4, [(0, 1, "o-o"), (1, 2, "o-o"), (0, 2, "o-o"), (2, 3, "o-o")]), target=0
    )
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {0: 0, 1: 1, 2: 1}  # <1, 2, 3>: no triangle, no collider
    closed = PAG.from_marks(
        make(4, [(0, 1, "o-o"), (1, 2, "o-o"), (0, 2, "o-o"), (2, 3, "o-o"), (1, 3, "o-o")]),
        target=0,
    )
    tree = closed.pds_tree()
    # 0-1-2 and 1-2-3 are triangles: 3 is reached along 0, 1, 2, 3 (neighbours in order)
    assert dict(tree.nodes) == {0: 0, 1: 1, 2: 1, 3: 3}
    assert tree.parent[3] == 2
    assert tree.path(3) == (0, 1, 2, 3)


def test_pds_node_only_reachable_through_a_collider_after_a_triangle() -> None:
    # target 3: 3 o-o 2, 3 o-o 1, 2 o-> 1 <-o 0. 3, 1, 0 is not a pds path (3 o-o 1 has a
    # circle at 1, 3 and 0 not adjacent); 3, 2, 1, 0 is (triangle 3-2-1, then 2 *-> 1 <-* 0).
    pag = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "<-o"), (0, 1, "o->")]))
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {3: 0, 1: 1, 2: 1, 0: 3}
    assert tree.parent[0] == 1
    assert tree.nodes[tree.parent[0]] == 1  # smaller than 3 - 1: the tree records the approach
    assert tree.path(0) == (3, 2, 1, 0)
    # without the collider at 1 node 0 is out of reach
    blocked = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "o-o"), (0, 1, "o->")]))
    assert 0 not in blocked.pds_tree().nodes
    with pytest.raises(InvalidInputError, match="not in the PDS tree"):
        blocked.pds_tree().path(0)


def test_pds_bad_arguments(mixed: PAG) -> None:
    with pytest.raises(InvalidInputError, match="root"):
        mixed.pds_tree(root=6)
    with pytest.raises(InvalidInputError, match="max_depth"):
        mixed.pds_tree(max_depth=-1)


def test_candidate_sets_star_order() -> None:
    # all four history nodes adjacent to the target: equal distances, more recent first
    pag = PAG.from_marks(make(5, [(k, 4, "o->") for k in range(4)]))
    tree = pag.pds_tree()
    assert tree.members == (3, 2, 1, 0)
    assert list(tree.candidate_sets(1)) == [(3,), (2,), (1,), (0,)]
    assert list(tree.candidate_sets(2)) == [(2, 3), (1, 3), (0, 3), (1, 2), (0, 2), (0, 1)]
    assert list(tree.candidate_sets(4)) == [(0, 1, 2, 3)]
    assert list(tree.candidate_sets(5)) == []
    with pytest.raises(InvalidInputError, match="size"):
        tree.candidate_sets(0)


def test_candidate_sets_distance_first() -> None:
    # 0 o-> 1 <-> 2 <-o 3 (target) plus 0 o-> 3: distances 2:1, 0:1, 1:2
    pag = PAG.from_marks(make(4, [(0, 1, "o->"), (1, 2, "<->"), (2, 3, "<-o"), (0, 3, "o->")]))
    tree = pag.pds_tree()
    assert dict(tree.nodes) == {3: 0, 0: 1, 2: 1, 1: 2}
    assert list(tree.candidate_sets(1)) == [(2,), (0,), (1,)]
    assert list(tree.candidate_sets(2)) == [(0, 2), (1, 2), (0, 1)]


def _brute_force_order(tree) -> list[list[tuple[int, ...]]]:
    out = []
    members = tree.members
    for size in range(1, len(members) + 1):
        sets = [tuple(sorted(c)) for c in combinations(members, size)]
        sets.sort(
            key=lambda s: (
                sum(tree.nodes[v] for v in s),
                tuple(-v for v in sorted(s, reverse=True)),
            )
        )
        out.append(sets)
    return out


def _random_pag(rng: np.random.Generator, n: int, density: float) -> PAG:
    """Random edges with random marks (not necessarily a valid PAG: fine for tree searches)."""
    m = np.zeros((n, n), dtype=np.int8)
    for i, j in combinations(range(n), 2):
        if rng.random() < density:
            m[i, j], m[j, i] = rng.integers(1, 4, size=2)
    return PAG.from_marks(m)


@pytest.mark.parametrize("sort_all", [0, 10**6], ids=["best-first walk", "sort all"])
def test_candidate_sets_match_brute_force_on_random_pags(sort_all, monkeypatch) -> None:
    monkeypatch.setattr(pag_module, "_SORT_ALL_SETS", sort_all)
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(20):
        tree = _random_pag(rng, 9, 0.4).pds_tree()
        expected = _brute_force_order(tree)
        for size, sets in enumerate(expected, start=1):
            assert list(tree.candidate_sets(size)) == sets
            checked += 1
    assert checked > 40  # the random graphs were not all trivial


def test_candidate_sets_sorting_all_equals_best_first_walk_on_a_large_tree(monkeypatch) -> None:
    tree = _random_pag(np.random.default_rng(3), 40, 0.15).pds_tree()
    assert len(tree.members) > 20 and tree.depth > 1
    for size in (1, 2, 3):
        fast = list(tree.candidate_sets(size))
        monkeypatch.setattr(pag_module, "_SORT_ALL_SETS", 0)
        assert list(tree.candidate_sets(size)) == fast
        monkeypatch.undo()


def test_candidate_sets_closed() -> None:
    pag = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "<-o"), (0, 1, "o->")]))
    tree = pag.pds_tree()
    assert list(tree.candidate_sets(2)) == [(1, 2), (0, 2), (0, 1)]
    # 0 needs both 2 and 1 on its path
    assert list(tree.candidate_sets(2, closed=True)) == [(1, 2)]
    assert list(tree.candidate_sets(3, closed=True)) == [(0, 1, 2)]


# ---------------------------------------------------------------------------- exports


def test_to_dict_schema(mixed: PAG) -> None:
    d = mixed.to_dict()
    assert list(d) == [
        "schema",
        "version",
        "n_nodes",
        "target",
        "nodes",
        "edges",
        "sepsets",
        "meta",
    ]
    assert d["schema"] == "recausal.pag" and d["version"] == SCHEMA_VERSION == 1
    assert d["nodes"][5] == {"id": 5, "position": 5, "item": "99", "is_target": True}
    assert d["edges"][1] == {
        "source": 0,
        "target": 5,
        "source_mark": "circle",
        "target_mark": "arrow",
        "text": "o->",
    }
    assert d["sepsets"] == [{"pair": [0, 2], "set": [1]}, {"pair": [1, 5], "set": []}]
    assert d["meta"] == {"alg": "hand"}
    assert json.loads(mixed.to_json()) == d


def test_dict_and_json_round_trip(mixed: PAG) -> None:
    assert PAG.from_dict(mixed.to_dict()) == mixed
    assert PAG.from_json(mixed.to_json(indent=2)) == mixed
    bare = PAG.from_marks(make(3, [(0, 2, "<->")]), target=1)
    assert PAG.from_dict(bare.to_dict()) == bare
    assert PAG.from_dict(bare.to_dict()).items is None


def test_from_dict_accepts_an_edge_written_backwards(mixed: PAG) -> None:
    d = mixed.to_dict()
    d["edges"][1] = {
        "source": 5,
        "target": 0,
        "source_mark": "arrow",
        "target_mark": "circle",
        "text": "<-o",
    }
    assert PAG.from_dict(d) == mixed


def test_pds_tree_to_dict() -> None:
    pag = PAG.from_marks(make(4, [(2, 3, "o-o"), (1, 3, "o-o"), (1, 2, "<-o"), (0, 1, "o->")]))
    d = pag.pds_tree().to_dict()
    assert d == {
        "root": 3,
        "max_depth": None,
        "nodes": [
            {"id": 3, "distance": 0, "parent": None, "path": [3]},
            {"id": 2, "distance": 1, "parent": 3, "path": [3, 2]},
            {"id": 1, "distance": 1, "parent": 3, "path": [3, 1]},
            {"id": 0, "distance": 3, "parent": 1, "path": [3, 2, 1, 0]},
        ],
    }
    json.dumps(d)


def test_from_dict_rejects_bad_input(mixed: PAG) -> None:
    d = mixed.to_dict()
    with pytest.raises(InvalidInputError, match="version"):
        PAG.from_dict({**d, "version": 99})
    bad = json.loads(json.dumps(d))
    bad["edges"][0]["text"] = "<->"
    with pytest.raises(InvalidInputError, match="text disagrees"):
        PAG.from_dict(bad)
    bad = json.loads(json.dumps(d))
    bad["edges"][0]["target_mark"] = "star"
    with pytest.raises(InvalidInputError, match="star"):
        PAG.from_dict(bad)
    bad = json.loads(json.dumps(d))
    del bad["nodes"]
    with pytest.raises(InvalidInputError, match="not a valid PAG dict"):
        PAG.from_dict(bad)
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        PAG.from_json("{")


def test_graphml_round_trip(mixed: PAG, tmp_path) -> None:
    path = tmp_path / "pag.graphml"
    mixed.to_graphml(path)
    g = nx.read_graphml(path)
    assert g.number_of_nodes() == 6 and g.number_of_edges() == len(MIXED)
    e = g.edges["2", "3"]
    assert (e["source"], e["target"]) == (2, 3)
    assert (e["source_mark"], e["target_mark"], e["text"]) == ("circle", "arrow", "o->")
    assert g.nodes["5"]["is_target"] is True and g.nodes["5"]["item"] == "99"
    back = PAG.from_graphml(path)
    assert np.array_equal(back.marks, mixed.marks)
    assert back.items == mixed.items and back.target == mixed.target
    bare = PAG.from_marks(make(3, [(0, 1, "o-o")]))
    bare.to_graphml(tmp_path / "bare.graphml")
    assert PAG.from_graphml(tmp_path / "bare.graphml") == bare


# ---------------------------------------------------------------------------- SVG


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode("utf-8"))


def _groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if cls in g.get("class", "").split()]


def test_svg_structure(mixed: PAG) -> None:
    svg = mixed.to_svg(highlight=[2, 4], title="user 7 <demo> & co")
    root = _parse(svg)
    assert root.tag == f"{SVG}svg"
    nodes = _groups(root, "node")
    edges = _groups(root, "edge")
    assert sorted(int(g.get("data-node")) for g in nodes) == list(range(6))
    assert sorted((int(g.get("data-source")), int(g.get("data-target"))) for g in edges) == sorted(
        (i, j) for i, j, _ in mixed.edges()
    )
    assert {g.get("data-text") for g in edges} == {"-->", "<->", "o->", "o-o"}
    # one filled triangle per arrowhead, one open circle per circle mark (legend excluded)
    marks = mixed.marks
    polys = [p for g in edges for p in g.iter(f"{SVG}polygon")]
    circles = [c for g in edges for c in g.iter(f"{SVG}circle")]
    assert len(polys) == int((marks == ARROW).sum())
    assert len(circles) == int((marks == CIRCLE).sum())
    assert [g.get("data-node") for g in _groups(root, "target")] == ["5"]
    assert sorted(g.get("data-node") for g in _groups(root, "highlight")) == ["2", "4"]
    assert len(_groups(root, "legend")) == 1
    assert "user 7 <demo> & co" in "".join(root.itertext())


def test_svg_labels_and_escaping() -> None:
    pag = PAG.from_marks(make(3, [(0, 2, "o->"), (1, 2, "-->")]), items=["a<b", "x", "y"])
    texts = "".join(_parse(pag.to_svg()).itertext())
    assert "a<b" in texts
    texts = "".join(_parse(pag.to_svg(labels={"x": "Toy Story (1995)", 0: "first"})).itertext())
    assert "Toy Story (1995)" in texts and "first" in texts and "a<b" not in texts
    empty = PAG.from_marks(np.zeros((1, 1), dtype=int))
    assert len(_groups(_parse(empty.to_svg()), "node")) == 1
    with pytest.raises(InvalidInputError, match="highlight"):
        pag.to_svg(highlight=[3])


# ---------------------------------------------------------------------------- aggregation


def test_aggregate_majority_and_ties() -> None:
    h1 = PAG.from_marks(make(4, [(0, 3, "o->"), (1, 3, "-->"), (2, 3, "o-o")]), items=list("abcd"))
    h2 = PAG.from_marks(make(4, [(0, 3, "-->"), (1, 3, "<->")]), items=list("abcd"))
    h3 = PAG.from_marks(make(4, [(0, 3, "o->"), (0, 1, "o-o")]), items=list("abcd"))
    agg = aggregate_pags([h1, h2, h3])
    # 0-3 in all three: mark at 0 circle (2 of 3), at 3 arrow (3 of 3)
    # 1-3 in two of three: at 1 tail vs arrow -> tie -> circle; at 3 arrow
    # 2-3 and 0-1 in one head only: dropped
    assert agg.edges() == [(0, 3, "o->"), (1, 3, "o->")]
    assert agg.items == ("a", "b", "c", "d") and agg.target == 3
    assert agg.meta == {"aggregate": "majority", "n_pags": 3}
    assert agg.sepsets == {}
    union = aggregate_pags([h1, h2, h3], rule="union")
    assert union.edges() == [(0, 1, "o-o"), (0, 3, "o->"), (1, 3, "o->"), (2, 3, "o-o")]
    assert aggregate_pags([h1, h2, h3], rule="all").edges() == [(0, 3, "o->")]
    # two heads: majority needs both
    assert aggregate_pags([h1, h2]).edges() == [(0, 3, "o->"), (1, 3, "o->")]
    assert aggregate_pags([h1]).edges() == h1.edges()


def test_aggregate_rejects_bad_input() -> None:
    a = PAG.from_marks(make(3, [(0, 2, "o->")]))
    with pytest.raises(InvalidInputError, match="at least one"):
        aggregate_pags([])
    with pytest.raises(InvalidInputError, match="rule"):
        aggregate_pags([a], rule="mean")
    with pytest.raises(InvalidInputError, match="nodes"):
        aggregate_pags([a, PAG.from_marks(np.zeros((4, 4), dtype=int))])
    with pytest.raises(InvalidInputError, match="target"):
        aggregate_pags([a, PAG.from_marks(make(3, [(0, 2, "o->")]), target=0)])
    with pytest.raises(InvalidInputError, match=r"pags\[1\] must be a PAG"):
        aggregate_pags([a, a.marks])


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("marks", "kwargs", "match"),
    [
        (np.zeros((2, 3), dtype=int), {}, r"square .* shape \(2, 3\)"),
        (np.zeros((2, 2, 2), dtype=int), {}, "square"),
        (np.zeros((0, 0), dtype=int), {}, "at least one node"),
        (np.array([[0, 2], [0, 0]]), {}, r"marks\[0, 1\] = 2 but marks\[1, 0\] = 0"),
        (np.array([[0, 5], [1, 0]]), {}, r"marks\[0, 1\] = 5 is not an edge-mark code"),
        (np.array([[0, -1], [1, 0]]), {}, "not an edge-mark code"),
        (np.array([[1, 0], [0, 0]]), {}, "itself"),
        (np.array([[0, 1.5], [1, 0]]), {}, "non-integer"),
        (np.array([[False, True], [True, False]]), {}, "dtype bool"),
        ([[0, 1], [1]], {}, "square"),
        (np.array([[0, 1], [1, 0]]), {"items": ["a"]}, "items has 1 entries but marks has 2"),
        (np.array([[0, 1], [1, 0]]), {"items": "ab"}, "items must be a list"),
        (np.array([[0, 1], [1, 0]]), {"target": 2}, "target = 2 is out of range"),
        (np.array([[0, 1], [1, 0]]), {"target": "1"}, "target must be a node index"),
        (np.array([[0, 1], [1, 0]]), {"sepsets": {(0, 1): ()}}, "adjacent"),
        (np.zeros((3, 3), dtype=int), {"sepsets": {(0, 1): (1,)}}, "its own pair"),
        (np.zeros((3, 3), dtype=int), {"sepsets": {(0, 3): ()}}, "out of range"),
        (np.zeros((3, 3), dtype=int), {"sepsets": {(0,): ()}}, "pair"),
        (np.zeros((2, 2), dtype=int), {"meta": {"x": object()}}, "JSON"),
    ],
)
def test_invalid_input(marks, kwargs, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        PAG.from_marks(marks, **kwargs)


def test_float_and_integer_codes_accepted() -> None:
    m = make(3, [(0, 2, "o->")]).astype(float)
    assert PAG.from_marks(m).edges() == [(0, 2, "o->")]
    assert PAG.from_marks(m.astype(np.uint8)).edges() == [(0, 2, "o->")]
    assert PAG.from_marks(np.zeros((2, 2), dtype=int)).marks[0, 1] == NONE


def test_no_torch_or_recbole_import() -> None:
    code = (
        "import sys, recausal.causal.pag, recausal.causal.svg\n"
        "bad = [m for m in ('torch', 'recbole') if m in sys.modules]\n"
        "sys.exit(1 if bad else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
