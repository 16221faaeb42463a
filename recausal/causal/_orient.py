"""FCI orientation rules (Zhang 2008, "On the completeness of orientation rules for causal
discovery in the presence of latent confounders and selection bias") on a :class:`MarkGraph`.

R0 (unshielded colliders), R1–R4 and the tail rules R8–R10. R5–R7 only orient edges when
selection bias may be present (they produce undirected ``—`` edges); we assume no selection
variables, so they are never needed and not applied.

Every rule only ever replaces a *circle* at the end it orients (R1 and R4 also put an arrowhead
at the other end), so the fixpoint loops terminate. Nodes are visited in ascending order, so
the result is deterministic. The decisions of R0 and R4 (collider or not) come from callbacks,
so the same engine serves sepset-based learning (FCI, ICD) and reading marks off a known MAG.

The rules work on the graph's bitmask mirror (:class:`MarkBits`: per node, its neighbours and
the nodes with each mark), which keeps the graph in step. A sweep gives exactly the result of
the plain sweep over sorted neighbour lists: where the orientations made while visiting one
node cannot change that node's other decisions, they are decided together from the masks;
where they can, the masks are read again before each decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import combinations

from recausal.causal._graph import MarkBits, MarkGraph, bit_nodes
from recausal.causal._marks import ARROW, CIRCLE, TAIL

Collider0 = Callable[[int, int, int], bool]
"""``(a, b, c) -> True`` if the unshielded triple ``a *-* b *-* c`` is a collider at b."""
Collider4 = Callable[[int, int, int, int], bool]
"""``(d, a, b, c) -> True`` if b is a collider on a discriminating path ``<d, ..., a, b, c>``."""


def sepset_deciders(
    sepsets: Mapping[tuple[int, int], tuple[int, ...]],
) -> tuple[Collider0, Collider4]:
    """R0/R4 decisions from separating sets: collider iff b is not in sepset(end, end)."""
    get = sepsets.get  # small tuples: membership is as fast as in a frozenset

    def c0(a: int, b: int, c: int) -> bool:
        return b not in get((a, c) if a < c else (c, a), ())

    def c4(d: int, a: int, b: int, c: int) -> bool:
        return b not in get((d, c) if d < c else (c, d), ())

    return c0, c4


def rule0(g: MarkGraph, collider: Collider0) -> None:
    """R0: orient every unshielded collider ``a *-> b <-* c``."""
    _rule0(MarkBits(g), collider)


def _rule0(bits: MarkBits, collider: Collider0) -> None:
    """:func:`rule0` on the bitmask mirror (the triples in the same order)."""
    adj = bits.adj
    for b, nb in enumerate(adj):
        for a in bit_nodes(nb):
            far = nb & ~adj[a] & -(2 << a)  # the c > a not adjacent to a
            for c in bit_nodes(far) if far else ():
                if collider(a, b, c):
                    bits.set(a, b, ARROW)
                    bits.set(c, b, ARROW)


def rule1(bits: MarkBits) -> bool:
    """R1: ``a *-> b o-* c``, a and c not adjacent ⇒ ``b -> c``.

    Per b the arrowheads at b stay fixed while the circles at b are oriented, so all c of one
    b are decided from the same arrowheads.
    """
    adj, arrow_at, circle_at = bits.adj, bits.at[ARROW], bits.at[CIRCLE]
    changed = False
    for b in range(len(adj)):
        arrows = arrow_at[b]
        if not (arrows and circle_at[b]):
            continue
        for c in bit_nodes(circle_at[b]):
            if arrows & ~adj[c]:
                bits.set(c, b, TAIL)
                bits.set(b, c, ARROW)
                changed = True
    return changed


def rule2(bits: MarkBits) -> bool:
    """R2: ``a -> b *-> c`` or ``a *-> b -> c``, and ``a *-o c`` ⇒ ``a *-> c``.

    Per a (c ascending, as a plain sweep): the c reached through some b, each oriented c
    then serving as a b for the larger c.
    """
    arrow_from, circle_from = bits.out[ARROW], bits.out[CIRCLE]
    changed = False
    for a in range(len(arrow_from)):
        if not (circle_from[a] and arrow_from[a]):
            continue
        todo = 0
        for b in bit_nodes(arrow_from[a]):
            todo |= _r2_targets(bits, a, b)
        while todo:
            low = todo & -todo
            c = low.bit_length() - 1
            bits.set(a, c, ARROW)
            changed = True
            todo = (todo | _r2_targets(bits, a, c)) & -(low << 1)  # only larger c still come
    return changed


def _r2_targets(bits: MarkBits, a: int, b: int) -> int:
    """For ``a *-> b``: the c with ``a *-o c``, ``b *-> c`` and ``b -* a`` or ``c -* b``."""
    tail_at = bits.at[TAIL]
    heads = bits.out[ARROW][b] & bits.out[CIRCLE][a]
    return heads if (tail_at[a] >> b) & 1 else heads & tail_at[b]


def rule3(bits: MarkBits) -> bool:
    """R3: ``a *-> b <-* c``, ``a *-o d o-* c``, a, c not adjacent, ``d *-o b`` ⇒ ``d *-> b``."""
    adj, arrow_at, circle_at = bits.adj, bits.at[ARROW], bits.at[CIRCLE]
    changed = False
    for b in range(len(adj)):
        if arrow_at[b].bit_count() < 2 or not circle_at[b]:  # needs two arrowheads at b
            continue
        for d in bit_nodes(circle_at[b]):
            cand = arrow_at[b] & circle_at[d]
            if cand.bit_count() >= 2 and any(cand & ~adj[a] & ~(1 << a) for a in bit_nodes(cand)):
                bits.set(d, b, ARROW)
                changed = True
    return changed


def discriminating_source(bits: MarkBits, a: int, b: int, c: int) -> int | None:
    """The source d of a discriminating path ``<d, ..., a, b, c>`` for b, or None.

    Requires (checked by the caller) ``a -> c`` and ``b *-> a``. Breadth-first over
    collider-parents of c, ascending node order; the first d found is returned.
    """
    adj, arrow_at, arrow_from = bits.adj, bits.at[ARROW], bits.out[ARROW]
    parents_c = arrow_at[c] & bits.out[TAIL][c]  # the d with d -> c
    visited = (1 << a) | (1 << b) | (1 << c)
    frontier = [a]
    while frontier:
        nxt: list[int] = []
        for x in frontier:
            into = arrow_at[x] & ~visited  # the d with d *-> x
            far = into & ~adj[c]
            if far:
                return (far & -far).bit_length() - 1
            # d must itself be a collider on the path (d <-> x) and a parent of c
            more = into & arrow_from[x] & parents_c
            visited |= more
            nxt.extend(bit_nodes(more))
        frontier = nxt
    return None


def rule4(bits: MarkBits, collider: Collider4) -> bool:
    """R4 (discriminating paths): for ``<d, ..., a, b, c>`` with ``b o-* c``: ``b -> c`` if b
    is a non-collider, else ``a <-> b <-> c``."""
    arrow_at, circle_at = bits.at[ARROW], bits.at[CIRCLE]
    arrow_from, tail_from = bits.out[ARROW], bits.out[TAIL]
    changed = False
    for b in range(len(arrow_at)):
        if not (arrow_from[b] and circle_at[b]):  # no a with b *-> a, or no b o-* c
            continue
        for c in bit_nodes(circle_at[b]):
            heads = arrow_at[c] & tail_from[c] & arrow_from[b]  # the a with a -> c, b *-> a
            if not heads or not (circle_at[b] >> c) & 1:  # (or c oriented meanwhile)
                continue
            for a in bit_nodes(heads):
                d = discriminating_source(bits, a, b, c)
                if d is None:
                    continue
                if collider(d, a, b, c):
                    bits.set(a, b, ARROW)
                    bits.set(b, a, ARROW)
                    bits.set(b, c, ARROW)
                    bits.set(c, b, ARROW)
                else:
                    bits.set(b, c, ARROW)
                    bits.set(c, b, TAIL)
                changed = True
                break
    return changed


def rule8(bits: MarkBits) -> bool:
    """R8: ``a -> b -> c`` or ``a -o b -> c``, and ``a o-> c`` ⇒ ``a -> c``."""
    arrow_at, circle_at, tail_at = bits.at[ARROW], bits.at[CIRCLE], bits.at[TAIL]
    arrow_from, circle_from, tail_from = bits.out[ARROW], bits.out[CIRCLE], bits.out[TAIL]
    changed = False
    for a in range(len(arrow_at)):
        if not (tail_at[a] and circle_at[a] & arrow_from[a]):  # no tail at a yet: nothing to do
            continue
        for c in bit_nodes(circle_at[a] & arrow_from[a]):
            if tail_at[a] & (arrow_from[a] | circle_from[a]) & arrow_at[c] & tail_from[c]:
                bits.set(c, a, TAIL)
                changed = True
    return changed


def _uncovered_pd_path(g: MarkGraph, start: int, first: int, target: int, banned: int) -> bool:
    """Is there an uncovered possibly directed path ``<start, first, ..., target>``?

    Avoids ``banned``. ``first == target`` counts as the one-edge path. Each (previous,
    current) pair is expanded once, which keeps the search polynomial.
    """
    if first == target:
        return True
    adj = g.adj
    seen = {(start, first)}
    stack = [(start, first, frozenset((start, first)))]
    while stack:
        prev, cur, on_path = stack.pop()
        for nxt in adj[cur]:
            if nxt in on_path or nxt == banned or nxt in adj[prev]:
                continue
            if not g.possibly_directed(cur, nxt):
                continue
            if nxt == target:
                return True
            if (cur, nxt) not in seen:
                seen.add((cur, nxt))
                stack.append((cur, nxt, on_path | {nxt}))
    return False


def rule9(bits: MarkBits) -> bool:
    """R9: ``a o-> c`` and an uncovered p.d. path ``<a, b, ..., c>`` with b, c not adjacent
    ⇒ ``a -> c``."""
    g = bits.g
    adj, arrow_at, circle_at = bits.adj, bits.at[ARROW], bits.at[CIRCLE]
    arrow_from, tail_from = bits.out[ARROW], bits.out[TAIL]
    changed = False
    for a in range(g.n):
        if not circle_at[a] & arrow_from[a]:
            continue
        firsts = adj[a] & ~arrow_at[a] & ~tail_from[a]  # the b with a possibly directed to b
        for c in bit_nodes(circle_at[a] & arrow_from[a]):
            for b in bit_nodes(firsts & ~adj[c] & ~(1 << c)):
                if _uncovered_pd_path(g, a, b, c, banned=-1):
                    bits.set(c, a, TAIL)
                    changed = True
                    break
    return changed


def rule10(bits: MarkBits) -> bool:
    """R10: ``a o-> c``, ``b -> c <- d``, uncovered p.d. paths from a to b and from a to d
    whose second nodes are distinct and not adjacent ⇒ ``a -> c``."""
    g = bits.g
    adj, arrow_at = bits.adj, bits.at[ARROW]
    circle_from, tail_from = bits.out[CIRCLE], bits.out[TAIL]
    changed = False
    for c in range(g.n):
        if (arrow_at[c] & tail_from[c]).bit_count() < 2:
            continue
        parents = bit_nodes(arrow_at[c] & tail_from[c])
        for a in bit_nodes(circle_from[c] & arrow_at[c]):
            # the x with a possibly directed to x
            kids = bit_nodes(adj[a] & ~arrow_at[a] & ~tail_from[a] & ~(1 << c))
            if len(kids) < 2:
                continue
            others = [p for p in parents if p != a]
            # reach[p] = second nodes mu with an uncovered p.d. path <a, mu, ..., p>
            reach = {
                p: [mu for mu in kids if _uncovered_pd_path(g, a, mu, p, banned=c)] for p in others
            }
            if any(
                mu != om and not (adj[mu] >> om) & 1
                for b, d in combinations(others, 2)
                for mu in reach[b]
                for om in reach[d]
            ):
                bits.set(c, a, TAIL)
                changed = True
    return changed


def close_r1_r4(g: MarkGraph | MarkBits, c4: Collider4) -> None:
    """Apply R1–R4 until none changes the graph (``g`` or its bitmask mirror)."""
    bits = g if isinstance(g, MarkBits) else MarkBits(g)
    while True:
        changed = rule1(bits)
        changed |= rule2(bits)
        changed |= rule3(bits)
        changed |= rule4(bits, c4)
        if not changed:
            return


def close_tail_rules(g: MarkGraph | MarkBits, c4: Collider4) -> None:
    """Apply R8–R10, re-closing R1–R4 after any change, until nothing changes (``g`` or its
    bitmask mirror)."""
    bits = g if isinstance(g, MarkBits) else MarkBits(g)
    while True:
        changed = rule8(bits)
        changed |= rule9(bits)
        changed |= rule10(bits)
        if not changed:
            return
        close_r1_r4(bits, c4)


def orient(
    g: MarkGraph,
    c0: Collider0,
    c4: Collider4,
    *,
    order_aware: bool = False,
    tail_rules: bool = True,
) -> MarkBits:
    """Re-orient ``g`` from scratch: circles (arrowheads at later nodes when ``order_aware``),
    R0, R1–R4 to a fixpoint, then (``tail_rules``) R8–R10. Returns the graph's bitmask
    mirror (kept in step with it)."""
    bits = MarkBits.reset(g, order_aware)
    _rule0(bits, c0)
    close_r1_r4(bits, c4)
    if tail_rules:
        close_tail_rules(bits, c4)
    return bits
