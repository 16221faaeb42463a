"""``recausal explore``: ``recausal serve`` with the shipped ml-100k models, and the explorer
(served at ``/``) opened in the browser."""

from __future__ import annotations

import socket
import threading
import time

import click

from recausal.service.cli import ANY_ADDRESS, log_level_option, serve_command

#: the models ``recausal explore`` serves: the shipped bundles
EXPLORE_MODELS = ("sasrec-ml100k", "bert4rec-ml100k")
#: seconds to wait for the service to listen (the models load first) before giving up
START_TIMEOUT_S = 300.0


def explorer_url(host: str, port: int) -> str:
    """The explorer's address for ``--host`` and ``--port`` (loopback for a wildcard host).

    Args:
        host: the address listened on.
        port: the TCP port.

    Returns:
        ``http://HOST:PORT/``.
    """
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def wait_for_server(host: str, port: int, timeout: float = START_TIMEOUT_S) -> bool:
    """Whether ``host:port`` accepts connections within ``timeout`` seconds.

    Args:
        host: the address listened on (a wildcard address is reached through loopback).
        port: the TCP port.
        timeout: seconds to wait.

    Returns:
        True once a connection succeeds, False on time-out.
    """
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _open_browser(host: str, port: int) -> None:
    import webbrowser

    if wait_for_server(host, port):
        webbrowser.open(explorer_url(host, port))


@click.command("explore")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="TCP port."
)
@click.option("--no-browser", is_flag=True, help="Do not open the explorer in a browser.")
@log_level_option("warning")
@click.pass_context
def explore_command(
    ctx: click.Context, host: str, port: int, no_browser: bool, log_level: str
) -> None:
    """Explore the explanations of the shipped ml-100k models in the browser.

    Serves sasrec-ml100k and bert4rec-ml100k as ``recausal serve`` does (the explorer at /,
    the API docs at /docs) and opens the explorer once the service listens.
    """
    click.echo(f"explorer: {explorer_url(host, port)} (loading {', '.join(EXPLORE_MODELS)})")
    if not no_browser:
        threading.Thread(target=_open_browser, args=(host, port), daemon=True).start()
    ctx.invoke(serve_command, models=EXPLORE_MODELS, host=host, port=port, log_level=log_level)


__all__ = ["EXPLORE_MODELS", "explore_command", "explorer_url", "wait_for_server"]
