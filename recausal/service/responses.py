"""The service's JSON answers: every float finite (JSON has no inf or NaN)."""

from __future__ import annotations

import math
from typing import Any

from fastapi.responses import JSONResponse


def finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None.

    Args:
        obj: a JSON-ready value (dicts, lists, tuples, scalars).

    Returns:
        The same structure, tuples as lists, ``inf`` and ``NaN`` as None.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def finite_json(content: Any) -> JSONResponse:
    """A 200 JSON answer of ``content`` with its non-finite floats as None (:func:`finite`).

    Args:
        content: a JSON-ready value.

    Returns:
        The JSON response.
    """
    return JSONResponse(finite(content))


__all__ = ["finite", "finite_json"]
