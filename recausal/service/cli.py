"""``recausal serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TypeVar

import click

from recausal.errors import RecausalError

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: --host values that listen on every address (no one Host header names them)
ANY_ADDRESS = {"", "0.0.0.0", "::"}

_Command = TypeVar("_Command", bound=Callable[..., object])


def log_level_option(default: str) -> Callable[[_Command], _Command]:
    """The ``--log-level`` option of the commands that run uvicorn.

    Args:
        default: the level when the option is not given.

    Returns:
        The click decorator.
    """
    return click.option(
        "--log-level",
        default=default,
        show_default=True,
        type=click.Choice(["critical", "error", "warning", "info", "debug"]),
        help="uvicorn's log level.",
    )


def check_port(host: str, port: int) -> None:
    """Fail unless ``host:port`` can be listened on now (bind and release every address).

    The sockets are bound as uvicorn binds them (``SO_REUSEADDR``; IPv6 sockets IPv6 only), so
    a port held by another server fails and one merely left in TIME_WAIT does not.

    Args:
        host: the address or name to listen on.
        port: the TCP port.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise RecausalError(f"cannot listen on {host!r}: {exc.strerror}") from None
    for family, kind, proto, _, address in dict.fromkeys(infos):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise RecausalError(
                        f"port {port} on {host} is already in use; stop the other server or "
                        "pick another --port"
                    ) from None
                raise RecausalError(
                    f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                ) from None


def default_allowed_hosts(host: str) -> list[str]:
    """The Host header values ``recausal serve`` answers by default.

    Args:
        host: the ``--host`` value.

    Returns:
        The loopback names and addresses, and ``host`` itself unless it is a wildcard
        address (``0.0.0.0``, ``::``).
    """
    from recausal.service.limits import DEFAULT_ALLOWED_HOSTS

    extra = [] if host in ANY_ADDRESS else [host]
    return [*DEFAULT_ALLOWED_HOSTS, *extra]


@click.command("serve")
@click.option(
    "--model",
    "-m",
    "models",
    multiple=True,
    metavar="[NAME=]BUNDLE",
    help="A model to serve: NAME=PATH, a bundle directory or a shipped bundle's name "
    "(repeatable; the first is the default) [default: sasrec-ml100k].",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port."
)
@click.option(
    "--queue-size",
    default=None,
    type=click.IntRange(min=0),
    metavar="N",
    help="Requests each model may hold waiting behind the one it computes; more get 503 "
    "with Retry-After [default: 16].",
)
@click.option(
    "--time-budget",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Most seconds a request may take, its wait for its model included: past it 503 "
    "while it waits, 504 while it computes; an explanation stops searching at 80% of it and "
    "answers what it found, marked incomplete [default: 30].",
)
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A Host header value to answer, others get 400 (repeatable; '*' for any, "
    "'*.example.com' for a domain) [default: 127.0.0.1, localhost, [::1] and --host].",
)
@click.option(
    "--read-timeout",
    default=None,
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Most seconds a client may take to send a request, headers and body; a slower one "
    "gets 408 and is disconnected [default: 10].",
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    metavar="DEVICE",
    help="Torch device the models run on: cpu, cuda, cuda:N or mps.",
)
@log_level_option("info")
def serve_command(
    models: tuple[str, ...],
    host: str,
    port: int,
    queue_size: int | None,
    time_budget: float | None,
    allowed_hosts: tuple[str, ...],
    read_timeout: float | None,
    device: str,
    log_level: str,
) -> None:
    """Serve recommendations and explanations over HTTP (FastAPI; docs at /docs)."""
    from recausal.errors import require_extra

    require_extra("fastapi", "serve")
    uvicorn = require_extra("uvicorn", "serve")
    from recausal.models import DEFAULT_MODEL, check_device, load_model
    from recausal.service import limits
    from recausal.service.app import create_app, parse_model_specs

    specs = parse_model_specs(list(models) or [DEFAULT_MODEL])
    target = check_device(device)
    hosts = limits.normalize_hosts(allowed_hosts or default_allowed_hosts(host))
    options = limits.server_options(limits.READ_TIMEOUT_S if read_timeout is None else read_timeout)
    check_port(host, port)  # before the slow part: loading the models
    loaded = {name: load_model(spec, device=target) for name, spec in specs.items()}
    app = create_app(
        loaded,
        queue_size=limits.QUEUE_SIZE if queue_size is None else queue_size,
        time_budget=limits.TIME_BUDGET_S if time_budget is None else time_budget,
        allowed_hosts=hosts,
    )
    check_port(host, port)  # still free after loading (uvicorn binds it right after)
    if host not in _LOOPBACK:
        click.echo(
            f"recausal: warning: listening on {host}, not loopback: the service has no "
            "authentication",
            err=True,
        )
    names = ", ".join(app.state.models)
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    click.echo(f"serving {names} on {url} (docs: {url}/docs)")
    try:
        uvicorn.run(app, host=host, port=port, log_level=log_level, **options)
    finally:
        app.state.pool.close()


__all__ = [
    "ANY_ADDRESS",
    "check_port",
    "default_allowed_hosts",
    "log_level_option",
    "serve_command",
]
