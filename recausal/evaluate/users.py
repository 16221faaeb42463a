"""Which users an evaluation explains: ``all``, the first N, a half, a file of ids, or a list.

The two halves are fixed: ``dev`` holds the users at even places of the dataset's user order
(0, 2, 4, ...), ``held-out`` those at odd places. The explainers' settings are chosen on
``dev`` and reported on ``held-out`` (results/study/README.md).
"""

from __future__ import annotations

import codecs
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recausal._checks import is_int
from recausal.errors import InvalidInputError, UnknownUserError

if TYPE_CHECKING:
    from recausal.models import SequentialModel

#: what ``users`` may be
Users = str | int | os.PathLike | Sequence[str]
#: the fixed halves of a dataset's users (see the module docstring)
HALVES = ("dev", "held-out")


def parse_users(text: str) -> str | int:
    """Read a users argument given as text (the one parser of the command line and the API).

    Args:
        text: ``all``, ``dev``, ``held-out``, a positive number, or the path of a file of
            user ids.

    Returns:
        ``"all"``, the half's name, the number as an int, or the path as given
        (``InvalidInputError`` for anything else).
    """
    if text == "all" or text in HALVES:
        return text
    if text.strip().isdigit():
        number = int(text)
        if number < 1:
            raise InvalidInputError(f"users must be a positive number of users, got {number}")
        return number
    if not Path(text).is_file():
        raise InvalidInputError(
            f"users must be 'all', 'dev', 'held-out', a positive number, or a file of user "
            f"ids; got {text!r} "
            "(no such file)"
        )
    return text


def _read_ids(path: str) -> list[str]:
    """The user ids of a UTF-8 file (a leading byte-order mark is allowed): one a line, blank
    lines and ``#`` comments skipped. ``InvalidInputError`` naming the file (and the offset of a
    byte that is not UTF-8) when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"users file {path!r} cannot be read ({exc.strerror or exc})"
        ) from None
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        text = data[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = data.count(b"\n", 0, offset) + 1
        raise InvalidInputError(
            f"users file {path!r}: byte 0x{data[offset]:02x} at offset {offset} (line {line}) is "
            "not UTF-8; save the file as UTF-8 text, one user id a line"
        ) from None
    lines = text.splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def resolve_users(model: SequentialModel, users: Users) -> list[str]:
    """The user ids to evaluate, in order.

    Args:
        model: the model; its dataset holds the users (in RecBole's user order).
        users: ``"all"``: every user; ``"dev"`` / ``"held-out"``: a fixed half (see the module
            docstring); an integer ``N`` (or its string): the first N (all if
            fewer); a path to a text file: one user id per line (blank lines and ``#``
            comments skipped); a list: those ids. Ids must be known and distinct.

    Returns:
        The user ids.
    """
    from recausal.data import dataset_histories, resolve_dataset

    known = list(dataset_histories(resolve_dataset(model.dataset_name)))
    if isinstance(users, bool):
        raise InvalidInputError(f"users must be 'all', N, a file or a list, got {users!r}")
    if is_int(users):
        if users < 1:  # type: ignore[operator]
            raise InvalidInputError(f"users must be a positive number of users, got {users}")
        return known[: int(users)]  # type: ignore[call-overload]
    if isinstance(users, str | os.PathLike):
        parsed = parse_users(os.fspath(users))
        if parsed == "all":
            return known
        if parsed in HALVES:
            return known[HALVES.index(parsed) :: 2]
        if isinstance(parsed, int):
            return known[:parsed]
        chosen = _read_ids(parsed)
    else:
        chosen = [str(u) for u in users]
    if not chosen:
        raise InvalidInputError(f"users: no user ids given ({users!r})")
    seen: set[str] = set()
    known_set = set(known)
    for user in chosen:
        if user in seen:
            raise InvalidInputError(f"users: user {user!r} is listed twice")
        if user not in known_set:
            raise UnknownUserError(
                f"users: user {user!r} is not in the dataset of model {model.name}"
            )
        seen.add(user)
    return chosen
