"""The self-contained HTML explanation page (recausal.report.html)."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import numpy as np
import pytest

from recausal.causal._marks import ARROW, CIRCLE, TAIL
from recausal.causal.pag import PAG
from recausal.errors import InvalidInputError
from recausal.explain import get_explainer
from recausal.report import explanation_html

VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source"}


class _Balance(HTMLParser):
    """Checks that every non-void element is closed in order; collects text and classes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.text: list[str] = []
        self.classes: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        cls = dict(attrs).get("class")
        if cls:
            self.classes.append((tag, cls))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        cls = dict(attrs).get("class")
        if cls:
            self.classes.append((tag, cls))

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def _parse(page: str) -> _Balance:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.errors == []
    assert parser.stack == []
    return parser


def _text(parsed: _Balance) -> str:
    """The page's text with whitespace collapsed."""
    return re.sub(r"\s+", " ", "".join(parsed.text))


@pytest.fixture(scope="module")
def history(sasrec) -> list[str]:
    return sasrec.user_history("1")[-sasrec.capacity :]


@pytest.fixture(scope="module")
def explanation(sasrec, history):
    return get_explainer("occlusion", max_size=5).explain(sasrec, history, k=5)


def test_page_is_self_contained_and_well_formed(sasrec, explanation):
    page = explanation_html(explanation, model=sasrec, user="1")
    assert page.startswith("<!DOCTYPE html>")
    _parse(page)
    # nothing that could fetch anything: no scripts, links, sources or CSS urls
    for pattern in (r"<script", r"<link", r"\bsrc\s*=", r"\bhref\s*=", r"url\(", r"@import"):
        assert re.search(pattern, page, re.IGNORECASE) is None, pattern
    assert "Content-Security-Policy" in page and "default-src 'none'" in page


def test_page_shows_history_recommendation_causes_and_ranking(sasrec, explanation):
    page = explanation_html(explanation, model=sasrec, user="1")
    parsed = _parse(page)
    text = _text(parsed)
    titles = sasrec.titles
    assert titles, "the planted dataset has titles"
    # the recommendation by title, and every history item (title) on the page
    assert titles[explanation.recommended] in text
    for item in explanation.history:
        assert titles[item] in text
    # one ranking row per history item, ordered as the explanation ranks them
    rows = re.findall(
        r"<tr(?: class='cause')?><td class='num'>(\d+)</td><td class='num'>(\d+)", page
    )
    assert [int(pos) for _, pos in rows] == [r.position for r in explanation.ranking]
    if explanation.valid:
        # the cause chips and cause rows are exactly the first explanation set
        chips = re.findall(r"<li class='cause'><span class='pos'>(\d+)</span>", page)
        assert sorted(int(p) for p in chips) == sorted(explanation.sets[0])
        cause_rows = re.findall(
            r"<tr class='cause'><td class='num'>\d+</td><td class='num'>(\d+)", page
        )
        assert sorted(int(p) for p in cause_rows) == sorted(explanation.sets[0])
        assert "replacement" in text.lower() and titles[explanation.replacement] in text
        if explanation.replacement_rank is not None:
            assert f"rank {explanation.replacement_rank} of the original top 5" in text


def test_valid_page_states_replacement_rank(history, sasrec):
    """A hand-made valid explanation: the verdict names the set, replacement and rank."""
    base = get_explainer("recency", max_size=1).explain(sasrec, history, k=5)
    expl = dataclasses.replace(
        base,
        sets=((len(history) - 1,),),
        valid=True,
        replacement=base.top_k[2],
        replacement_rank=3,
    )
    text = _text(_parse(explanation_html(expl, titles={})))
    assert "Removing this item from the history changes the recommendation" in text
    assert f"item {base.top_k[2]} instead (rank 3 of the original top 5)" in text


def test_invalid_explanation_says_so(sasrec, explanation):
    expl = dataclasses.replace(
        explanation, sets=(), valid=False, replacement=None, replacement_rank=None, max_size=3
    )
    page = explanation_html(expl, model=sasrec)
    text = _text(_parse(page))
    assert "No explanation found up to size 3" in text
    assert "class='cause'" not in page
    assert "changes the recommendation:" not in text


def test_titles_are_escaped(explanation):
    evil = "<script>alert(1)</script>"
    titles = {item: evil for item in (*explanation.history, *explanation.top_k)}
    page = explanation_html(explanation, titles=titles)
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    _parse(page)


def test_without_titles_shows_tokens(explanation):
    page = explanation_html(explanation, titles={})
    text = _text(_parse(page))
    assert f"Why item {explanation.recommended}?" in text


def test_graph_is_inlined_with_the_explanation_highlighted(sasrec, history):
    expl = get_explainer("recency", max_size=5).explain(sasrec, history, k=5)
    n = len(history) + 1
    marks = np.zeros((n, n), dtype=np.int8)
    causes = (n - 2, n - 3)  # two most recent positions --> target
    for c in causes:
        marks[c, n - 1], marks[n - 1, c] = ARROW, TAIL
    marks[0, 1], marks[1, 0] = CIRCLE, CIRCLE
    pag = PAG.from_marks(marks, items=[*history, expl.recommended])
    expl = dataclasses.replace(expl, sets=(causes,), valid=True, graph=pag)
    page = explanation_html(expl, model=sasrec)
    parsed = _parse(page)
    assert page.count("<svg") == 1 and "<?xml" not in page
    highlighted = sorted(
        int(m) for m in re.findall(r"<g class='node highlight' data-node='(\d+)'", page)
    )
    assert highlighted == sorted(causes)
    # node labels are titles
    assert sasrec.titles[history[0]] in _text(parsed)


def test_rejects_non_explanation():
    with pytest.raises(InvalidInputError, match="explanation must be an Explanation"):
        explanation_html({"recommended": "1"})
