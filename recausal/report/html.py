"""One self-contained HTML page that explains one recommendation.

The page has inline CSS only: no scripts, no fonts, images or style sheets from anywhere, and a
Content-Security-Policy that forbids loading any. It shows the user's history with the items that
caused the recommendation highlighted, the recommendation and the original top-k list, the
replacement (the new top-1 once the explanation set is removed) and its rank, the explainer's
ranking of every history item, and, when the explanation has one, the causal graph (SVG) with the
explanation set highlighted. When no explanation was found it says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from recausal.errors import InvalidInputError
from recausal.report.svg import draw_pag

if TYPE_CHECKING:
    from recausal.explain import Explanation
    from recausal.models import SequentialModel

__all__ = ["explanation_html", "node_labels"]

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f6f7f9;color:#1d2327;font:15px/1.45 Helvetica,Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:24px 28px 40px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:18px;margin:0 0 10px}
.sub{color:#5f6b73;margin:0 0 18px}
section{background:#fff;border:1px solid #dde1e5;border-radius:8px;padding:16px 20px;
margin:0 0 16px}
.verdict{font-size:16px;border-left:6px solid #2a9d8f}
.verdict.none{border-left-color:#9aa5ad;background:#fbfbfc}
.verdict p{margin:4px 0}
.tok{color:#5f6b73;font-size:12px;font-family:Menlo,Consolas,monospace}
.rec{font-weight:bold}
.hist{list-style:none;padding:0;margin:0;display:flex;flex-wrap:wrap;gap:6px}
.hist li{border:1px solid #c9d0d6;border-radius:6px;padding:4px 8px;background:#fff;
max-width:260px}
.hist li.cause{background:#f4a261;border-color:#b5651d}
.hist li.alt{background:#fde8d4}
.hist li.slid{border-style:dashed;color:#555}
.hist .pos{color:#5f6b73;font-size:11px;margin-right:4px}
.two{display:flex;gap:16px;flex-wrap:wrap}
.two>div{flex:1 1 300px}
ol.topk{margin:0;padding-left:28px}
ol.topk li{padding:1px 0}
.tag{display:inline-block;font-size:11px;border-radius:4px;padding:0 5px;margin-left:6px;
background:#264653;color:#fff;vertical-align:1px}
.tag.repl{background:#2a9d8f}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6e9ec}
th{font-size:13px;color:#5f6b73}
th.num{text-align:right;width:5em}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.cause td{background:#fde2c8}
.graph{overflow-x:auto}
.graph svg{display:block;max-width:none}
footer{color:#5f6b73;font-size:12px}
footer dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0}
footer dt{font-weight:bold}
footer dd{margin:0;word-break:break-all}
"""


def _title_map(model: SequentialModel | None, titles: Mapping[str, str] | None) -> dict[str, str]:
    if titles is not None:
        if not isinstance(titles, Mapping):
            raise InvalidInputError(
                f"titles must be a mapping of item token to title, got {type(titles).__name__}"
            )
        return {str(k): str(v) for k, v in titles.items()}
    if model is None:
        return {}
    try:
        return dict(model.titles)
    except Exception:  # a page without titles beats no page
        return {}


def node_labels(items: Sequence[str] | None, titles: Mapping[str, str]) -> dict[int, str]:
    """The labels of a graph's nodes for people: each item's title, else its token.

    Args:
        items: the item token of each node (``None``: the graph has none).
        titles: item token -> title.

    Returns:
        Node index -> label (empty without items).
    """
    return {k: titles.get(item, item) for k, item in enumerate(items or ())}


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.4g}"


class _Names:
    """Renders item tokens with their titles, escaped."""

    def __init__(self, titles: Mapping[str, str]) -> None:
        self.titles = titles

    def html(self, item: str) -> str:
        """The title with the token in small type, escaped."""
        title = self.titles.get(item)
        if title:
            return f"{escape(title)} <span class='tok'>{escape(item)}</span>"
        return f"item <span class='tok'>{escape(item)}</span>"


def _verdict(expl: Explanation, names: _Names) -> str:
    k = len(expl.top_k)
    effect = "changes the recommendation" if expl.rank == 1 else f"moves it out of the top {k}"
    if expl.valid and expl.sets:
        size = len(expl.sets[0])
        causes = ", ".join(names.html(expl.history[p]) for p in expl.sets[0])
        noun = "item" if size == 1 else f"{size} items"
        lines = [
            f"<p>Removing {'this' if size == 1 else 'these'} {noun} from the history {effect}: "
            f"{causes}.</p>"
        ]
        if expl.replacement is not None:
            rank = (
                f"rank {expl.replacement_rank} of the original top {k}"
                if expl.replacement_rank is not None
                else f"not in the original top {k}"
            )
            without = "it" if size == 1 else "them"
            if expl.rank == 1:
                lines.append(
                    f"<p>Without {without}, the model recommends "
                    f"{names.html(expl.replacement)} instead ({rank}).</p>"
                )
            else:
                lines.append(
                    f"<p>Without {without}, it falls to rank {expl.new_rank}, and "
                    f"{names.html(expl.replacement)} ({rank}) takes its place.</p>"
                )
        if expl.slid_in:
            slid = ", ".join(names.html(expl.history[p]) for p in expl.slid_in)
            lines.append(
                f"<p class='sub'>The model reads the {len(expl.history) - expl.window_start} "
                f"most recent items; deleting these lets older ones slide in: {slid}.</p>"
            )
        return "<section class='verdict'>" + "".join(lines) + "</section>"
    how = "deleting" if expl.removal == "delete" else "padding out"
    target = "top-1 recommendation" if expl.rank == 1 else f"item's place in the top {k}"
    return (
        "<section class='verdict none'>"
        f"<p><b>No explanation found up to size {expl.max_size}.</b></p>"
        f"<p>None of the sets of at most {expl.max_size} history items that the "
        f"{escape(expl.explainer)} explainer tried changed the {target} when "
        f"removed (by {how} them). The recommendation may rest on more items, or on none "
        "of the history in particular.</p></section>"
    )


def _recommendation(expl: Explanation, names: _Names) -> str:
    rows = []
    for item in expl.top_k:
        tags = ""
        if item == expl.recommended:
            tags += "<span class='tag'>explained</span>"
        if item == expl.replacement:
            tags += "<span class='tag repl'>replacement</span>"
        cls = " class='rec'" if item == expl.recommended else ""
        rows.append(f"<li{cls}>{names.html(item)}{tags}</li>")
    outside = ""
    if expl.replacement is not None and expl.replacement not in expl.top_k:
        outside = (
            f"<p class='sub' style='margin:6px 0 0'>Replacement, outside this list: "
            f"{names.html(expl.replacement)}</p>"
        )
    return (
        f"<div><h2>Recommendation{'' if expl.rank == 1 else f' #{expl.rank}'}</h2>"
        f"<p class='rec' style='font-size:18px;margin:0 0 4px'>{names.html(expl.recommended)}</p>"
        f"<p class='sub' style='margin:0'>score {_fmt(expl.score)}</p></div>"
        f"<div><h2>Original top {len(expl.top_k)}</h2>"
        f"<ol class='topk'>{''.join(rows)}</ol>{outside}</div>"
    )


def _history(expl: Explanation, names: _Names) -> str:
    first = set(expl.sets[0]) if expl.sets else set()
    others = {p for s in expl.sets[1:] for p in s} - first
    slid = set(expl.slid_in)
    shown = min(expl.window_start, min(slid, default=expl.window_start))
    chips = []
    for pos in range(shown, len(expl.history)):
        item = expl.history[pos]
        cls = (
            " class='cause'"
            if pos in first
            else " class='alt'"
            if pos in others
            else " class='slid'"
            if pos in slid
            else ""
        )
        chips.append(f"<li{cls}><span class='pos'>{pos}</span>{names.html(item)}</li>")
    note = "oldest first"
    if expl.window_start:
        note += (
            f"; the model reads the {len(expl.history) - expl.window_start} most recent items "
            f"(from position {expl.window_start}), {expl.window_start} older ones are not shown"
        )
    if first:
        note += "; the items that caused the recommendation are highlighted"
    if others:
        note += " (lighter: items of the other minimal explanations)"
    if slid:
        note += "; dashed: older items that slide into the window once the cause is deleted"
    return (
        f"<section><h2>History ({len(expl.history)} items)</h2>"
        f"<p class='sub'>{note}.</p><ol class='hist'>{''.join(chips)}</ol></section>"
    )


def _other_sets(expl: Explanation, names: _Names) -> str:
    if len(expl.sets) < 2:
        return ""
    rows = "".join(
        "<li>" + ", ".join(f"{p}: {names.html(expl.history[p])}" for p in s) + "</li>"
        for s in expl.sets[1:]
    )
    return (
        f"<section><h2>Other minimal explanations ({len(expl.sets) - 1})</h2>"
        "<p class='sub'>Removing any one of these sets also changes the recommendation.</p>"
        f"<ul>{rows}</ul></section>"
    )


_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>\s*")


def _graph(expl: Explanation, names: _Names) -> str:
    graph = expl.graph
    if graph is None:
        return ""
    n = graph.n_nodes
    window = expl.history[expl.window_start :]
    items = graph.items
    if items is None and n == len(window) + 1:
        items = (*window, expl.recommended)
    labels = node_labels(items, names.titles)
    chosen = [p - expl.window_start for p in (expl.sets[0] if expl.sets else ())]
    highlight = [p for p in chosen if 0 <= p < n and p != graph.target]
    svg = draw_pag(
        graph,
        highlight=highlight,
        title=f"Causal graph around the recommendation ({n - 1} history positions)",
        labels=labels,
    )
    svg = _XML_DECL.sub("", svg)
    return (
        "<section><h2>Causal graph</h2>"
        f"<p class='sub'>Nodes are the positions of the model's window (node i is history "
        f"position {expl.window_start} + i) and the recommendation (T). "
        "Edge marks: arrowhead, tail or circle (undetermined); highlighted nodes are the "
        f"explanation.</p><div class='graph'>{svg}</div></section>"
    )


def _ranking(expl: Explanation, names: _Names) -> str:
    first = set(expl.sets[0]) if expl.sets else set()
    rows = []
    for rank, r in enumerate(expl.ranking, start=1):
        cls = " class='cause'" if r.position in first else ""
        mark = "✔" if r.position in first else ""
        rows.append(
            f"<tr{cls}><td class='num'>{rank}</td><td class='num'>{r.position}</td>"
            f"<td>{names.html(r.item)}</td><td class='num'>{_fmt(r.score)}</td>"
            f"<td>{mark}</td></tr>"
        )
    return (
        f"<section><h2>Ranking by the {escape(expl.explainer)} explainer</h2>"
        "<p class='sub'>Every history item, most responsible first.</p>"
        "<table><thead><tr><th class='num'>rank</th><th class='num'>position</th><th>item</th>"
        "<th class='num'>score</th><th>in explanation</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _footer(expl: Explanation, model_name: str | None) -> str:
    meta: dict[str, Any] = dict(expl.meta)
    facts = [
        ("explainer", expl.explainer),
        ("parameters", ", ".join(f"{k}={v}" for k, v in (meta.get("params") or {}).items())),
        ("model", model_name or meta.get("model") or ""),
        ("bundle", meta.get("bundle") or ""),
        ("model calls", f"{expl.model_calls} forward passes, {expl.histories_scored} histories"),
        ("time", f"{expl.seconds:.3f} s"),
        ("recausal", meta.get("recausal_version") or ""),
    ]
    rows = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in facts if v != "")
    return f"<footer><dl>{rows}</dl></footer>"


def explanation_html(
    explanation: Explanation,
    model: SequentialModel | None = None,
    titles: Mapping[str, str] | None = None,
    *,
    user: str | None = None,
) -> str:
    """One self-contained HTML page (a string) explaining ``explanation``.

    ``titles`` maps item tokens to readable titles; by default they come from ``model.titles``
    (ml-100k has movie titles), else the page shows the tokens. ``user`` names the user in the
    heading. The page loads nothing from anywhere: inline CSS, inline SVG, no scripts.
    """
    from recausal.explain import Explanation

    if not isinstance(explanation, Explanation):
        raise InvalidInputError(
            f"explanation must be an Explanation, got {type(explanation).__name__}"
        )
    names = _Names(_title_map(model, titles))
    expl = explanation
    model_name = getattr(model, "name", None) if model is not None else None
    who = f"user {user}" if user is not None else "this history"
    title = names.titles.get(expl.recommended)
    heading = f"Why {title}?" if title else f"Why item {expl.recommended}?"
    by = model_name or expl.meta.get("model") or "the model"
    sub = (
        f"Item {expl.recommended}, recommended for {who} by {by}; "
        f"explained by the {expl.explainer} explainer."
    )
    body = [
        f"<header><h1>{escape(heading)}</h1><p class='sub'>{escape(sub)}</p></header>",
        _verdict(expl, names),
        f"<section class='two'>{_recommendation(expl, names)}</section>",
        _history(expl, names),
        _other_sets(expl, names),
        _graph(expl, names),
        _ranking(expl, names),
        _footer(expl, model_name),
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(heading)} · recausal</title><style>{_CSS}</style></head>\n"
        "<body><main>" + "\n".join(part for part in body if part) + "</main></body></html>\n"
    )
