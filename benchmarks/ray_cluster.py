"""Throughput of ``evaluate --engine ray`` on a multi-node Ray cluster on this machine.

    python benchmarks/ray_cluster.py                        # head + 0, 1, 2 worker nodes
    python benchmarks/ray_cluster.py --workers 1,2 --users 48 --explainers causal,occlusion
    python benchmarks/ray_cluster.py --model path/to/bundle --max-seconds 600

Not run in CI. For each size, a cluster of separate ``ray start`` processes is started
(:class:`recausal.evaluate.local_cluster.LocalRayCluster`: the head on 127.0.0.2, worker nodes on
127.0.0.3, ..., one CPU each), the same seeded sample of users is evaluated on it by address
(``engine="ray"``, one task in flight per node, one user per chunk), and the cluster is stopped.
The model is SASRec trained for two epochs on a synthetic planted-cause dataset written for the
run (300 users, histories of about ``--seq-len`` items), unless ``--model`` names a bundle.

Printed: one row per cluster size with the users per second over the whole run (``wall``: with
the workers' start-up, importing torch and loading the model) and after every node has finished
its first chunk (``steady``), each with its ratio to linear scaling (the one-node figure times the
nodes; 1.00 is perfect). The rows of every size are checked to equal the first size's. All nodes
share this machine's cores: with fewer free cores than nodes the ratio cannot reach 1, so read
it next to the CPU count and load average printed above the table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "configs" / "sasrec-synthetic.yaml"


def train_model(folder: Path, seq_len: int, epochs: int) -> Path:
    """A SASRec bundle trained on a synthetic planted-cause dataset written to ``folder``.

    Args:
        folder: where the dataset and the bundle go.
        seq_len: the users' history length (and the model's window).
        epochs: training epochs.

    Returns:
        The bundle's path.
    """
    import torch

    from recausal.data import make_planted_dataset
    from recausal.models.train import train

    torch.set_num_threads(1)
    data = make_planted_dataset(
        folder / "planted",
        name="planted",
        n_users=300,
        n_items=120,
        n_pairs=10,
        seq_len=seq_len,
        min_seq_len=seq_len - 5,
        seed=0,
    )
    overrides = {
        "dataset": str(data.files.directory),
        "epochs": epochs,
        "MAX_ITEM_LIST_LENGTH": seq_len,
    }
    return Path(train(CONFIG, folder / "sasrec-planted", overrides=overrides, verbose=False).bundle)


def sample_users(bundle: Path, count: int, seed: int) -> list[str]:
    """A seeded sample of the bundle's users, in the dataset's order.

    Args:
        bundle: the model bundle.
        count: how many users.
        seed: the sample's seed.

    Returns:
        The user ids.
    """
    from recausal.evaluate import resolve_users
    from recausal.models import load_model

    everyone = resolve_users(load_model(bundle), "all")
    chosen = set(random.Random(seed).sample(everyone, min(count, len(everyone))))
    return [u for u in everyone if u in chosen]


def measure(bundle: Path, users: list[str], args: argparse.Namespace, workers: int) -> dict:
    """Evaluate ``users`` on a cluster of the head and ``workers`` worker nodes.

    The chunks go through :func:`recausal.evaluate.engines.run_chunks` (what ``evaluate`` runs,
    without the journal), whose ``placement`` tells which node finished each chunk.

    Args:
        bundle: the model bundle.
        users: the users.
        args: the command line.
        workers: worker nodes besides the head.

    Returns:
        The figures of the run (and its rows, under ``rows``).
    """
    from recausal.evaluate import rows_frame
    from recausal.evaluate.engines import run_chunks
    from recausal.evaluate.local_cluster import LocalRayCluster
    from recausal.evaluate.spec import job_spec
    from recausal.models import load_model
    from recausal.usecases import user_history

    model = load_model(bundle)
    spec = job_spec(
        args.explainers, max_size=5, k=10, removal="delete", seed=0, deletion_max=5, chunk_size=1
    )
    chunks = [(i, [(u, user_history(model, u).items)]) for i, u in enumerate(users)]
    nodes = workers + 1
    done: dict[int, list] = {}
    placement: dict[str, int] = {}
    warm_at, warm_done = None, 0  # when every node had finished a chunk, and the chunks by then
    with LocalRayCluster(workers=workers) as cluster:
        driver = cluster.root / "driver"
        driver.mkdir()
        os.environ["RAY_TMPDIR"] = str(driver)  # the driver's Ray logs stay in the cluster's folder
        started = time.perf_counter()
        results = run_chunks(
            model,
            chunks,
            spec,
            engine="ray",
            workers=nodes,
            address=cluster.address,
            placement=placement,
        )
        for index, rows in results:
            done[index] = rows
            if warm_at is None and len(placement) == nodes:
                warm_at, warm_done = time.perf_counter(), len(done)
        ended = time.perf_counter()
    os.environ.pop("RAY_TMPDIR", None)
    steady = None
    if warm_at is not None and len(done) > warm_done:
        steady = (len(done) - warm_done) / (ended - warm_at)
    return {
        "nodes": nodes,
        "used": len(placement),
        "wall_s": ended - started,
        "wall": len(users) / (ended - started),
        "steady": steady,
        "rows": rows_frame([row for index in sorted(done) for row in done[index]]),
    }


def table(results: list[dict]) -> str:
    """The results as a Markdown table with the ratios to linear scaling.

    Args:
        results: the figures of :func:`measure`, smallest cluster first.

    Returns:
        The table.
    """
    base = results[0]
    lines = [
        "| nodes (1 CPU each) | wall s | users/s wall | x linear | users/s steady | x linear |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        scale = r["nodes"] / base["nodes"]
        ratio = r["wall"] / (base["wall"] * scale)
        steady = "n/a" if r["steady"] is None else f"{r['steady']:.2f}"
        steady_ratio = (
            "n/a"
            if r["steady"] is None or base["steady"] is None
            else f"{r['steady'] / (base['steady'] * scale):.2f}"
        )
        lines.append(
            f"| {r['nodes']} | {r['wall_s']:.1f} | {r['wall']:.2f} | {ratio:.2f} | "
            f"{steady} | {steady_ratio} |"
        )
    return "\n".join(lines)


def _same_rows(a, b) -> bool:
    """Whether two runs gave the same rows (all but the timing columns)."""
    import pandas as pd

    from recausal.evaluate import TIMING_COLUMNS

    try:
        pd.testing.assert_frame_equal(
            a.drop(columns=list(TIMING_COLUMNS)), b.drop(columns=list(TIMING_COLUMNS))
        )
    except AssertionError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark.

    Args:
        argv: the command line (default ``sys.argv[1:]``).

    Returns:
        The exit status (1 when the rows of two cluster sizes differ).
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="0,1,2", help="worker nodes besides the head, per run")
    parser.add_argument("--users", type=int, default=60, help="users in the sample")
    parser.add_argument("--explainers", default="causal,occlusion,recency")
    parser.add_argument("--model", help="a bundle (default: SASRec trained on synthetic data)")
    parser.add_argument("--seq-len", type=int, default=50, help="synthetic history length")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs of the default")
    parser.add_argument("--seed", type=int, default=0, help="the users' sample seed")
    parser.add_argument(
        "--max-seconds", type=float, default=180, help="start no cluster size after this"
    )
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.workers.split(",")]
    os.environ.pop("RAY_ADDRESS", None)
    begun = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="rc-bench-"))
    try:
        if args.model:
            from recausal.models import load_model

            bundle = Path(load_model(args.model).path)  # a path or a shipped bundle's name
        else:
            bundle = train_model(scratch, args.seq_len, args.epochs)
        users = sample_users(bundle, args.users, args.seed)
        print(
            f"model {bundle.name}, {len(users)} users (seed {args.seed}), explainers "
            f"{args.explainers}; {os.cpu_count()} CPUs, load average "
            + " ".join(f"{x:.2f}" for x in os.getloadavg()),
            flush=True,
        )
        results = []
        for workers in sizes:
            if results and time.perf_counter() - begun > args.max_seconds:
                print(f"(--max-seconds reached: head + {workers} workers not run)")
                break
            results.append(measure(bundle, users, args, workers))
            r = results[-1]
            print(
                f"  {r['nodes']} node(s): {r['wall_s']:.1f} s, chunks on {r['used']} node(s)",
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(table(results))
    same = all(_same_rows(r["rows"], results[0]["rows"]) for r in results[1:])
    print(f"\nrows equal across cluster sizes: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
