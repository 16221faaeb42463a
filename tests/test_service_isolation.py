"""The service under load and abuse, on a real loopback socket: a slow model does not slow the
others or /health, full queues and spent budgets answer 503/504, wrong Host headers 400,
half-sent requests are dropped, and a port in use is one line with exit status 2."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
import httpx
import uvicorn

from recausal.errors import InvalidInputError
from recausal.service.app import create_app
from recausal.service.limits import DEFAULT_ALLOWED_HOSTS, normalize_hosts, server_options
from recausal.testing.server import serving

#: seconds a client has to send a request, in these tests
READ_TIMEOUT = 0.5


class _SlowModel:
    """A model that sleeps in ``encode`` (each explanation encodes its history once) and in
    ``recommend`` (``per_k`` seconds per item asked for); counts the calls that slept."""

    def __init__(self, model: Any, explain_delay: float = 0.0, per_k: float = 0.0) -> None:
        self._model = model
        self._explain_delay = explain_delay
        self._per_k = per_k
        self.calls = 0

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        time.sleep(self._explain_delay)
        return self._model.encode(*args, **kwargs)

    def recommend(self, *args: Any, k: int = 10, **kwargs: Any) -> Any:
        self.calls += 1
        time.sleep(self._per_k * k)
        return self._model.recommend(*args, k=k, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@contextlib.contextmanager
def _serving(app: Any) -> Iterator[tuple[str, uvicorn.Server]]:
    """``app`` under uvicorn on a loopback socket, with the limits ``recausal serve`` sets:
    its URL and the server."""
    with serving(app, **server_options(READ_TIMEOUT)) as (url, srv):
        try:
            yield url, srv
        finally:
            app.state.pool.close()


def _threads_borrowed(srv: uvicorn.Server) -> int:
    """Worker threads of the server's default thread pool (anyio's) in use right now."""
    import anyio.to_thread

    async def borrowed() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().borrowed_tokens)

    loop = srv.servers[0].get_loop()
    return asyncio.run_coroutine_threadsafe(borrowed(), loop).result(timeout=5)


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting for the service")
        time.sleep(0.005)


@pytest.fixture(scope="module")
def two_models(sasrec, bert4rec):
    """A fast SASRec and a BERT4Rec whose explanations take 0.2 s, served as ``recausal
    serve`` serves (loopback Host names only, default queue)."""
    app = create_app(
        {"fast": sasrec, "slow": _SlowModel(bert4rec, explain_delay=0.2)},
        allowed_hosts=DEFAULT_ALLOWED_HOSTS,
    )
    with _serving(app) as (url, srv):
        yield app, url, srv


# ------------------------------------------------------------------------------ isolation
def test_a_slow_model_does_not_slow_the_others(two_models, sasrec):
    """16 clients keep the slow model's queue full; the fast model and /health stay fast, and
    the waiting requests hold none of the server's worker threads."""
    app, url, srv = two_models
    slow = app.state.models["slow"]
    stop = threading.Event()
    explain = {"model": "slow", "user": "1", "explainer": "occlusion", "max_size": 2, "k": 5}

    def hammer(_: int) -> list[int]:
        statuses = []
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                statuses.append(c.post("/explain", json=explain).status_code)
        return statuses

    hist = sasrec.user_history("2")[-sasrec.capacity :]
    expected = list(sasrec.recommend([hist], k=5)[0].items)
    recommend_ms, health_ms, queued, borrowed = [], [], [], []
    with ThreadPoolExecutor(16) as clients:
        hammers = [clients.submit(hammer, i) for i in range(16)]
        _wait_for(lambda: slow.pending >= 12)
        with httpx.Client(base_url=url, timeout=30) as c:
            for _ in range(40):  # bounded: 80 timed requests, ~2 s
                t0 = time.perf_counter()
                r = c.post("/recommend", json={"model": "fast", "history": hist, "k": 5})
                recommend_ms.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
                assert [row["item"] for row in r.json()["recommendations"]] == expected
                t0 = time.perf_counter()
                r = c.get("/health")
                health_ms.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
                queued.append(slow.pending)
                borrowed.append(_threads_borrowed(srv))
                time.sleep(0.02)
        stop.set()
        statuses = [s for h in hammers for s in h.result(timeout=60)]
    rec = np.percentile(recommend_ms, [50, 95])
    hel = np.percentile(health_ms, [50, 95])
    print(
        f"\nisolation: {len(statuses)} slow /explain answered (16 clients), slow queue "
        f"{min(queued)}-{max(queued)} pending; fast /recommend p50 {rec[0]:.1f} ms, p95 "
        f"{rec[1]:.1f} ms, max {max(recommend_ms):.1f} ms; /health p50 {hel[0]:.1f} ms, "
        f"p95 {hel[1]:.1f} ms, max {max(health_ms):.1f} ms"
    )
    assert set(statuses) == {200}, sorted(set(statuses))
    assert np.median(queued) >= 10, queued  # the slow model really was swamped throughout
    assert max(borrowed) == 0, borrowed  # waiting requests wait on the event loop
    assert rec[1] < 100, recommend_ms
    assert hel[1] < 50, health_ms


@pytest.fixture(scope="module")
def tight(sasrec):
    """One slow model (0.1 s per item asked for), a queue of one, a 1.5 s time budget."""
    slow = _SlowModel(sasrec, per_k=0.1)
    app = create_app({"slow": slow}, queue_size=1, time_budget=1.5)
    with _serving(app) as (url, _):
        yield app, slow, url


def test_a_full_queue_answers_503_with_retry_after(tight):
    app, _, url = tight
    sm = app.state.models["slow"]
    body = {"user": "1", "k": 5}  # 0.5 s each
    with httpx.Client(base_url=url, timeout=30) as c, ThreadPoolExecutor(2) as pool:
        running = pool.submit(c.post, "/recommend", json=body)
        _wait_for(lambda: sm.pending == 1)
        waiting = pool.submit(c.post, "/recommend", json=body)
        _wait_for(lambda: sm.pending == 2)
        t0 = time.perf_counter()
        r = c.post("/recommend", json=body)
        refused_s = time.perf_counter() - t0
        health = c.get("/health").json()
        assert running.result().status_code == 200
        assert waiting.result().status_code == 200
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["content-type"] == "application/json"
    assert "model 'slow' is busy (1 requests waiting)" in r.json()["error"]
    assert refused_s < 0.3, refused_s  # refused at once, not after waiting
    assert health["models"][0]["pending"] == 2 and health["models"][0]["queue_size"] == 1
    _wait_for(lambda: sm.pending == 0)


def test_the_time_budget_answers_504_computing_and_503_waiting(tight):
    """A request computing past the budget gets 504 (its work, uninterruptible, finishes in
    the background); one still waiting gets 503 and never runs."""
    app, slow, url = tight
    sm = app.state.models["slow"]
    with httpx.Client(base_url=url, timeout=30) as c, ThreadPoolExecutor(2) as pool:
        calls = slow.calls
        t0 = time.perf_counter()
        long = pool.submit(c.post, "/recommend", json={"user": "1", "k": 25})  # 2.5 s
        _wait_for(lambda: sm.pending == 1)
        short = pool.submit(c.post, "/recommend", json={"user": "1", "k": 1})
        r_long, r_short = long.result(), short.result()
        answered_s = time.perf_counter() - t0
    assert r_long.status_code == 504, r_long.text
    assert "time budget (1.5 s)" in r_long.json()["error"]
    assert r_short.status_code == 503, r_short.text
    assert int(r_short.headers["retry-after"]) >= 1
    assert "waited its whole time budget" in r_short.json()["error"]
    assert answered_s < 2.3, answered_s  # both answered near the budget, not after the work
    _wait_for(lambda: sm.pending == 0)  # the long work ends; the short one never ran
    assert slow.calls == calls + 1


# ------------------------------------------------------------------------------ hostile clients
def test_a_wrong_host_header_gets_400(two_models):
    _, url, _ = two_models
    port = url.rsplit(":", 1)[1]
    with httpx.Client(base_url=url, timeout=10) as c:
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.2", "localhost.evil.example"):
            r = c.get("/health", headers={"Host": host})
            assert r.status_code == 400, (host, r.text)
            assert "not allowed" in r.json()["error"], host
        r = c.post("/recommend", json={"user": "1"}, headers={"Host": "evil.example"})
        assert r.status_code == 400
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LocalHost", f"[::1]:{port}"):
            assert c.get("/health", headers={"Host": host}).status_code == 200, host


def _raw(url: str, data: bytes, pause_after: bool = True) -> tuple[bytes, float]:
    """Send ``data`` and read until the server closes (at most 10 s): the answer, seconds."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        t0 = time.perf_counter()
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks), time.perf_counter() - t0


def test_half_sent_requests_are_dropped(two_models):
    _, url, _ = two_models
    head = b"POST /recommend HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    for label, data in (
        ("half a body", head + b'content-length: 100\r\n\r\n{"user": '),
        ("half the headers", head),
        ("nothing", b""),
    ):
        answer, seconds = _raw(url, data)
        assert answer.startswith(b"HTTP/1.1 408 "), (label, answer[:200])
        assert b'"error": "request not received within 0.5 s"' in answer, label
        assert READ_TIMEOUT * 0.8 < seconds < READ_TIMEOUT + 2.0, (label, seconds)
    # a slow but complete request is served
    body = b'{"model": "fast", "user": "1", "k": 3}'
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode())
        time.sleep(READ_TIMEOUT / 3)
        s.sendall(body)
        answer = b"".join(iter(lambda: s.recv(65536), b""))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


def test_port_in_use_is_one_line_and_exit_2(sasrec_bundle):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        serve = ["serve", "-m", str(sasrec_bundle), "--port", str(port)]
        proc = subprocess.run(
            [sys.executable, "-m", "recausal.cli", *serve],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "serving" not in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert lines == [
        f"recausal: error: port {port} on 127.0.0.1 is already in use; stop the other server "
        "or pick another --port"
    ], proc.stderr


# ------------------------------------------------------------------------------ command line
def test_serve_passes_its_limits_on(monkeypatch, sasrec_bundle):
    from click.testing import CliRunner

    from recausal.cli import cli
    from recausal.service.limits import HostCheck

    seen: dict[str, Any] = {}

    def fake_run(app: Any, **options: Any) -> None:
        seen.update(app=app, **options)

    monkeypatch.setattr(uvicorn, "run", fake_run)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ["serve", "-m", f"a={sasrec_bundle}", "--port", str(port), "--queue-size", "3"]
    args += ["--time-budget", "2.5", "--read-timeout", "4", "--allowed-host", "Example.org"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    sm = seen["app"].state.models["a"]
    assert (sm.queue_size, sm.time_budget) == (3, 2.5)
    assert (seen["host"], seen["port"]) == ("127.0.0.1", port)
    assert seen["http"].__qualname__ == "TimedH11Protocol[4s]"
    assert seen["timeout_keep_alive"] > 0 and seen["h11_max_incomplete_event_size"] > 0
    checks = [m for m in seen["app"].user_middleware if m.cls is HostCheck]
    assert [m.kwargs["allowed_hosts"] for m in checks] == [["example.org"]]
    assert f"http://127.0.0.1:{port}" in result.output
    bad = CliRunner().invoke(cli, ["serve", "--time-budget", "0"])
    assert bad.exit_code == 2 and "--time-budget" in bad.output


def test_bad_limits_are_refused(sasrec):
    for kwargs, needle in (
        ({"time_budget": 0}, "time_budget"),
        ({"time_budget": float("inf")}, "time_budget"),
        ({"time_budget": "1"}, "time_budget"),
        ({"queue_size": -1}, "queue_size"),
        ({"allowed_hosts": ["ok", ""]}, "allowed host"),
    ):
        with pytest.raises(InvalidInputError, match=needle):
            create_app({"m": sasrec}, **kwargs)
    with pytest.raises(InvalidInputError, match="read timeout"):
        server_options(0)
    assert normalize_hosts(["::1", "LOCALHOST", "localhost", "*.example.com"]) == [
        "[::1]",
        "localhost",
        "*.example.com",
    ]
    for bad in ("", "ex*ample.com", "*example.com"):
        with pytest.raises(InvalidInputError, match="allowed host"):
            normalize_hosts([bad])
