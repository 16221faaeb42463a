"""Self-contained SVG drawing of a :class:`~recausal.causal.pag.PAG` (no graphviz, no matplotlib).

It reads the PAG through its public accessors only (``edges``, ``mark``, ``items``...).

Layout: the history positions left to right in sequence order, the target at the right end.
Every edge is an arc above the baseline (taller for longer spans), so no edge runs along the
baseline through other nodes. Marks: arrowhead = filled triangle, circle = small open circle,
tail = plain line end. Highlighted nodes (e.g. an explanation) are filled in a highlight colour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

from recausal._checks import is_int
from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.causal.pag import PAG

__all__ = ["draw_pag"]

_DX = 70.0  # horizontal distance between neighbouring nodes
_R = 15.0  # node radius
_R_TARGET = 19.0
_MARGIN = 40.0
_LABEL_SPACE = 110.0  # below the baseline, for rotated item labels
_LEGEND_HEIGHT = 64.0
_MARK_LEN = 11.0  # arrowhead length
_MARK_HALF = 5.0  # arrowhead half-width
_CIRCLE_R = 4.5

_EDGE = "#555555"
_EDGE_HL = "#c0392b"
_NODE_FILL = "#ffffff"
_NODE_STROKE = "#333333"
_HL_FILL = "#f4a261"
_HL_STROKE = "#b5651d"
_TARGET_FILL = "#264653"
_FONT = "font-family='Helvetica, Arial, sans-serif'"


def _fmt(v: float) -> str:
    return f"{v:.1f}"


Point = tuple[float, float]


def _edge_geometry(
    edges: list[tuple[int, int, str]], slot: Mapping[int, int], radius: Mapping[int, float]
) -> dict[tuple[int, int], tuple[Point, Point, Point, Point]]:
    """Cubic Bezier (start, control, control, end) per edge, relative to (first slot, baseline).

    Every node fans its edges over the upper half of its circle: edges to the right leave at
    angles between 80 and 10 degrees, edges to the left mirrored, the longest edge steepest, so
    nested arcs do not cross near the node and marks do not pile up. A node with edges on one
    side only (typically the target) may tilt its steepest edges past the vertical to give
    each edge about 12 degrees; those ends get a short control arm.
    """
    incident: dict[int, list[tuple[int, int]]] = {}
    for i, j, _ in edges:
        incident.setdefault(i, []).append((j, slot[j] - slot[i]))
        incident.setdefault(j, []).append((i, slot[i] - slot[j]))
    angle: dict[tuple[int, int], float] = {}
    for v, nbrs in incident.items():
        one_sided = len({d > 0 for _, d in nbrs}) == 1
        for side in (1, -1):
            group = sorted((abs(d), u) for u, d in nbrs if d * side > 0)
            k = len(group)
            hi = 10.0 + min(max(12.0 * k, 70.0), 130.0 if one_sided else 70.0)
            for rank, (_, u) in enumerate(reversed(group)):  # longest first: steepest
                deg = hi - (hi - 10.0) * (rank + 0.5) / k if k > 1 else 55.0
                angle[(v, u)] = math.radians(deg if side > 0 else 180.0 - deg)
    out = {}
    for i, j, _ in edges:
        span = abs(slot[j] - slot[i])
        reach = _DX * (0.32 * span + 0.15)
        ends = []
        for v, u in ((i, j), (j, i)):
            a = angle[(v, u)]
            d = (math.cos(a), -math.sin(a))  # SVG's y axis points down
            leans_back = d[0] * (slot[u] - slot[v]) < -0.17  # tilted past ~80 degrees
            arm = min(reach, 1.2 * _DX) if leans_back else reach
            start = (_DX * slot[v] + d[0] * radius[v], d[1] * radius[v])
            ends.append((start, (start[0] + d[0] * arm, start[1] + d[1] * arm)))
        (p0, c0), (p1, c1) = ends
        out[(i, j)] = (p0, c0, c1, p1)
    return out


def _bezier_points(curve: tuple[Point, Point, Point, Point], steps: int = 16) -> list[Point]:
    p0, c0, c1, p1 = curve
    pts = []
    for s in range(steps + 1):
        t = s / steps
        w = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3)
        pts.append(
            (
                w[0] * p0[0] + w[1] * c0[0] + w[2] * c1[0] + w[3] * p1[0],
                w[0] * p0[1] + w[1] * c0[1] + w[2] * c1[1] + w[3] * p1[1],
            )
        )
    return pts


def _arrowhead(tip: tuple[float, float], direction: tuple[float, float], colour: str) -> str:
    """A filled triangle whose tip touches the node; ``direction`` points away from the node."""
    dx, dy = direction
    bx, by = tip[0] + dx * _MARK_LEN, tip[1] + dy * _MARK_LEN
    px, py = -dy * _MARK_HALF, dx * _MARK_HALF
    pts = [tip, (bx + px, by + py), (bx - px, by - py)]
    return (
        "<polygon class='mark arrow' points="
        + quoteattr(" ".join(f"{_fmt(x)},{_fmt(y)}" for x, y in pts))
        + f" fill='{colour}' stroke='{colour}' stroke-width='1'/>"
    )


def _circle_mark(at: tuple[float, float], direction: tuple[float, float], colour: str) -> str:
    cx, cy = at[0] + direction[0] * _CIRCLE_R, at[1] + direction[1] * _CIRCLE_R
    return (
        f"<circle class='mark circle' cx='{_fmt(cx)}' cy='{_fmt(cy)}' r='{_CIRCLE_R}' "
        f"fill='white' stroke='{colour}' stroke-width='1.5'/>"
    )


def _end_mark(
    mark: str | None, at: tuple[float, float], direction: tuple[float, float], colour: str
) -> str:
    if mark == "arrow":
        return _arrowhead(at, direction, colour)
    if mark == "circle":
        return _circle_mark(at, direction, colour)
    return ""  # tail: the line simply ends


def _label_for(pag: PAG, k: int, labels: Mapping[Any, str] | None) -> str:
    item = None if pag.items is None else pag.items[k]
    if labels is not None:
        if k in labels:
            return str(labels[k])
        if item is not None and item in labels:
            return str(labels[item])
    return "" if item is None else item


def _truncate(text: str, limit: int = 26) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def draw_pag(
    pag: PAG,
    highlight: Iterable[int] = (),
    title: str | None = None,
    labels: Mapping[Any, str] | None = None,
) -> str:
    """Draw ``pag`` as an SVG document.

    Each node is a ``<g class='node ...' data-node='k'>`` and each edge a
    ``<g class='edge' data-source='i' data-target='j' data-text='o->'>`` (``i < j``).

    Args:
        pag: the graph.
        highlight: node indices drawn in the highlight colour (edges between highlighted
            nodes and/or the target are drawn in red).
        title: a heading, or ``None``.
        labels: text under each node, keyed by node index (int) or item token (str);
            default: the item token.

    Returns:
        The SVG document (a string).
    """
    n = pag.n_nodes
    hl: set[int] = set()
    for v in highlight:
        if not is_int(v) or not 0 <= v < n:
            raise InvalidInputError(f"highlight holds {v!r}, not a node index in 0..{n - 1}")
        hl.add(int(v))
    target = pag.target
    order = [k for k in range(n) if k != target] + [target]
    slot = {k: s for s, k in enumerate(order)}

    edges = pag.edges()
    radius = {k: _R_TARGET + 5.0 if k == target else _R + 1.0 for k in range(n)}  # outside rings
    geometry = _edge_geometry(edges, slot, radius)
    arc_top = max((-min(y for _, y in _bezier_points(g)) for g in geometry.values()), default=0.0)
    title_h = 30.0 if title else 0.0
    base_y = _MARGIN + title_h + max(arc_top, _R_TARGET) + 6.0
    width = max(2 * _MARGIN + _DX * (n - 1) + 180.0, 460.0)  # room for the last rotated label
    height = base_y + _R_TARGET + _LABEL_SPACE + _LEGEND_HEIGHT
    x0 = _MARGIN + 20.0
    xs = {k: x0 + _DX * slot[k] for k in range(n)}

    parts: list[str] = [
        "<?xml version='1.0' encoding='UTF-8'?>",
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{_fmt(width)}' height='{_fmt(height)}' "
        f"viewBox='0 0 {_fmt(width)} {_fmt(height)}' class='recausal-pag'>",
        "<rect width='100%' height='100%' fill='white'/>",
    ]
    if title:
        parts.append(f"<title>{escape(title)}</title>")
        parts.append(
            f"<text class='title' x='{_fmt(_MARGIN)}' y='{_fmt(_MARGIN)}' font-size='16' "
            f"font-weight='bold' {_FONT}>{escape(title)}</text>"
        )

    # edges first, so that nodes are drawn over the line ends
    parts.append("<g class='edges' fill='none'>")
    for i, j, text in edges:
        colour = _EDGE_HL if {i, j} <= hl | {target} and {i, j} & hl else _EDGE
        width_px = 2.5 if colour == _EDGE_HL else 1.5
        p0, c0, c1, p1 = ((x + x0, y + base_y) for x, y in geometry[(i, j)])
        parts.append(
            f"<g class='edge' data-source='{i}' data-target='{j}' data-text={quoteattr(text)}>"
            f"<title>{i} {escape(text)} {j}</title>"
            f"<path d='M {_fmt(p0[0])} {_fmt(p0[1])} C {_fmt(c0[0])} {_fmt(c0[1])} "
            f"{_fmt(c1[0])} {_fmt(c1[1])} {_fmt(p1[0])} {_fmt(p1[1])}' "
            f"stroke='{colour}' stroke-width='{width_px}'/>"
        )
        # p0 is on node i's boundary, p1 on node j's; the marks point along the departure
        for v, other, at, ctrl in ((i, j, p0, c0), (j, i, p1, c1)):
            ux, uy = ctrl[0] - at[0], ctrl[1] - at[1]
            norm = math.hypot(ux, uy)
            mark = _end_mark(pag.mark(other, v), at, (ux / norm, uy / norm), colour)
            if mark:
                parts.append(mark)
        parts.append("</g>")
    parts.append("</g>")

    parts.append("<g class='nodes'>")
    for k in range(n):
        x = xs[k]
        is_t = k == target
        r = _R_TARGET if is_t else _R
        if k in hl:
            fill, stroke, ink = _HL_FILL, _HL_STROKE, "#000000"
        elif is_t:
            fill, stroke, ink = _TARGET_FILL, _TARGET_FILL, "#ffffff"
        else:
            fill, stroke, ink = _NODE_FILL, _NODE_STROKE, "#000000"
        label = _label_for(pag, k, labels)
        classes = "node" + (" target" if is_t else "") + (" highlight" if k in hl else "")
        tip = f"position {k}" + (" (target)" if is_t else "") + (f": {label}" if label else "")
        parts.append(f"<g class='{classes}' data-node='{k}'><title>{escape(tip)}</title>")
        if is_t:  # a second ring makes the target stand out even when highlighted
            parts.append(
                f"<circle cx='{_fmt(x)}' cy='{_fmt(base_y)}' r='{_fmt(r + 4)}' fill='none' "
                f"stroke='{_TARGET_FILL}' stroke-width='2'/>"
            )
        parts.append(
            f"<circle cx='{_fmt(x)}' cy='{_fmt(base_y)}' r='{_fmt(r)}' fill='{fill}' "
            f"stroke='{stroke}' stroke-width='2'/>"
        )
        parts.append(
            f"<text x='{_fmt(x)}' y='{_fmt(base_y + 4)}' text-anchor='middle' font-size='12' "
            f"fill='{ink}' {_FONT}>{'T' if is_t else k}</text>"
        )
        if label:
            ly = base_y + _R_TARGET + 12
            parts.append(
                f"<text class='label' x='{_fmt(x)}' y='{_fmt(ly)}' font-size='11' "
                f"transform='rotate(35 {_fmt(x)} {_fmt(ly)})' {_FONT}>"
                f"{escape(_truncate(label))}</text>"
            )
        parts.append("</g>")
    parts.append("</g>")

    parts.append(_legend(_MARGIN, height - _LEGEND_HEIGHT + 12, bool(hl)))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend(x0: float, y0: float, with_highlight: bool) -> str:
    out = [f"<g class='legend' font-size='11' {_FONT}>"]
    x = x0
    for name, mark in (("arrowhead", "arrow"), ("circle", "circle"), ("tail", None)):
        out.append(
            f"<line x1='{_fmt(x)}' y1='{_fmt(y0)}' x2='{_fmt(x + 34)}' y2='{_fmt(y0)}' "
            f"stroke='{_EDGE}' stroke-width='1.5'/>"
        )
        out.append(_end_mark(mark, (x + 34, y0), (-1.0, 0.0), _EDGE))
        out.append(f"<text x='{_fmt(x + 40)}' y='{_fmt(y0 + 4)}'>{name}</text>")
        x += 110
    y1 = y0 + 26
    out.append(
        f"<circle cx='{_fmt(x0 + 8)}' cy='{_fmt(y1)}' r='8' fill='{_TARGET_FILL}'/>"
        f"<text x='{_fmt(x0 + 22)}' y='{_fmt(y1 + 4)}'>target (T)</text>"
    )
    if with_highlight:
        out.append(
            f"<circle cx='{_fmt(x0 + 118)}' cy='{_fmt(y1)}' r='8' fill='{_HL_FILL}' "
            f"stroke='{_HL_STROKE}'/>"
            f"<text x='{_fmt(x0 + 132)}' y='{_fmt(y1 + 4)}'>highlighted</text>"
        )
    out.append("</g>")
    return "".join(out)
