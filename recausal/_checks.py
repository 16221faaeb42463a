"""Argument checks shared by every layer; each raises InvalidInputError naming the value."""

from __future__ import annotations

import numbers
from typing import Any

from recausal.errors import InvalidInputError


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer (Python or numpy) and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(
    value: Any, name: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    """Return ``value`` as an ``int`` after checking its type and range.

    Args:
        value: the value to check.
        name: the parameter's name, used in the message.
        minimum: the smallest value allowed (inclusive), or ``None``.
        maximum: the largest value allowed (inclusive), or ``None``.

    Returns:
        ``int(value)``.

    Raises:
        InvalidInputError: ``value`` is not an integer, is a bool, or is out of range.
    """
    if not is_int(value):
        raise InvalidInputError(f"{name} must be an integer; got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidInputError(f"{name} must be >= {minimum}; got {value}")
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name} must be <= {maximum}; got {value}")
    return value
