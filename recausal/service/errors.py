"""The service's error answers: every failure is a JSON body ``{"error": ..., "detail": ...}``.

Invalid requests get 422, unknown users and models 404, bad input to the model 4xx, a model
whose queue is full (or a request that waited past its time budget) 503 with ``Retry-After``,
one whose computation ran past its budget 504 (an explanation that runs out of budget is no
error: it answers 200 with what it found, ``"complete": false``), anything unexpected 500
(with the exception's type only).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from recausal.errors import (
    InvalidInputError,
    RecausalError,
    UnknownItemError,
    UnknownUserError,
    UnsupportedModelError,
)

_BAD_BODY = "There was an error parsing the body"


def error_response(
    status: int, message: str, detail: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """An error answer.

    Args:
        status: the HTTP status.
        message: the ``error`` text.
        detail: an optional ``detail`` value.
        headers: optional response headers (``Retry-After``, ...).

    Returns:
        The JSON response.
    """
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


def unavailable(message: str, retry_after: float) -> StarletteHTTPException:
    """A 503 error (the service is busy) telling the client when to try again.

    Args:
        message: the ``error`` text.
        retry_after: seconds to wait, rounded up to a whole second (at least 1) for the
            ``Retry-After`` header.

    Returns:
        The exception to raise from a route.
    """
    seconds = max(1, math.ceil(retry_after)) if math.isfinite(retry_after) else 1
    return StarletteHTTPException(503, message, headers={"Retry-After": str(seconds)})


def status_of(exc: RecausalError) -> int:
    """The HTTP status of a recausal error.

    Args:
        exc: the error.

    Returns:
        404 for an unknown user, 422 for an unknown item or invalid input, else 400.
    """
    if isinstance(exc, UnknownUserError):
        return 404
    if isinstance(exc, UnknownItemError | InvalidInputError):
        return 422
    if isinstance(exc, UnsupportedModelError):
        return 400
    return 400


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    detail = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()[:20]
    ]
    summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail[:5])
    return error_response(422, f"invalid request: {summary}", detail)


async def _recausal(request: Request, exc: RecausalError) -> JSONResponse:
    return error_response(status_of(exc), str(exc))


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = str(exc.detail)
    if exc.status_code == 400 and message == _BAD_BODY:
        message = (
            "could not parse the request body as JSON (nested too deeply, a number too "
            "long, or not UTF-8)"
        )
    return error_response(exc.status_code, message, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    return error_response(500, f"internal error ({type(exc).__name__})")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with a JSON error body.

    Args:
        app: the FastAPI app.
    """
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    app.add_exception_handler(RecausalError, _recausal)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
