"""FCI orientation rules (Zhang 2008, "On the completeness of orientation rules for causal
discovery in the presence of latent confounders and selection bias") on a :class:`MarkGraph`.

R0 (unshielded colliders), R1–R4 and the tail rules R8–R10. R5–R7 only orient edges when
selection bias may be present (they produce undirected ``—`` edges); we assume no selection
variables, so they are never needed and not applied.

Every rule only ever replaces a *circle* at the end it orients (R1 and R4 also put an arrowhead
at the other end), so the fixpoint loops terminate. Nodes are visited in ascending order, so
the result is deterministic. The decisions of R0 and R4 (collider or not) come from callbacks,
so the same engine serves sepset-based learning (FCI, ICD) and reading marks off a known MAG.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from recausal.causal._graph import MarkGraph
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
    m, adj = g.m, g.adj
    for b in range(g.n):
        nb = sorted(adj[b])
        for ia, a in enumerate(nb):
            adj_a = adj[a]
            for c in nb[ia + 1 :]:
                if c not in adj_a and collider(a, b, c):
                    m[a][b] = ARROW
                    m[c][b] = ARROW


def rule1(g: MarkGraph) -> bool:
    """R1: ``a *-> b o-* c``, a and c not adjacent ⇒ ``b -> c``."""
    m, adj = g.m, g.adj
    changed = False
    for b in range(g.n):
        nb = sorted(adj[b])
        for a in nb:
            if m[a][b] != ARROW:
                continue
            adj_a = adj[a]
            for c in nb:
                if c != a and m[c][b] == CIRCLE and c not in adj_a:
                    m[c][b] = TAIL
                    m[b][c] = ARROW
                    changed = True
    return changed


def rule2(g: MarkGraph) -> bool:
    """R2: ``a -> b *-> c`` or ``a *-> b -> c``, and ``a *-o c`` ⇒ ``a *-> c``."""
    m, adj = g.m, g.adj
    changed = False
    for a in range(g.n):
        for c in sorted(adj[a]):
            if m[a][c] != CIRCLE:
                continue
            for b in adj[a] & adj[c]:
                if m[a][b] == ARROW and m[b][c] == ARROW and (m[b][a] == TAIL or m[c][b] == TAIL):
                    m[a][c] = ARROW
                    changed = True
                    break
    return changed


def rule3(g: MarkGraph) -> bool:
    """R3: ``a *-> b <-* c``, ``a *-o d o-* c``, a, c not adjacent, ``d *-o b`` ⇒ ``d *-> b``."""
    m, adj = g.m, g.adj
    changed = False
    for b in range(g.n):
        for d in sorted(adj[b]):
            if m[d][b] != CIRCLE:
                continue
            cand = sorted(x for x in adj[b] & adj[d] if m[x][b] == ARROW and m[x][d] == CIRCLE)
            found = False
            for ia, a in enumerate(cand):
                for c in cand[ia + 1 :]:
                    if c not in adj[a]:
                        found = True
                        break
                if found:
                    break
            if found:
                m[d][b] = ARROW
                changed = True
    return changed


def discriminating_source(g: MarkGraph, a: int, b: int, c: int) -> int | None:
    """The source d of a discriminating path ``<d, ..., a, b, c>`` for b, or None.

    Requires (checked by the caller) ``a -> c`` and ``b *-> a``. Breadth-first over
    collider-parents of c, ascending node order; the first d found is returned.
    """
    m, adj = g.m, g.adj
    visited = {a, b, c}
    frontier = [a]
    while frontier:
        nxt: list[int] = []
        for x in frontier:
            for d in sorted(adj[x]):
                if d in visited or m[d][x] != ARROW:
                    continue
                if d not in adj[c]:
                    return d
                # d must itself be a collider on the path (d <-> x) and a parent of c
                if m[x][d] == ARROW and m[d][c] == ARROW and m[c][d] == TAIL:
                    visited.add(d)
                    nxt.append(d)
        frontier = nxt
    return None


def rule4(g: MarkGraph, collider: Collider4) -> bool:
    """R4 (discriminating paths): for ``<d, ..., a, b, c>`` with ``b o-* c``: ``b -> c`` if b
    is a non-collider, else ``a <-> b <-> c``."""
    m, adj = g.m, g.adj
    changed = False
    for b in range(g.n):
        for c in sorted(adj[b]):
            if m[c][b] != CIRCLE:
                continue
            for a in sorted(adj[b] & adj[c]):
                if not (m[a][c] == ARROW and m[c][a] == TAIL and m[b][a] == ARROW):
                    continue
                d = discriminating_source(g, a, b, c)
                if d is None:
                    continue
                if collider(d, a, b, c):
                    m[a][b] = ARROW
                    m[b][a] = ARROW
                    m[b][c] = ARROW
                    m[c][b] = ARROW
                else:
                    m[b][c] = ARROW
                    m[c][b] = TAIL
                changed = True
                break
    return changed


def rule8(g: MarkGraph) -> bool:
    """R8: ``a -> b -> c`` or ``a -o b -> c``, and ``a o-> c`` ⇒ ``a -> c``."""
    m, adj = g.m, g.adj
    changed = False
    for a in range(g.n):
        for c in sorted(adj[a]):
            if not (m[c][a] == CIRCLE and m[a][c] == ARROW):
                continue
            for b in adj[a] & adj[c]:
                if (
                    m[b][a] == TAIL
                    and m[a][b] in (ARROW, CIRCLE)
                    and m[b][c] == ARROW
                    and m[c][b] == TAIL
                ):
                    m[c][a] = TAIL
                    changed = True
                    break
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


def rule9(g: MarkGraph) -> bool:
    """R9: ``a o-> c`` and an uncovered p.d. path ``<a, b, ..., c>`` with b, c not adjacent
    ⇒ ``a -> c``."""
    m, adj = g.m, g.adj
    changed = False
    for a in range(g.n):
        for c in sorted(adj[a]):
            if not (m[c][a] == CIRCLE and m[a][c] == ARROW):
                continue
            for b in sorted(adj[a]):
                if b == c or b in adj[c] or not g.possibly_directed(a, b):
                    continue
                if _uncovered_pd_path(g, a, b, c, banned=-1):
                    m[c][a] = TAIL
                    changed = True
                    break
    return changed


def rule10(g: MarkGraph) -> bool:
    """R10: ``a o-> c``, ``b -> c <- d``, uncovered p.d. paths from a to b and from a to d
    whose second nodes are distinct and not adjacent ⇒ ``a -> c``."""
    m, adj = g.m, g.adj
    changed = False
    for c in range(g.n):
        parents = sorted(x for x in adj[c] if m[x][c] == ARROW and m[c][x] == TAIL)
        if len(parents) < 2:
            continue
        for a in sorted(adj[c]):
            if not (m[c][a] == CIRCLE and m[a][c] == ARROW):
                continue
            kids = sorted(x for x in adj[a] if x != c and g.possibly_directed(a, x))
            if len(kids) < 2:
                continue
            # reach[p] = second nodes mu with an uncovered p.d. path <a, mu, ..., p>
            reach = {
                p: [mu for mu in kids if _uncovered_pd_path(g, a, mu, p, banned=c)]
                for p in parents
                if p != a
            }
            done = False
            for ib, b in enumerate(parents):
                if b == a:
                    continue
                for d in parents[ib + 1 :]:
                    if d == a:
                        continue
                    for mu in reach[b]:
                        for om in reach[d]:
                            if mu != om and om not in adj[mu]:
                                done = True
                                break
                        if done:
                            break
                    if done:
                        break
                if done:
                    break
            if done:
                m[c][a] = TAIL
                changed = True
    return changed


def close_r1_r4(g: MarkGraph, c4: Collider4) -> None:
    """Apply R1–R4 until none changes the graph."""
    while True:
        changed = rule1(g)
        changed |= rule2(g)
        changed |= rule3(g)
        changed |= rule4(g, c4)
        if not changed:
            return


def close_tail_rules(g: MarkGraph, c4: Collider4) -> None:
    """Apply R8–R10, re-closing R1–R4 after any change, until nothing changes."""
    while True:
        changed = rule8(g)
        changed |= rule9(g)
        changed |= rule10(g)
        if not changed:
            return
        close_r1_r4(g, c4)


def orient(
    g: MarkGraph,
    c0: Collider0,
    c4: Collider4,
    *,
    order_aware: bool = False,
    tail_rules: bool = True,
) -> None:
    """Re-orient ``g`` from scratch: circles (arrowheads at later nodes when ``order_aware``),
    R0, R1–R4 to a fixpoint, then (``tail_rules``) R8–R10."""
    g.reset(order_aware)
    rule0(g, c0)
    close_r1_r4(g, c4)
    if tail_rules:
        close_tail_rules(g, c4)
