"""The HTTP service (``recausal serve``); needs the ``serve`` extra (FastAPI, uvicorn).

``create_app`` is imported on first use, so that this package, and the ``serve`` command's
error message when FastAPI is missing, load without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from recausal.errors import require_extra

        require_extra("fastapi", "serve")
        from recausal.service.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
