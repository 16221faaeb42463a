"""The service's bounds on the work one request can cause, and the request body cap."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException

from recausal.service.errors import error_response

#: hard cap on the items of a history sent in a request (longer ones are refused, 422)
MAX_HISTORY = 1000
#: hard cap on a request body, in bytes (larger ones are refused, 413)
MAX_BODY_BYTES = 64 * 1024
#: most items a request may ask for
MAX_K = 100
#: largest explanation set a request may ask for
MAX_SET_SIZE = 10
#: largest seed a request may give
MAX_SEED = 2**32 - 1

#: explainer parameters the service imposes (bounds the work one request can cause)
SERVICE_LIMITS: dict[str, dict[str, Any]] = {"exhaustive": {"max_candidates": 20_000}}


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 (by the declared
    length before reading, or while reading a body sent without one)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Pass the request on, counting its body's bytes."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.strip().isdigit() and int(declared) > self.limit:
            response = error_response(413, f"request body larger than {self.limit} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise StarletteHTTPException(
                        413, f"request body larger than {self.limit} bytes"
                    )
            return message

        await self.app(scope, limited_receive, send)
