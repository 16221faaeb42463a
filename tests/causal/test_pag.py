"""Tests of the PAG type: construction, local structure, exports and validation."""

from __future__ import annotations

import json
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.causal.pag import PAG, SCHEMA_VERSION
from recausal.errors import InvalidInputError
from recausal.testing.graphs import MIXED_EDGES as MIXED
from recausal.testing.graphs import marks_from_edges as make

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
        "import sys, recausal.causal.pag, recausal.report.svg\n"
        "bad = [m for m in ('torch', 'recbole') if m in sys.modules]\n"
        "sys.exit(1 if bad else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
