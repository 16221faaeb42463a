"""Speed of the whole pipeline: every user of a dataset explained, one user's latency, and how
graph learning grows with the history length.

    python benchmarks/run.py                 # all four parts, 200 users per model (~3 min)
    python benchmarks/run.py --all           # (a) over all 943 ml-100k users (~6 min)
    python benchmarks/run.py --quick         # a one-minute smoke run
    python benchmarks/run.py --parts e2e --models sasrec-ml100k --users 200 --compare-plain 50
    python benchmarks/run.py --parts e2e --all --against a5e4796   # side by side with old code

Tables printed:

(a) ``e2e``: the causal explainer (default parameters) on the first 200 users of the model's
    dataset (``--all``: every user), in one ``explain_many`` call: total seconds, the split
    by stage and its share, forward passes per user, edited histories scored per second, peak
    RSS. ``--compare-plain N`` also runs the plain path (one matrix at a time, RecBole's own
    forward for scoring) on the first N users, side by side, and checks that both give the
    same explanations and graphs. ``--against REV ...`` also times the code of each git
    revision (its own defaults) on the same users in a fresh process, and prints the speed-ups.
(b) ``latency``: one user explained at a time on a warm model, p50 and p95.
(d) ``contention``: the causal explainer on the first 30 users, in a fresh process, on a quiet
    machine and beside one single-threaded busy loop, with OpenMP threads that sleep while
    they wait (recausal's default, ``OMP_WAIT_POLICY=PASSIVE``) and that spin (libgomp's own
    default, ``GOMP_SPINCOUNT=300000``): ms per user and the slowdown the busy loop causes.
(c) ``scaling``: graph learning (ICD) on synthetic softmax attention for 10…200 positions,
    causal and bidirectional: seconds per matrix, a fitted exponent of time against n, and a
    PNG plot in ``benchmarks/out/``.

Stage times come from timers wrapped around the pipeline's functions for the run only.
The machine's load average is printed: on a shared machine compare ratios measured in the
same run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

import recausal  # noqa: F401  (first: it sets the OpenMP wait policy before torch loads)

OUT = Path(__file__).resolve().parent / "out"

STAGES = (
    ("forward", "model forward: recommendation + abductive attention"),
    ("ci", "covariance + CI tests"),
    ("structure", "structure learning (ICD search, orientation)"),
    ("trees", "PDS trees"),
    ("validation", "candidate validation (batched model calls)"),
    ("search", "candidate sets, explanations, PAG export"),
)


#: the columns of an all-users summary after what identifies the run (also growth.py's)
SUMMARY_COLUMNS = (
    "total s",
    "ms/user",
    "passes/user (shared)",
    "passes/user (own)",
    "histories/user",
    "edited hist./s",
    "valid",
    "mean size",
    "peak RSS MiB",
)


# ------------------------------------------------------------------------------- timing hooks


class StageTimer:
    """Accumulates wall time of wrapped functions by stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def wrap(self, stage: str, fn: Callable) -> Callable:
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[stage] += time.perf_counter() - t0
                self.calls[stage] += 1

        return timed


@contextlib.contextmanager
def patched(timer: StageTimer) -> Iterator[None]:
    """Wrap the pipeline's stage functions with ``timer`` (restored on exit)."""
    import recausal.causal.citest as citest
    import recausal.causal.learn as learn
    import recausal.discovery.pipeline as pipeline
    import recausal.explain.causal as causal
    from recausal.explain.batch import Batch

    targets = [
        (Batch, "baselines", "forward"),
        (Batch, "attention", "attention"),
        (Batch, "first_valid", "validation"),
        (causal.CausalExplainer, "_graphs", "graphs_total"),
        (pipeline, "learn_structures", "learn_total"),
        (learn, "correlation_from_attention", "ci"),
        (citest, "correlation_from_attention", "ci"),
        (learn, "_order1_decisions", "ci"),
        (citest.CorrelationCITest, "independent_many", "ci"),
        (citest.CorrelationCITest, "pvalues", "ci"),
    ]
    saved = []
    for owner, name, stage in targets:
        if not hasattr(owner, name):
            continue
        original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        saved.append((owner, name, original))
        setattr(owner, name, timer.wrap(stage, original))
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def table(headers: list[str], rows: list[list[object]]) -> str:
    """A plain-text table with right-aligned columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    lines = [" | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


# ------------------------------------------------------------------------------- (a) end to end


def all_histories(model) -> list[list[str]]:
    """Every user's history in the model's dataset (dataset order)."""
    from recausal.data import dataset_histories, resolve_dataset

    return list(dataset_histories(resolve_dataset(model.dataset_name)).values())


def explain_all(model, histories, *, batched: bool = True) -> tuple[list, StageTimer, float]:
    """Explain ``histories`` in one call; the explanations, stage timer and wall seconds."""
    from recausal.explain.causal import CausalExplainer

    explainer = CausalExplainer()
    explainer._batched = batched
    timer = StageTimer()
    fast_scoring = model.fast_scoring
    model.fast_scoring = batched
    try:
        with patched(timer), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # histories longer than the model's capacity
            t0 = time.perf_counter()
            found = explainer.explain_many(model, histories)
            wall = time.perf_counter() - t0
    finally:
        model.fast_scoring = fast_scoring
    sec = timer.seconds
    learn_total = sec.pop("learn_total", 0.0)
    sec["structure"] = learn_total - sec["ci"]
    attention = sec.pop("attention", 0.0)
    sec["forward"] += attention
    sec["trees"] = sec.pop("graphs_total", 0.0) - learn_total - attention
    inner = ("forward", "ci", "structure", "trees", "validation")
    sec["search"] = wall - sum(sec[k] for k in inner)
    return found, timer, wall


def same_results(a: list, b: list) -> bool:
    """Whether two lists of explanations agree in everything but timing (graphs included;
    the recommended item's score within float32 rounding: the passes batch differently)."""

    def strip(e) -> tuple[dict, float]:
        d = e.to_dict()
        d.pop("seconds")
        d.pop("model_calls")
        return d, d.pop("score")

    pairs = [(strip(x), strip(y)) for x, y in zip(a, b, strict=True)]
    return len(a) == len(b) and all(
        dx == dy and abs(sx - sy) <= 1e-5 * max(1.0, abs(sx)) for (dx, sx), (dy, sy) in pairs
    )


#: what the other revision runs (its own defaults; the API both share)
_AGAINST = """
import sys, time, warnings
import torch
torch.set_num_threads(int(sys.argv[3]))
from recausal.data import dataset_histories, resolve_dataset
from recausal.explain import get_explainer
from recausal.models import load_model
model = load_model(sys.argv[1])
histories = list(dataset_histories(resolve_dataset(model.dataset_name)).values())
n = int(sys.argv[2])
histories = histories[:n] if n > 0 else histories
warnings.simplefilter("ignore")
t0 = time.perf_counter()
found = get_explainer("causal").explain_many(model, histories)
print(time.perf_counter() - t0)
"""


def time_revision(rev: str, model_path: str, n_users: int | None, threads: int) -> float:
    """Seconds the code of git revision ``rev`` takes for the causal explainer (its defaults)
    over the same users, in a fresh process on the same machine (with this process's
    environment, so the same OpenMP wait policy)."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(OUT.parent.parent), "archive", rev], check=True, capture_output=True
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        env = {**os.environ, "PYTHONPATH": tmp}
        argv = [sys.executable, "-c", _AGAINST, model_path, str(n_users or 0), str(threads)]
        done = subprocess.run(argv, env=env, cwd=tmp, check=True, capture_output=True, text=True)
    return float(done.stdout.split()[0])


def run_e2e(
    models: list, n_users: int | None, compare: int, against: Sequence[str] = (), threads: int = 2
) -> None:
    """Table (a): every user explained, per model (and, per revision of ``against``, the same
    users with that git revision's code, side by side)."""
    print(f"\n(a) causal explainer, all users in one call, one process (load {load_average()})")
    summary, versus = [], []
    for name, model in models:
        histories = all_histories(model)
        if n_users is not None:
            histories = histories[:n_users]
        passes0, scored0 = model.forward_passes, model.histories_scored
        found, timer, wall = explain_all(model, histories)
        users = len(found)
        rows = []
        for key, label in STAGES:
            sec = timer.seconds.get(key, 0.0)
            rows.append([label, f"{sec:.2f}", f"{100 * sec / wall:.1f}%"])
        rows.append(["total", f"{wall:.2f}", "100.0%"])
        edited = sum(e.histories_scored for e in found) - users
        val_s = timer.seconds.get("validation", 0.0)
        print(f"\n{name}: {users} users, load average {load_average()}")
        if n_users is not None:
            total = len(all_histories(model))
            print(
                f"(first {users} of {total} users; all users, extrapolated: "
                f"{wall * total / users:.0f} s; run with --all to measure)"
            )
        print(table(["stage", "seconds", "share"], rows))
        valid = sum(e.valid for e in found)
        sizes = [e.size for e in found if e.valid]
        summary.append(
            [
                name,
                users,
                f"{wall:.1f}",
                f"{1000 * wall / users:.0f}",
                f"{np.mean([e.model_calls for e in found]):.1f}",
                f"{(model.forward_passes - passes0) / users:.3f}",
                f"{(model.histories_scored - scored0) / users:.1f}",
                f"{edited / val_s:.0f}" if val_s > 0 else "-",
                f"{valid}/{users}",
                f"{np.mean(sizes):.2f}" if sizes else "-",
                f"{peak_rss_mib():.0f}",
            ]
        )
        print(
            f"  passes/user (shared) {summary[-1][4]}, histories scored/user {summary[-1][6]}, "
            f"edited histories/s {summary[-1][7]}, valid {summary[-1][8]}, "
            f"peak RSS {summary[-1][10]} MiB"
        )
        if against:
            row = [name, users, f"{wall:.1f}"]
            for rev in against:
                before = time_revision(rev, str(model.path), n_users, threads)
                row += [f"{before:.1f}", f"{before / wall:.2f}x"]
            versus.append(row)
        if compare:
            sub = histories[:compare]
            plain, ptimer, t_plain = explain_all(model, sub, batched=False)
            fast, ftimer, t_fast = explain_all(model, sub)
            learn_fast = ftimer.seconds
            print(
                f"  plain (one matrix at a time, RecBole's forward) vs default on the first "
                f"{len(sub)} users (same run, load {load_average()}): plain {t_plain:.2f} s, "
                f"default {t_fast:.2f} s "
                f"(x{t_plain / t_fast:.2f}); graph learning plain "
                f"{ptimer.seconds['ci'] + ptimer.seconds['structure']:.2f} s, batched "
                f"{learn_fast['ci'] + learn_fast['structure']:.2f} s; identical results: "
                f"{same_results(fast, plain)}"
            )
    print()
    print(table(["model", "users", *SUMMARY_COLUMNS], summary))
    print(
        "passes/user (shared): batched forward passes each user took part in; (own): the "
        "run's forward passes divided by users."
    )
    if versus:
        print("\nthis code vs other revisions (each with its own defaults), same users, same run:")
        headers = ["model", "users", "this code s"]
        for rev in against:
            headers += [f"{rev} s", "speed-up"]
        print(table(headers, versus))


# ------------------------------------------------------------------------------- (b) latency


def run_latency(models: list, n_users: int) -> None:
    """Table (b): one user at a time on a warm model, through the library and through the
    HTTP service (``recausal serve``'s app on a loopback port, one request at a time)."""
    import httpx

    from recausal.data import dataset_histories, resolve_dataset
    from recausal.explain.causal import CausalExplainer
    from recausal.service.app import create_app
    from recausal.testing.server import serving

    print(f"\n(b) latency of one user explained, warm model (load average {load_average()})")
    rows = []
    app = create_app({name: model for name, model in models})
    with serving(app) as (url, _), httpx.Client(base_url=url, timeout=60) as client:
        for name, model in models:
            users = list(dataset_histories(resolve_dataset(model.dataset_name)).items())
            step = max(1, len(users) // n_users)
            chosen = users[::step][:n_users]
            explainer = CausalExplainer()
            calls = {
                "library": lambda h, _u, m=model, e=explainer: e.explain(m, h),
                "HTTP service": lambda _h, u, n=name: client.post(
                    "/explain", json={"model": n, "user": u}
                ).raise_for_status(),
            }
            for route, call in calls.items():
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    call(chosen[0][1], chosen[0][0])  # warm-up
                    times = []
                    for user, history in chosen:
                        t0 = time.perf_counter()
                        call(history, user)
                        times.append(time.perf_counter() - t0)
                ms = 1000 * np.array(times)
                rows.append(
                    [
                        name,
                        route,
                        len(ms),
                        f"{np.percentile(ms, 50):.0f}",
                        f"{np.percentile(ms, 95):.0f}",
                        f"{ms.max():.0f}",
                    ]
                )
    print(table(["model", "through", "users", "p50 ms", "p95 ms", "max ms"], rows))


# ------------------------------------------------------------------------------- (d) contention

_CHILD = """
import json, sys, time, warnings
sys.path.insert(0, {here!r})
from run import all_histories
from recausal.explain.causal import CausalExplainer
from recausal.models import load_model
warnings.simplefilter("ignore")
model = load_model({model!r})
histories = all_histories(model)[:{users}]
CausalExplainer().explain_many(model, histories[:3])
t0 = time.perf_counter()
CausalExplainer().explain_many(model, histories)
print(json.dumps(1000 * (time.perf_counter() - t0) / len(histories)))
"""

#: the OpenMP wait policies compared: name -> environment
WAIT_POLICIES = {
    "sleep (default)": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin (libgomp's default)": {"GOMP_SPINCOUNT": "300000"},
}


def run_contention(model_names: list[str], n_users: int) -> None:
    """Table (d): quiet vs one competing busy process, per OpenMP wait policy."""
    import subprocess

    print(f"\n(d) contention: {n_users} users, fresh process each (load {load_average()})")
    here = str(Path(__file__).resolve().parent)
    rows = []
    for model in model_names:
        code = _CHILD.format(here=here, model=model, users=n_users)
        for policy, env in WAIT_POLICIES.items():
            clean = {
                k: v
                for k, v in os.environ.items()
                if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
            }
            ms = []
            for busy in (False, True):
                loop = (
                    subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
                )
                try:
                    out = subprocess.run(
                        [sys.executable, "-c", code],
                        env={**clean, **env},
                        capture_output=True,
                        text=True,
                        check=True,
                    )
                finally:
                    if loop is not None:
                        loop.kill()
                        loop.wait()
                ms.append(float(out.stdout.strip().splitlines()[-1]))
            rows.append(
                [Path(model).name, policy, f"{ms[0]:.0f}", f"{ms[1]:.0f}", f"x{ms[1] / ms[0]:.2f}"]
            )
    print(
        table(
            ["model", "OpenMP threads", "quiet ms/user", "one busy loop ms/user", "slowdown"], rows
        )
    )


# ------------------------------------------------------------------------------- (c) scaling


def run_scaling(sizes: list[int], per_size: int, budget: float) -> None:
    """Table (c): ICD time per matrix against the number of positions."""
    from recausal.causal.learn import learn_pags
    from recausal.testing.attention import random_softmax_attention

    print(
        f"\n(c) graph learning (ICD, alpha 0.01, 64 samples) on synthetic softmax attention, "
        f"time per matrix (load average {load_average()})"
    )
    results: dict[str, list[tuple[int, float]]] = {"causal": [], "bidirectional": []}
    rows = []
    for n in sizes:
        row: list[object] = [n]
        for kind, causal in (("causal", True), ("bidirectional", False)):
            attn = random_softmax_attention(n, causal=causal, seed=n, batch=per_size, dim=32)
            done, t0 = 0, time.perf_counter()
            edges = []
            for k in range(per_size):  # one at a time, so a budget can stop a slow size
                res = learn_pags(attn[k : k + 1], n_samples=64, alpha=0.01, order_aware=causal)
                edges.append(int((res[0].marks != 0).sum()) // 2)
                done += 1
                if time.perf_counter() - t0 > budget:
                    break
            per = (time.perf_counter() - t0) / done
            results[kind].append((n, per))
            row += [f"{1000 * per:.1f}", done, f"{np.mean(edges):.0f}"]
        rows.append(row)
    headers = ["n"]
    for kind in results:
        headers += [f"{kind} ms", "matrices", "edges"]
    print(table(headers, rows))
    fits = {}
    for kind, pts in results.items():
        n = np.log([p[0] for p in pts])
        t = np.log([p[1] for p in pts])
        fits[kind] = float(np.polyfit(n, t, 1)[0]) if len(pts) >= 2 else float("nan")
    print("fitted exponent (time ~ n^k): " + ", ".join(f"{k} k={v:.2f}" for k, v in fits.items()))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for kind, pts in results.items():
        ax.loglog(
            [p[0] for p in pts],
            [1000 * p[1] for p in pts],
            "o-",
            label=f"{kind} (k={fits[kind]:.2f})",
        )
    ax.set_xlabel("positions n (history + target)")
    ax.set_ylabel("ms per attention matrix")
    ax.set_title("ICD on synthetic softmax attention")
    save_plot(fig, ax, "graph_scaling.png", legend_size=None)


def save_plot(fig, ax, name: str, legend_size: float | None = 8) -> None:
    """Finish a log-log plot (grid, legend) and write it to ``benchmarks/out/name``."""
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / name
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and run the requested parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--parts", nargs="+", choices=("e2e", "latency", "scaling", "contention"), default=None
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["sasrec-ml100k", "bert4rec-ml100k"],
        help="shipped bundle names or bundle paths",
    )
    parser.add_argument(
        "--users", type=int, default=200, help="first N users for (a) (default 200; see --all)"
    )
    parser.add_argument(
        "--all", action="store_true", help="(a) over every user of the dataset (943 for ml-100k)"
    )
    parser.add_argument(
        "--compare-plain", type=int, default=0, metavar="N", help="also time the plain path on N"
    )
    parser.add_argument(
        "--against",
        nargs="+",
        default=[],
        metavar="REV",
        help="(a) also time these git revisions' code, side by side",
    )
    parser.add_argument("--latency-users", type=int, default=30)
    parser.add_argument("--contention-users", type=int, default=30)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 30, 50, 75, 100, 150, 200])
    parser.add_argument("--matrices", type=int, default=8, help="matrices per size (scaling)")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per size and kind")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="a one-minute smoke run")
    args = parser.parse_args(argv)
    parts = args.parts or ["e2e", "latency", "contention", "scaling"]
    if args.all:
        args.users = None
    if args.quick:
        args.users = 50 if args.users is not None else None
        args.latency_users = min(args.latency_users, 5)
        args.contention_users = min(args.contention_users, 5)
        args.sizes = [10, 30, 50, 100]
        args.matrices = 3
        args.budget = 2.0
        args.compare_plain = min(args.compare_plain, 20)

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"recausal benchmarks: {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, "
        f"load average {load_average()}, python {sys.version.split()[0]}"
    )
    models = []
    if {"e2e", "latency"} & set(parts):
        from recausal.models import load_model

        for name in args.models:
            models.append((Path(name).name, load_model(name)))
    if "e2e" in parts:
        run_e2e(models, args.users, args.compare_plain, args.against, args.threads)
    if "latency" in parts:
        run_latency(models, args.latency_users)
    if "contention" in parts:
        run_contention(args.models, args.contention_users)
    if "scaling" in parts:
        run_scaling(args.sizes, args.matrices, args.budget)
    print(f"\npeak RSS of the whole run: {peak_rss_mib():.0f} MiB; load average {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
