"""Read RecBole atomic files (``.inter``, ``.item``, ``.user``) into typed pandas frames.

An atomic file is tab separated; its first line names each column as ``name:type`` with
type one of ``token``, ``token_seq``, ``float``, ``float_seq``
(https://recbole.io/docs/user_guide/data/atomic_files.html). Sequence columns hold values
separated by single spaces.

Columns are returned without the type suffix. ``token`` columns are ``str``, ``float``
columns ``float64`` (an empty cell is NaN), ``token_seq`` columns tuples of ``str`` and
``float_seq`` columns tuples of ``float``. The types are kept in
``frame.attrs["field_types"]`` (a dict from column name to type).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recausal.errors import InvalidInputError

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
"""The column types an atomic file header may declare."""

FIELD_SEPARATOR = "\t"
SEQ_SEPARATOR = " "


@dataclass(frozen=True)
class AtomicField:
    """One column of an atomic file: its name and declared type."""

    name: str
    type: str


def parse_header(line: str, *, source: str = "header") -> tuple[AtomicField, ...]:
    """Parse the first line of an atomic file into its fields.

    ``source`` names the file in error messages. Raises :class:`InvalidInputError` when a
    column lacks ``:type``, has an empty name, an unknown type, or repeats a name.
    """
    text = line.rstrip("\r\n")
    if not text.strip():
        raise InvalidInputError(
            f"{source}: the header line is empty; expected e.g. 'item_id:token'"
        )
    fields: list[AtomicField] = []
    seen: set[str] = set()
    for column in text.split(FIELD_SEPARATOR):
        name, sep, ftype = column.partition(":")
        if not sep or not name or ":" in ftype or any(c.isspace() for c in name):
            raise InvalidInputError(
                f"{source}: header column {column!r} is not of the form 'name:type' "
                f"(type one of {', '.join(FIELD_TYPES)}; columns separated by tabs)"
            )
        if ftype not in FIELD_TYPES:
            raise InvalidInputError(
                f"{source}: header column {column!r} has type {ftype!r}; "
                f"expected one of {', '.join(FIELD_TYPES)}"
            )
        if name in seen:
            raise InvalidInputError(f"{source}: header names column {name!r} twice")
        seen.add(name)
        fields.append(AtomicField(name, ftype))
    return tuple(fields)


def read_header(path: str | os.PathLike) -> tuple[AtomicField, ...]:
    """Read and parse only the header line of the atomic file at ``path``."""
    path = _existing_file(path)
    with path.open(encoding="utf-8", newline="") as handle:
        first = handle.readline()
    return parse_header(first, source=str(path))


def read_atomic(path: str | os.PathLike) -> pd.DataFrame:
    """Read the atomic file at ``path`` into a DataFrame with typed columns.

    Cells are taken literally (no quoting), in UTF-8. Raises :class:`InvalidInputError` for a
    missing file, a malformed header, a row with the wrong number of cells, or a ``float``
    cell that is not a number.
    """
    path = _existing_file(path)
    fields = read_header(path)
    columns: list[list[str]] = [[] for _ in fields]
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            handle.readline()
            for line_no, line in enumerate(handle, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                cells = line.split(FIELD_SEPARATOR)
                if len(cells) != len(fields):
                    raise InvalidInputError(
                        f"{path}: line {line_no} has {len(cells)} tab-separated cells, "
                        f"the header declares {len(fields)}"
                    )
                for column, cell in zip(columns, cells, strict=True):
                    column.append(cell)
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path}: not UTF-8 text ({exc})") from None
    raw = pd.DataFrame(
        {f.name: pd.Series(c, dtype=object) for f, c in zip(fields, columns, strict=True)}
    )
    frame = pd.DataFrame(index=raw.index)
    for field in fields:
        frame[field.name] = _convert(raw[field.name], field, path)
    frame.attrs["field_types"] = {f.name: f.type for f in fields}
    frame.attrs["source"] = str(path)
    return frame


def _existing_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"atomic file {str(path)!r} does not exist or is not a file")
    return path


def _to_float(values: pd.Series, field: AtomicField, path: Path) -> pd.Series:
    converted = pd.to_numeric(values.replace("", "nan"), errors="coerce")
    bad = converted.isna() & ~values.isin(["", "nan", "NaN"])
    if bad.any():
        row = int(bad.idxmax())
        raise InvalidInputError(
            f"{path}: column {field.name!r} is declared float but data row {row + 1} holds "
            f"{values.iloc[row]!r}"
        )
    return converted.astype("float64")


def _convert(values: pd.Series, field: AtomicField, path: Path) -> pd.Series:
    if field.type == "token":
        return values.astype(str)
    if field.type == "float":
        return _to_float(values, field, path)
    if field.type == "token_seq":
        return values.map(lambda s: tuple(t for t in s.split(SEQ_SEPARATOR) if t))

    # float_seq
    def parse(cell: str) -> tuple[float, ...]:
        try:
            return tuple(float(t) for t in cell.split(SEQ_SEPARATOR) if t)
        except ValueError:
            raise InvalidInputError(
                f"{path}: column {field.name!r} is declared float_seq but holds {cell!r}"
            ) from None

    return values.map(parse)
