"""Soak test of ``recausal evaluate``'s journal: kill it at random moments, resume, compare.

    python benchmarks/soak_evaluate.py                      # 10 rounds, 5 minutes at most
    python benchmarks/soak_evaluate.py --rounds 30 --max-seconds 900 --workers 2
    python benchmarks/soak_evaluate.py --model path/to/bundle --users 200 --chunk-size 4

Not run in CI. First an uninterrupted run of the command gives the reference rows and the times
of its first saved part and of its end. Then each round starts the same command in the soak
folder and SIGKILLs its whole process group (workers included) at a random moment after the
time of the first part, on average a 1/(rounds left) share of the time the missing chunks would
take (one round in five: during start-up), so kills land while parts and the manifest are being
written. Round after round the run gets further; once the rounds or the time are used up, or
only the report is left, a last run goes to the end. The soak passes when every round ended by
the kill or with exit 0 and the final rows equal the reference (all but the timing columns).

Printed: one line per round (when it was killed, how the run ended, parts recorded in the
manifest before and after), then the verdict; the exit status is 0 when it passed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENTRY = "from recausal.cli import main; main()"


def recorded_parts(out: Path) -> int:
    """How many parts the manifest of ``out`` records (it is replaced atomically)."""
    try:
        return len(json.loads((out / "manifest.json").read_text(encoding="utf-8"))["parts"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def command(args: argparse.Namespace, out: Path) -> list[str]:
    """The ``recausal evaluate`` command line of this soak, writing into ``out``."""
    line = [sys.executable, "-c", ENTRY, "evaluate", "--out", str(out), "-q", "--no-plots"]
    if args.model:
        line += ["--model", args.model]
    line += ["--explainers", args.explainers, "--users", str(args.users)]
    line += ["--chunk-size", str(args.chunk_size), "--workers", str(args.workers)]
    return line


def start(line: list[str]) -> subprocess.Popen:
    """Start ``line`` in a process group of its own (so a kill reaches its workers too)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        line,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the process group this soak started for ``proc``, and reap ``proc``."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def untimed_rows(out: Path) -> list[dict]:
    """The rows of ``out/rows.parquet`` without the timing columns."""
    import pyarrow.parquet as pq

    from recausal.evaluate import TIMING_COLUMNS

    table = pq.read_table(str(out / "rows.parquet"))  # a path: see results/README.md
    return table.drop_columns(list(TIMING_COLUMNS)).to_pylist()


def reference(args: argparse.Namespace, out: Path) -> tuple[float, float]:
    """Run the command uninterrupted into ``out``; the seconds to its first part and to its end."""
    started = time.monotonic()
    proc = start(command(args, out))
    first = None
    while proc.poll() is None:
        if first is None and recorded_parts(out):
            first = time.monotonic() - started
        time.sleep(0.01)
    total = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"the reference run failed: {proc.stderr.read().decode().strip()}")
    proc.stderr.close()
    return (first if first is not None else total), total


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when the resumed rows equal the reference rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="bundle (default: the shipped SASRec)")
    parser.add_argument("--explainers", default="recency,occlusion,random")
    parser.add_argument("--users", type=int, default=320)
    parser.add_argument("--chunk-size", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10, help="kill rounds at most")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="time for the rounds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--keep", type=Path, default=None, help="keep the folders here")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    root = args.keep or Path(tempfile.mkdtemp(prefix="recausal-soak-"))
    clean, soak = root / "clean", root / "soak"
    for folder in (clean, soak):
        shutil.rmtree(folder, ignore_errors=True)
    first_part, total = reference(args, clean)
    n_chunks = recorded_parts(clean)
    print(f"reference run: first part after {first_part:.1f} s, done after {total:.1f} s")
    print(f"{'round':>5}  {'kill at':>8}  {'ended':<10}  {'parts before':>12}  {'after':>5}")

    deadline = time.monotonic() + args.max_seconds
    failures: list[str] = []
    finished = False
    for round_ in range(1, args.rounds + 1):
        before = recorded_parts(soak)
        if time.monotonic() >= deadline or before == n_chunks:
            break  # out of time, or only the report is left: the last run ends it
        # a moment while chunks are left (or, one round in five, during start-up), about
        # 1 / (rounds left) of the remaining work on average, so that the rounds spread over it
        left = max(0.0, 1.0 - before / n_chunks) * (total - first_part)
        left = min(left, 2.0 * left / (args.rounds - round_ + 1))
        early = rng.random() < 0.2
        kill_at = rng.uniform(0.0, first_part) if early else first_part + rng.uniform(0.0, left)
        proc = start(command(args, soak))
        try:
            proc.wait(timeout=max(0.0, min(kill_at, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            kill_group(proc)
        err = proc.stderr.read().decode().strip()
        proc.stderr.close()
        if proc.returncode == -signal.SIGKILL:
            ended = "killed"
        elif proc.returncode == 0:
            ended, finished = "finished", True
        else:
            ended = f"exit {proc.returncode}"
            failures.append(f"round {round_}: {err.splitlines()[-1] if err else ended}")
        after = recorded_parts(soak)
        print(f"{round_:>5}  {kill_at:>7.2f}s  {ended:<10}  {before:>12}  {after:>5}")
        if finished or failures:
            break

    if not finished and not failures:
        proc = start(command(args, soak))
        proc.wait()
        err = proc.stderr.read().decode().strip()
        proc.stderr.close()
        print(f"{'last':>5}  {'-':>8}  {'exit ' + str(proc.returncode):<10}")
        if proc.returncode != 0:
            failures.append(f"last run: {err.splitlines()[-1] if err else proc.returncode}")
    if not failures and untimed_rows(soak) != untimed_rows(clean):
        failures.append("the resumed rows differ from the reference rows")
    stale = list(soak.rglob("*.tmp"))
    if stale:
        failures.append(f"temporary files left: {', '.join(p.name for p in stale)}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    print("PASS: the resumed rows equal the reference" if not failures else "FAIL")
    for failure in failures:
        print(f"  {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
