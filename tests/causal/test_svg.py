"""Tests of the SVG drawing of a PAG (:mod:`recausal.report.svg`)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from recausal.causal._marks import ARROW, CIRCLE
from recausal.causal.pag import PAG
from recausal.errors import InvalidInputError
from recausal.report.svg import draw_pag
from recausal.testing.graphs import marks_from_edges as make

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode("utf-8"))


def _groups(root: ET.Element, cls: str) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if cls in g.get("class", "").split()]


def test_svg_structure(mixed: PAG) -> None:
    svg = draw_pag(mixed, highlight=[2, 4], title="user 7 <demo> & co")
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
    texts = "".join(_parse(draw_pag(pag)).itertext())
    assert "a<b" in texts
    texts = "".join(_parse(draw_pag(pag, labels={"x": "Toy Story (1995)", 0: "first"})).itertext())
    assert "Toy Story (1995)" in texts and "first" in texts and "a<b" not in texts
    empty = PAG.from_marks(np.zeros((1, 1), dtype=int))
    assert len(_groups(_parse(draw_pag(empty)), "node")) == 1
    with pytest.raises(InvalidInputError, match="highlight"):
        draw_pag(pag, highlight=[3])
