"""Validation of the arguments a :class:`~recausal.causal.pag.PAG` is built from.

Each check raises :class:`~recausal.errors.InvalidInputError` naming the offending value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from recausal._checks import is_int
from recausal.causal._marks import ARROW, CIRCLE, NONE, TAIL
from recausal.errors import InvalidInputError

__all__ = ["validate_items", "validate_marks", "validate_meta", "validate_node", "validate_sepsets"]

_VALID_CODES = (NONE, CIRCLE, ARROW, TAIL)


def validate_marks(marks: Any) -> np.ndarray:
    """Check a marks matrix: square, non-empty, integer edge-mark codes, zero diagonal, an edge
    marked at both ends or at neither.

    Args:
        marks: anything ``np.asarray`` accepts.

    Returns:
        A read-only ``int8`` copy.
    """
    try:
        arr = np.asarray(marks)
    except Exception as exc:  # ragged lists and the like
        raise InvalidInputError(
            f"marks must be a square (n, n) integer matrix; got {marks!r}"
        ) from exc
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise InvalidInputError(f"marks must be a square (n, n) matrix; got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InvalidInputError("marks must have at least one node; got shape (0, 0)")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise InvalidInputError("marks must hold integer mark codes; got non-integer floats")
    elif arr.dtype.kind not in "iu":
        raise InvalidInputError(f"marks must hold integer mark codes; got dtype {arr.dtype}")
    codes = arr.astype(np.int64)
    bad = np.argwhere(~np.isin(codes, _VALID_CODES))
    if bad.size:
        i, j = (int(x) for x in bad[0])
        raise InvalidInputError(
            f"marks[{i}, {j}] = {codes[i, j]} is not an edge-mark code "
            "(allowed: 0=none, 1=circle, 2=arrow, 3=tail)"
        )
    diag = np.flatnonzero(np.diag(codes))
    if diag.size:
        i = int(diag[0])
        raise InvalidInputError(
            f"marks[{i}, {i}] = {codes[i, i]}: a node cannot have an edge to itself "
            "(the diagonal must be 0)"
        )
    asym = np.argwhere((codes == NONE) != (codes.T == NONE))
    if asym.size:
        i, j = (int(x) for x in asym[0])
        raise InvalidInputError(
            f"marks[{i}, {j}] = {codes[i, j]} but marks[{j}, {i}] = {codes[j, i]}: an edge needs "
            "a mark at both ends (both codes zero, or both non-zero)"
        )
    out = codes.astype(np.int8)
    out.flags.writeable = False
    return out


def validate_node(value: Any, n: int, name: str) -> int:
    """Check a node index.

    Args:
        value: the index (an int, not a bool).
        n: number of nodes.
        name: how the message names the value.

    Returns:
        ``int(value)``, in ``0..n-1``.
    """
    if not is_int(value):
        raise InvalidInputError(f"{name} must be a node index (int); got {value!r}")
    if not 0 <= int(value) < n:
        raise InvalidInputError(f"{name} = {value} is out of range for {n} nodes (0..{n - 1})")
    return int(value)


def validate_items(items: Sequence[Any] | None, n: int) -> tuple[str, ...] | None:
    """Check the item tokens of the nodes.

    Args:
        items: one token per node, or ``None``.
        n: number of nodes.

    Returns:
        The tokens as strings, or ``None``.
    """
    if items is None:
        return None
    if isinstance(items, str | bytes):
        raise InvalidInputError(f"items must be a list of item tokens, one per node; got {items!r}")
    items = tuple(items)
    if len(items) != n:
        raise InvalidInputError(
            f"items has {len(items)} entries but marks has {n} nodes; give one item token per node"
        )
    return tuple(str(x) for x in items)


def validate_sepsets(
    sepsets: Mapping[Any, Iterable[int]] | None, marks: np.ndarray
) -> dict[tuple[int, int], tuple[int, ...]]:
    """Check separating sets against the marks.

    Args:
        sepsets: ``{(i, j): (k, ...)}`` for non-adjacent pairs, or ``None``.
        marks: the validated marks.

    Returns:
        ``{(i, j): sorted members}`` with ``i < j``, sorted by pair.
    """
    if sepsets is None:
        return {}
    if not isinstance(sepsets, Mapping):
        raise InvalidInputError(f"sepsets must be a dict {{(i, j): (k, ...)}}; got {sepsets!r}")
    n = marks.shape[0]
    out: dict[tuple[int, int], tuple[int, ...]] = {}
    for key, value in sepsets.items():
        if not isinstance(key, tuple | list) or len(key) != 2:
            raise InvalidInputError(f"sepsets key {key!r} must be a pair of node indices (i, j)")
        i = validate_node(key[0], n, f"sepsets key {key!r}: node")
        j = validate_node(key[1], n, f"sepsets key {key!r}: node")
        if i == j:
            raise InvalidInputError(f"sepsets key {key!r} pairs a node with itself")
        i, j = min(i, j), max(i, j)
        if marks[i, j] != NONE:
            raise InvalidInputError(
                f"sepsets[{key!r}] is given but nodes {i} and {j} are adjacent in marks"
            )
        if (i, j) in out:
            raise InvalidInputError(f"sepsets has the pair ({i}, {j}) twice")
        try:
            members = tuple(value)
        except TypeError as exc:
            raise InvalidInputError(
                f"sepsets[{key!r}] must be a tuple of node indices; got {value!r}"
            ) from exc
        nodes = sorted({validate_node(k, n, f"sepsets[{key!r}] member") for k in members})
        if i in nodes or j in nodes:
            raise InvalidInputError(f"sepsets[{key!r}] = {value!r} contains one of its own pair")
        out[(i, j)] = tuple(nodes)
    return dict(sorted(out.items()))


def validate_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a meta dict.

    Args:
        meta: a JSON-serialisable dict, or ``None``.

    Returns:
        A deep, JSON-shaped copy (``{}`` for ``None``).
    """
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise InvalidInputError(f"meta must be a JSON-serialisable dict; got {type(meta).__name__}")
    try:
        # a deep, JSON-shaped copy: later changes to the caller's dict do not leak in
        return json.loads(json.dumps(dict(meta)))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"meta must be JSON-serialisable: {exc}") from exc
