"""Load test of ``recausal serve``: one model swamped, the other model and /health timed.

    python benchmarks/soak_service.py                       # 60 s under load
    python benchmarks/soak_service.py --seconds 30 --clients 32 --explainer occlusion

Not run in CI. Starts ``recausal serve`` with both shipped models (``sasrec-ml100k``, the
default, and ``bert4rec-ml100k``) in a subprocess on a free loopback port. First, with the
service idle, a probe client times SASRec ``/recommend`` and ``/health`` for a few seconds;
then ``--clients`` clients post BERT4Rec ``/explain`` requests back to back for ``--seconds``
while the probe keeps timing (one ``/recommend`` and one ``/health`` every ``--interval``
seconds). The server is then stopped (the explanations still running are abandoned).

Printed: the latency table (requests, p50, p95, max in ms) of each probed route, idle and
under load, and how the ``/explain`` requests were answered (200; 503 when the queue was full
or a request waited past its time budget; 504 when its computation ran past it). The exit
status is 0 when every probe request got a 200.
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

SASREC, BERT4REC = "sasrec-ml100k", "bert4rec-ml100k"


def free_port() -> int:
    """A loopback TCP port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, extra: list[str]) -> subprocess.Popen:
    """``recausal serve`` with both shipped models on ``port``, answering once /health does."""
    line = [sys.executable, "-m", "recausal.cli", "serve", "-m", SASREC, "-m", BERT4REC]
    line += ["--port", str(port), "--log-level", "warning", *extra]
    proc = subprocess.Popen(line)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"recausal serve exited with status {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("recausal serve did not answer within 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    """Ask the server to stop (SIGINT); kill it if it is still there after 5 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def users(base: str) -> list[str]:
    """The SASRec dataset's users, from the service (the first page of the explorer's list),
    or ids 1..100 when the service has no such route."""
    try:
        r = httpx.get(f"{base}/explorer/users", params={"model": SASREC}, timeout=10)
        ids = [str(u) for u in r.json().get("users", [])] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError, AttributeError):
        ids = []
    return ids or [str(u) for u in range(1, 101)]


def probe(base: str, seconds: float, interval: float, ids: list[str], rows: dict) -> None:
    """Time one /recommend and one /health every ``interval`` s for ``seconds`` s."""
    rng = random.Random(0)
    with httpx.Client(base_url=base, timeout=60) as c:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            body = {"model": SASREC, "user": rng.choice(ids), "k": 10}
            for route, call in (
                ("/recommend", lambda b=body: c.post("/recommend", json=b)),
                ("/health", lambda: c.get("/health")),
            ):
                t0 = time.perf_counter()
                r = call()
                rows.setdefault(route, []).append((time.perf_counter() - t0) * 1000)
                rows.setdefault("status", Counter())[r.status_code] += 1
            time.sleep(interval)


def hammer(base: str, stop: threading.Event, ids: list[str], explainer: str | None, seed: int):
    """Post BERT4Rec /explain requests back to back until ``stop``: statuses and seconds."""
    rng = random.Random(seed)
    out: list[tuple[int | str, float]] = []
    with httpx.Client(base_url=base, timeout=120) as c:
        while not stop.is_set():
            body = {"model": BERT4REC, "user": rng.choice(ids), "k": 10}
            if explainer:
                body["explainer"] = explainer
            t0 = time.perf_counter()
            try:
                status: int | str = c.post("/explain", json=body).status_code
            except httpx.HTTPError as exc:
                if stop.is_set():
                    break  # the server stopped under it
                status = type(exc).__name__
            out.append((status, time.perf_counter() - t0))
            if status == 503:
                time.sleep(0.2)  # a client that honours "busy" a little
    return out


def table(phases: dict[str, dict]) -> str:
    """The latency table."""
    lines = [
        f"{'phase':<8} {'route':<11} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}"
    ]
    for phase, rows in phases.items():
        for route in ("/recommend", "/health"):
            ms = np.array(rows.get(route, [np.nan]))
            p50, p95 = np.percentile(ms, [50, 95])
            lines.append(
                f"{phase:<8} {route:<11} {len(rows.get(route, [])):>8} {p50:>8.1f} {p95:>8.1f} "
                f"{ms.max():>8.1f}"
            )
    return "\n".join(lines)


def main() -> int:
    """Run the load test and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time under load")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="time probed idle")
    parser.add_argument("--clients", type=int, default=16, help="clients on BERT4Rec /explain")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between probes")
    parser.add_argument("--explainer", default=None, help="explainer (default: the service's)")
    parser.add_argument(
        "--serve-option", action="append", default=[], help="extra `recausal serve` argument"
    )
    args = parser.parse_args()
    if not 0 < args.seconds <= 600 or not 1 <= args.clients <= 256:
        parser.error("--seconds must be in (0, 600] and --clients in [1, 256]")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server(port, args.serve_option)
    phases: dict[str, dict] = {"idle": {}, "loaded": {}}
    try:
        ids = users(base)
        probe(base, args.idle_seconds, args.interval, ids, phases["idle"])
        stop = threading.Event()
        with ThreadPoolExecutor(args.clients) as pool:
            hammers = [
                pool.submit(hammer, base, stop, ids, args.explainer, seed)
                for seed in range(args.clients)
            ]
            time.sleep(1.0)  # let the queue fill
            probe(base, args.seconds, args.interval, ids, phases["loaded"])
            stop.set()
            stop_server(proc)
            explained = [row for h in hammers for row in h.result()]
    finally:
        if proc.poll() is None:
            stop_server(proc)

    print(
        f"\nrecausal serve: {args.clients} clients on {BERT4REC} /explain for {args.seconds:g} s "
        f"(explainer: {args.explainer or 'the default'}); probing {SASREC} /recommend and "
        f"/health every {args.interval:g} s\n"
    )
    print(table(phases))
    counts = Counter(status for status, _ in explained)
    ok = [s for status, s in explained if status == 200]
    took = f", 200s took p50 {np.median(ok):.2f} s, max {max(ok):.2f} s" if ok else ""
    print(f"\n/explain answers: {dict(sorted(counts.items(), key=str))}{took}")
    probes = phases["idle"].get("status", Counter()) + phases["loaded"].get("status", Counter())
    print(f"probe answers: {dict(probes)}")
    return 0 if set(probes) == {200} else 1


if __name__ == "__main__":
    sys.exit(main())
