"""``recausal serve``: run the HTTP service with uvicorn."""

from __future__ import annotations

import click

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


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
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="uvicorn's log level.",
)
def serve_command(models: tuple[str, ...], host: str, port: int, log_level: str) -> None:
    """Serve recommendations and explanations over HTTP (FastAPI; docs at /docs)."""
    from recausal.errors import require_extra

    require_extra("fastapi", "serve")
    uvicorn = require_extra("uvicorn", "serve")
    from recausal.models import DEFAULT_MODEL
    from recausal.service.app import create_app, parse_model_specs

    specs = parse_model_specs(list(models) or [DEFAULT_MODEL])
    app = create_app(specs)
    if host not in _LOOPBACK:
        click.echo(
            f"recausal: warning: listening on {host}, not loopback: the service has no "
            "authentication",
            err=True,
        )
    names = ", ".join(app.state.models)
    click.echo(f"serving {names} on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


__all__ = ["serve_command"]
