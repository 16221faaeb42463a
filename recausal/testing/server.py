"""An ASGI app served by uvicorn on a loopback socket in a background thread (for tests)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serving(app: Any, **options: Any) -> Iterator[tuple[str, Any]]:
    """Serve ``app`` on 127.0.0.1 (a free port) until the block ends.

    Args:
        app: the ASGI app.
        **options: more ``uvicorn.Config`` settings (e.g. ``recausal.service.limits``'
            ``server_options()``).

    Returns:
        A context manager giving the base URL and the ``uvicorn.Server``.

    Raises:
        RuntimeError: the server did not start within 20 s.
    """
    import uvicorn

    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP (else
    # Nagle's algorithm and delayed ACKs add 40 ms to every answer)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options.setdefault("log_level", "warning")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
