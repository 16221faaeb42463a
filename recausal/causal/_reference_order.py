"""Iteration orders of CPython ``set`` objects, to break ties exactly as the reference ICD does.

Why this exists: recausal's ICD must return the same PAGs as the reference implementation
(IntelLabs/causality-lab), including which separating set it records when several are equally
good. The reference picks among tied candidates in the iteration order of Python ``set``
objects, which for small ints is the slot order of the set's hash table, not ascending order.
This module reproduces those orders, and nothing else:

* :func:`tree_order`: the order of a PDS tree's nodes (the reference builds a ``set`` from the
  breadth-first discovery list; CPython's own ``set`` gives it exactly).
* :func:`r1_order` / :func:`first_in_r1_order`: at r = 1 the reference tries the neighbours of
  i (then of j) in the order of ``neighbours(i) - {j}``. That set is built by the reference
  through its own insertion history, so it is simulated here: the table sizes of CPython 3.11
  ``set_merge``/``set_add_entry``, linear probing then perturbation, the neighbours inserted
  in ascending order. This matches the reference except when a slot collision depends on the
  reference's internal insertion history (rare).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

from recausal.causal._graph import bit_nodes

__all__ = ["first_in_r1_order", "r1_order", "tree_order"]


def tree_order(labels: Iterable[int]) -> list[int]:
    """The distinct nodes of ``labels`` in the iteration order of ``set(labels)``.

    Args:
        labels: node ids, in breadth-first discovery order (repeats allowed).

    Returns:
        Each node once, in CPython's ``set`` order.
    """
    return list(set(labels))


def _set_insert(table: list[int | None], mask: int, key: int) -> None:
    perturb = key
    i = key & mask
    while True:
        for jj in range(10 if i + 9 <= mask else 1):
            v = table[i + jj]
            if v is None:
                table[i + jj] = key
                return
            if v == key:
                return
        perturb >>= 5
        i = (i * 5 + 1 + perturb) & mask


def _table_size(minused: int) -> int:
    t = 8
    while t <= minused:
        t <<= 1
    return t


def _set_fill(keys: list[int], size: int) -> list[int]:
    table: list[int | None] = [None] * size
    mask = size - 1
    for k in keys:
        if table[k & mask] is None:  # the home slot is free (the common case)
            table[k & mask] = k
        else:
            _set_insert(table, mask, k)
    return [k for k in table if k is not None]


def _r1_tables(s: int, has_drop: bool) -> tuple[int, int]:
    """Sizes of the hash tables of ``set(neigh)`` (``s`` keys) and of the difference."""
    t_x = _table_size(2 * s) if s >= 5 else 8
    return t_x, t_x if s >= 8 else (8 if s - has_drop <= 4 else 32)


@lru_cache(maxsize=1024)
def _r1_slots(s: int) -> int:
    """Size of the final table of ``set(neigh) - {drop}``, ``s`` keys with drop among them."""
    return _r1_tables(s, True)[1]


def _fold(mask: int, size: int) -> int:
    """The slots (key mod ``size``) of the keys in ``mask``, as a bitmask."""
    out, low = 0, (1 << size) - 1
    while mask:
        out |= mask & low
        mask >>= size
    return out


def r1_order(neigh: list[int], drop: int) -> list[int]:
    """The order in which CPython iterates ``set(neigh) - {drop}``.

    Args:
        neigh: the keys (node ids), ascending.
        drop: the key removed (it need not be in ``neigh``).

    Returns:
        The remaining keys in iteration order.
    """
    s = len(neigh)
    if s == 0:
        return []
    t_x, t_final = _r1_tables(s, drop in neigh)
    if neigh[-1] < min(t_x, t_final):  # no wrap-around: ascending
        return [k for k in neigh if k != drop]
    mask = t_final - 1
    rest = [k for k in neigh if k != drop]
    slots = [k & mask for k in rest]
    if len(set(slots)) == len(slots):  # no collision: every key sits in its home slot
        return [k for _, k in sorted(zip(slots, rest, strict=True))]
    return list(_r1_collided(tuple(neigh), drop))


def _r1_collided(neigh: tuple[int, ...], drop: int) -> Sequence[int]:
    """:func:`r1_order` when two keys share a slot: the simulated table."""
    if len(neigh) >= 8:  # the table layout does not depend on drop: cache it per neighbour set
        return [k for k in _r1_order_full(neigh) if k != drop]
    return _r1_order_sim(neigh, drop)


@lru_cache(maxsize=16384)
def _r1_order_full(neigh: tuple[int, ...]) -> tuple[int, ...]:
    size = _table_size(2 * len(neigh))
    return tuple(_set_fill(_set_fill(list(neigh), size), size))


@lru_cache(maxsize=65536)
def _r1_order_sim(neigh: tuple[int, ...], drop: int) -> tuple[int, ...]:
    s = len(neigh)  # < 8: the difference is built by adding the keys one by one
    x = _set_fill(list(neigh), _table_size(2 * s) if s >= 5 else 8)
    table: list[int | None] = [None] * 8
    fill = 0
    for k in x:
        if k == drop:
            continue
        _set_insert(table, len(table) - 1, k)
        fill += 1
        if fill * 5 >= (len(table) - 1) * 3:
            old = [v for v in table if v is not None]
            table = [None] * _table_size(fill * 4)
            for v in old:
                _set_insert(table, len(table) - 1, v)
    return tuple(v for v in table if v is not None)


def first_in_r1_order(mask: int, drop: int, sub: int, hits: int) -> tuple[int, int]:
    """The first node of ``hits`` in :func:`r1_order` of the nodes of ``mask`` without ``drop``,
    restricted to ``sub``.

    Where the keys other than ``drop`` sit in distinct slots of the final table, that order is
    by slot (ascending when the table is larger than every key), read off the bitmasks folded
    to the table size; otherwise the set is simulated.

    Args:
        mask: bitmask of the keys (``drop`` among them).
        drop: the key removed.
        sub: bitmask of the keys that count (the candidates).
        hits: bitmask of the wanted keys, non-empty and inside ``sub``.

    Returns:
        ``(position among the keys of sub, node)`` of the first hit.
    """
    size = _r1_slots(mask.bit_count())
    if not mask >> size:
        first = hits & -hits
        return (sub & (first - 1)).bit_count(), first.bit_length() - 1
    rest = mask & ~(1 << drop)
    if _fold(rest, size).bit_count() == rest.bit_count():
        slots = _fold(hits, size)
        first = slots & -slots
        k = first.bit_length() - 1
        while not (hits >> k) & 1:
            k += size
        return (_fold(sub, size) & (first - 1)).bit_count(), k
    seq = [k for k in _r1_collided(tuple(bit_nodes(mask)), drop) if (sub >> k) & 1]
    q = next(q for q, k in enumerate(seq) if (hits >> k) & 1)
    return q, seq[q]
