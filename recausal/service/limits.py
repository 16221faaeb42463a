"""The service's bounds: on the work one request can cause, on the request body, on how long a
client may take to send a request, on the queue of each model, and on the Host header.

The defaults of ``recausal serve`` and :func:`~recausal.service.app.create_app` live here.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from recausal.errors import InvalidInputError
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

#: requests a model may hold waiting behind the one it works on; more get 503 + Retry-After
QUEUE_SIZE = 16
#: seconds a request may take, its wait for its model included: past it a request still
#: waiting gets 503 (it never runs); one still being computed gets 504 (work that cannot stop
#: early finishes in the model's worker, and its answer is dropped)
TIME_BUDGET_S = 30.0
#: share of a request's time budget, counted from its arrival, after which an explanation
#: stops searching (before its next model call) and answers what it found, marked incomplete;
#: the rest of the budget is left for the model call under way and for the answer
SEARCH_SHARE = 0.8
#: seconds a client has to send a whole request, head and body; a slower one gets 408 and is
#: disconnected
READ_TIMEOUT_S = 10.0
#: seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``)
KEEP_ALIVE_S = 5
#: largest request head (request line and headers) in bytes (h11's incomplete-event limit)
MAX_HEADER_BYTES = 16 * 1024
#: Host header values served by default (loopback only: a guard against DNS rebinding)
DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")

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


# --------------------------------------------------------------------------- Host header
def normalize_hosts(hosts: Iterable[str]) -> list[str]:
    """Host names as the Host header spells them: lower case, IPv6 addresses in brackets.

    Args:
        hosts: names, addresses, ``*.domain`` patterns or ``*`` (any host).

    Returns:
        The names, without repeats, in the order given.
    """
    out: list[str] = []
    for host in hosts:
        if not isinstance(host, str) or not host.strip():
            raise InvalidInputError(f"an allowed host must be a non-empty name, got {host!r}")
        name = host.strip().lower()
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"
        if "*" in name[1:] or (name.startswith("*") and name != "*" and name[:2] != "*."):
            raise InvalidInputError(
                f"allowed host {host!r}: a wildcard must be like '*.example.com'"
            )
        if name not in out:
            out.append(name)
    return out


class HostCheck:
    """ASGI middleware: answer 400 (a JSON error) to a request whose Host header is not one of
    ``allowed_hosts`` (starlette's :class:`TrustedHostMiddleware` does the matching).

    A web page on another site cannot reach a loopback-only service through a name it
    controls that resolves to 127.0.0.1 (DNS rebinding): its requests carry that name.

    Args:
        app: the wrapped ASGI app.
        allowed_hosts: the accepted names (see :func:`normalize_hosts`); ``*`` accepts any.
    """

    _PASSED = "recausal.host_ok"

    def __init__(self, app: Any, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = normalize_hosts(allowed_hosts)
        self._check = TrustedHostMiddleware(
            self._passed, allowed_hosts=self.allowed_hosts, www_redirect=False
        )

    async def _passed(self, scope: dict, receive: Callable, send: Callable) -> None:
        scope[self._PASSED] = True
        await self.app(scope, receive, send)

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        """Pass the request on when its Host is allowed, else answer 400."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        async def send_if_passed(message: dict) -> None:
            if scope.get(self._PASSED):
                await send(message)

        await self._check(scope, receive, send_if_passed)
        if not scope.get(self._PASSED):
            host = Headers(scope=scope).get("host")
            allowed = ", ".join(self.allowed_hosts)
            response = error_response(
                400, f"Host header {host!r} not allowed; this service answers to: {allowed}"
            )
            await response(scope, receive, send)


# --------------------------------------------------------------------------- uvicorn
def _timeout_body(read_timeout: float) -> bytes:
    message = f"request not received within {read_timeout:g} s"
    body = json.dumps({"error": message}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


@functools.cache
def timed_h11_protocol(read_timeout: float = READ_TIMEOUT_S) -> type:
    """uvicorn's h11 protocol with a deadline on reading each request.

    uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and the size of a
    request head (``h11_max_incomplete_event_size``) but not the time a client takes to send
    a request: a client that sends half its headers or half its body would hold its
    connection open for ever. With this protocol a request must arrive whole within
    ``read_timeout`` seconds of its first byte (or of the connection); otherwise the client
    gets 408 (when no answer has started) and the connection is closed.

    Args:
        read_timeout: seconds allowed to send one request, head and body.

    Returns:
        A subclass of ``uvicorn.protocols.http.h11_impl.H11Protocol`` (for uvicorn's ``http``).
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    if not read_timeout > 0:
        raise InvalidInputError(f"the read timeout must be positive, got {read_timeout!r}")
    timeout_answer = _timeout_body(read_timeout)

    class TimedH11Protocol(H11Protocol):
        """H11Protocol that drops a client not sending its request within the deadline."""

        _read_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.transport.is_closing():
                self._disarm()
            elif self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
                self._arm()  # a request begun (or its body) but not received whole
            else:
                self._disarm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._read_timer is None:
                self._read_timer = self.loop.call_later(read_timeout, self._read_timed_out)

        def _disarm(self) -> None:
            if self._read_timer is not None:
                self._read_timer.cancel()
                self._read_timer = None

        def _read_timed_out(self) -> None:
            self._read_timer = None
            if self.transport.is_closing():
                return
            state = self.conn.their_state
            if state is h11.SEND_BODY:  # the head arrived: the app may be reading the body
                cycle = self.cycle
                if cycle.response_started:  # answered already (e.g. 413): just hang up
                    self.transport.close()
                    return
                cycle.disconnected = True  # the app's receive() now returns http.disconnect
                cycle.message_event.set()
            elif state is not h11.IDLE:
                return  # received whole meanwhile
            self.transport.write(timeout_answer)
            self.transport.close()

    TimedH11Protocol.__qualname__ = f"TimedH11Protocol[{read_timeout:g}s]"
    return TimedH11Protocol


def server_options(read_timeout: float = READ_TIMEOUT_S) -> dict[str, Any]:
    """The uvicorn settings that bound slow and oversized requests.

    Args:
        read_timeout: seconds a client has to send a whole request.

    Returns:
        Keyword arguments for ``uvicorn.run`` or ``uvicorn.Config``: the h11 protocol with a
        read deadline (:func:`timed_h11_protocol`), ``timeout_keep_alive`` and
        ``h11_max_incomplete_event_size``.
    """
    return {
        "http": timed_h11_protocol(float(read_timeout)),
        "timeout_keep_alive": KEEP_ALIVE_S,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
