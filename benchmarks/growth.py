"""Growth: how the cost per explained user grows with the catalogue, and how the Ray engine's
throughput grows with its workers on a large set of users.

    python benchmarks/growth.py                        # both parts, SASRec (quiet machine)
    python benchmarks/growth.py --parts catalogue --models sasrec bert4rec
    python benchmarks/growth.py --parts users --workers 1 2 4 --sample 400
    python benchmarks/growth.py --quick                # a smoke run of both parts (~3 min)

Data and models are generated deterministically and cached under ``benchmarks/out/growth/``
(a rerun with the same settings reuses them; delete the folder to start again). The synthetic
data (one generator for both parts, see :func:`make_growth_dataset`) is one world with a longer
or shorter tail: items ``"1"..str(N)`` with a Zipf popularity (exponent 1, over a seeded
permutation of the ids) in 10 genres that share the popular items alike (the item of
popularity rank r is in genre r mod 10), so that what a model can learn (which genre a user is
in, and that genre's popular items) is the same at every catalogue size. Each user has three
favourite genres, stays in one for about eight steps, and draws each item from the current
genre (90%) or from the whole catalogue (10%) by popularity, never the same item twice. History
lengths are ml-100k-like: ``min_len + Exponential(mean)``, cut at ``max_len``. Every item is in
the ``.item`` file and trained with (``load_col`` includes it), so the model scores all N items,
seen in training or not. Models are trained briefly (``--epochs``; their cost is not what is
measured) on the first ``--train-users`` users of the set, with the architecture of the shipped
ml-100k bundles (``configs/*-ml100k.yaml``), one torch thread; the batch sizes shrink with the
catalogue so that one batch's logits stay near 256 MiB.

Tables printed:

``catalogue``: for each catalogue size (default 1.7k, 10k and 100k items; 3,000 users with
    histories of 20-200 items, the models trained on the first 1,000) and model, the causal
    explainer (default settings) on a fixed, seeded sample of the users (``--sample``, 100),
    in one ``explain_many`` call through ``benchmarks/run.py``'s ``explain_all`` (its stage
    timers), after a two-user warm-up, the best of ``--repeats`` (3) runs. (1) The summary:
    ms per user, forward passes per user (the batched passes each history took part in, and
    the run's passes over its users), histories scored per user (the search's workload),
    edited histories scored per second of validation, valid explanations, mean set size, the
    process's peak RSS so far. (2) ms per user by stage (run.py's stages) and, across stages,
    the scoring of histories: ``encode`` (the transformer's reading of the histories, which
    does not depend on N), then the steps whose work grows with the catalogue: ``items`` (the
    product with all N item embeddings and its copy to numpy), ``mask`` (the user's seen items
    set to -inf) and ``top-1`` (argmax and, where the top-1 changed, the rank count), and the
    sum of these three per scored history in microseconds (``us/hist.``). Then, per model:
    the fitted exponent ``k`` of ms/user ~ items^k (log-log least squares), the largest /
    smallest catalogue ratio against the target (at most 3x), the exponent of the
    catalogue-bound scoring cost per scored history, and how the workload changed: models
    trained on different catalogues search differently (more or fewer candidate sets), so the
    ratio is also given at the smallest catalogue's workload (its ms/user plus its histories
    per user times the growth of the catalogue-bound cost per history). A plot,
    ``benchmarks/out/growth-catalogue.png``: ms/user and the catalogue-bound part, log-log,
    with the 3x line.
``users``: a set of 100,000 users (1,700 items, histories of 10-40 items), a SASRec trained on
    its first 2,000 users, and ``recausal.evaluate.evaluate(model, "causal", users=SAMPLE,
    engine="ray", workers=W)`` for W in 1, 2, 4 on a seeded sample of 2,000 users (chunks
    of 16), each with a local Ray started by the engine for the run, plus the local engine in
    this process for reference. Per row: wall seconds (Ray's start, the workers' imports and
    model loads included), users/s over the wall time and in the steady state (from the W-th
    chunk back, by when every worker is warm, to the last before the final W, after which
    fewer chunks are left than workers), each with its efficiency
    against linear scaling (users/s / (W x users/s at W=1); 1.00 is perfect). The rows of
    every run are checked to equal the local run's. Then the fitted exponent of users/s ~ W^k
    (1 = linear) over all W and over the W this machine's cores can hold, and a plot,
    ``benchmarks/out/growth-users.png``. With more workers than cores (4 on 2 cores) the
    workers share cores, so efficiency there cannot reach 1; read it next to the CPU count.

The machine's load average is printed before and after each part: on a shared machine compare
ratios measured in the same run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package

from ray_cluster import _same_rows
from run import (
    OUT,
    STAGES,
    SUMMARY_COLUMNS,
    StageTimer,
    explain_all,
    load_average,
    peak_rss_mib,
    save_plot,
    table,
)

ROOT = Path(__file__).resolve().parent.parent
CACHE = OUT / "growth"
CONFIGS = {"sasrec": "sasrec-ml100k.yaml", "bert4rec": "bert4rec-ml100k.yaml"}
#: bump when the generator changes: the cached datasets (and models) are then made again
GENERATOR_VERSION = 3
_T0 = 1_000_000_000  # timestamps as in recausal.data.synthetic: one day per step
_DAY = 86_400
#: the synthetic data's genres, how many steps a user stays in one (mean), and the share of
#: items drawn from the current genre (the rest from the whole catalogue)
N_GENRES = 10
GENRE_STAY = 8
IN_GENRE = 0.9
#: the scoring steps whose work grows with the catalogue (see the module docstring)
CATALOGUE_BOUND = ("items", "mask", "top-1")
#: floats of one training batch's logits (about 256 MiB)
LOGITS_BUDGET = 64_000_000


# ------------------------------------------------------------------------------- data


def _digest(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]


def _marker(folder: Path) -> Path:
    """The record of what ``folder`` was made from, written once it is complete (beside it,
    so that a bundle folder holds only the bundle's files)."""
    return folder.with_name(folder.name + ".params.json")


def _cached(folder: Path, params: dict[str, Any]) -> bool:
    """Whether ``folder`` holds a finished product of ``params`` (an interrupted one is made
    again: the record is written last)."""
    marker = _marker(folder)
    return folder.is_dir() and marker.is_file() and json.loads(marker.read_text()) == params


def _histories(
    n_items: int, n_users: int, min_len: int, max_len: int, mean_extra: float, seed: int
) -> list[np.ndarray]:
    """The users' item ids (0-based), oldest first; see the module docstring."""
    rng = np.random.default_rng([seed, n_items, n_users, min_len, max_len, GENERATOR_VERSION])
    item_of_rank = rng.permutation(n_items)  # popularity rank -> item id
    global_cdf = np.cumsum(1.0 / np.arange(1, n_items + 1))
    global_cdf /= global_cdf[-1]
    # genre g holds the ranks g, g + G, g + 2G, ...: row g, column j of the grid is g + j G
    n_genres = min(N_GENRES, n_items)
    grid = np.arange(-(-n_items // n_genres))[None, :] * n_genres + np.arange(n_genres)[:, None]
    weights = np.where(grid < n_items, 1.0 / (grid + 1), 0.0)
    within = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    genre_cdf = (within + np.arange(n_genres)[:, None]).ravel()  # row g spans (g, g + 1]
    rank_at = np.minimum(grid, n_items - 1).ravel()
    out = []
    for _ in range(n_users):
        length = min(max_len, min_len + int(rng.exponential(mean_extra)))
        favourites = rng.choice(n_genres, size=min(3, n_genres), replace=False)
        seq = np.empty(0, dtype=np.int64)
        while seq.size < length:
            m = 2 * length + 10
            segment = np.cumsum(rng.random(m) < 1.0 / GENRE_STAY)
            genre = favourites[rng.integers(0, favourites.size, segment[-1] + 1)][segment]
            at = np.searchsorted(genre_cdf, genre + rng.random(m))
            local = rank_at[np.minimum(at, rank_at.size - 1)]
            anywhere = np.minimum(np.searchsorted(global_cdf, rng.random(m)), n_items - 1)
            drawn = np.concatenate([seq, np.where(rng.random(m) < IN_GENRE, local, anywhere)])
            _, first = np.unique(drawn, return_index=True)
            seq = drawn[np.sort(first)]
        out.append(item_of_rank[seq[:length]])
    return out


def make_growth_dataset(
    name: str,
    *,
    n_items: int,
    n_users: int,
    min_len: int,
    max_len: int,
    mean_extra: float,
    seed: int = 0,
) -> Path:
    """The folder ``CACHE/<name>`` with ``<name>.inter`` and ``<name>.item`` (made once).

    Args:
        name: the dataset's name (and folder).
        n_items: the catalogue's size.
        n_users: the users.
        min_len: the shortest history.
        max_len: the longest history.
        mean_extra: the mean length past ``min_len`` (before the cut at ``max_len``).
        seed: the generator's seed.

    Returns:
        The folder.
    """
    params = {
        "n_items": n_items,
        "n_users": n_users,
        "min_len": min_len,
        "max_len": max_len,
        "mean_extra": mean_extra,
        "seed": seed,
        "generator": GENERATOR_VERSION,
    }
    folder = CACHE / name
    if _cached(folder, params):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    histories = _histories(n_items, n_users, min_len, max_len, mean_extra, seed)
    with (folder / f"{name}.inter").open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, seq in enumerate(histories, start=1):
            times = _T0 + np.arange(seq.size) * _DAY + user
            handle.writelines(
                f"{user}\t{item + 1}\t{t}\n"
                for item, t in zip(seq.tolist(), times.tolist(), strict=True)
            )
    _write_items(folder / f"{name}.item", n_items)
    _marker(folder).write_text(json.dumps(params, sort_keys=True))
    return folder


def _write_items(path: Path, n_items: int) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("item_id:token\n")
        handle.writelines(f"{i}\n" for i in range(1, n_items + 1))


def training_subset(full: Path, n_users: int) -> Path:
    """A dataset of the first ``n_users`` users of ``full`` (same catalogue), made once."""
    name = f"{full.name}-train{n_users}"
    params = {"of": json.loads(_marker(full).read_text()), "users": n_users}
    folder = CACHE / name
    if _cached(folder, params):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with (
        (full / f"{full.name}.inter").open(encoding="utf-8") as src,
        (folder / f"{name}.inter").open("w", encoding="utf-8", newline="\n") as dst,
    ):
        dst.write(src.readline())
        for line in src:
            if int(line.split("\t", 1)[0]) > n_users:  # users are written in order 1, 2, ...
                break
            dst.write(line)
    shutil.copyfile(full / f"{full.name}.item", folder / f"{name}.item")
    _marker(folder).write_text(json.dumps(params, sort_keys=True))
    return folder


def trained_bundle(
    family: str, data: Path, n_items: int, epochs: int, threads: int, lr: float
) -> Path:
    """A bundle of ``family`` trained on ``data`` (made once, then reused).

    Args:
        family: ``sasrec`` or ``bert4rec``.
        data: the training dataset's folder.
        n_items: its catalogue's size.
        epochs: training epochs.
        threads: torch threads.
        lr: the learning rate.

    Returns:
        The bundle's folder.
    """
    import yaml

    from recausal.models.train import train

    config = ROOT / "configs" / CONFIGS[family]
    cfg = yaml.safe_load(config.read_text())
    max_len = int(cfg["MAX_ITEM_LIST_LENGTH"])
    masked = max(1, int(cfg.get("mask_ratio", 0.0) * max_len)) if family == "bert4rec" else 1
    overrides = {
        "dataset": str(data),
        "epochs": epochs,
        "learning_rate": lr,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id"]},
        "train_batch_size": int(np.clip(LOGITS_BUDGET // (masked * n_items), 16, 256)),
        "eval_batch_size": int(np.clip(LOGITS_BUDGET // n_items, 64, 2048)),
        "threads": threads,
    }
    params = {
        "config": cfg,
        "overrides": {**overrides, "dataset": data.name},
        "data": json.loads(_marker(data).read_text()),
    }
    folder = CACHE / "bundles" / f"{family}-{data.name}-{_digest(params)}"
    if _cached(folder, params):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = train(config, folder, overrides=overrides, verbose=False)
    (folder.with_name(folder.name + ".train.json")).write_text(
        json.dumps({"seconds": round(result.seconds, 1), "test": result.test})
    )
    _marker(folder).write_text(json.dumps(params, sort_keys=True))
    return folder


def train_seconds(bundle: Path) -> float:
    """The seconds the bundle's training took (recorded when it was made)."""
    return float(json.loads(bundle.with_name(bundle.name + ".train.json").read_text())["seconds"])


def sample_of(histories: dict[str, list[str]], count: int, seed: int) -> list[str]:
    """A seeded sample of the users, in the dataset's order."""
    everyone = list(histories)
    chosen = set(random.Random(seed).sample(everyone, min(count, len(everyone))))
    return [u for u in everyone if u in chosen]


def fit_exponent(x: list[float], y: list[float]) -> float:
    """The slope of log y against log x (least squares); NaN with fewer than two points."""
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return None
    return plt


# ------------------------------------------------------------------------------- catalogue


@contextlib.contextmanager
def scoring_timed(timer: StageTimer) -> Iterator[None]:
    """Time the scoring steps whose cost grows with the catalogue (see the docstring)."""
    import recausal.explain.batch as batch
    import recausal.models.inference as inference

    targets = [
        (batch.Batch, "_score_ids", "score"),
        (inference.Transformer, "read", "encode"),
        (batch.Batch, "mask_seen", "mask"),
        (batch, "_outcomes", "top-1"),
    ]
    with contextlib.ExitStack() as stack:
        for owner, name, stage in targets:
            wrapped = timer.wrap(stage, getattr(owner, name))
            stack.enter_context(mock.patch.object(owner, name, wrapped))
        yield


def measure_catalogue(family: str, n_items: int, args: argparse.Namespace) -> dict[str, Any]:
    """Make (or reuse) the dataset and model of one catalogue size and time the explainer."""
    from recausal.data import dataset_histories
    from recausal.models import load_model

    name = f"growth-i{n_items}-u{args.users}"
    full = make_growth_dataset(
        name, n_items=n_items, n_users=args.users, min_len=20, max_len=200, mean_extra=50.0
    )
    subset = training_subset(full, min(args.train_users, args.users))
    bundle = trained_bundle(family, subset, n_items, args.epochs, args.train_threads, args.lr)
    model = load_model(bundle, dataset=full)
    histories = dataset_histories(full)
    users = sample_of(histories, args.sample, args.seed)
    chosen = [histories[u] for u in users]
    explain_all(model, chosen[:2])  # warm-up: lazy imports, first allocations
    best = None
    for _ in range(args.repeats):  # the best of a few: the least disturbed by other load
        passes0, scored0 = model.forward_passes, model.histories_scored
        scoring = StageTimer()
        with scoring_timed(scoring):
            found, timer, wall = explain_all(model, chosen)
        if best is None or wall < best[2]:
            counts = (model.forward_passes - passes0, model.histories_scored - scored0)
            best = (found, timer, wall, scoring, counts)
    found, timer, wall, scoring, (passes, scored) = best
    n = len(found)
    scoring_ms = {k: 1000 * v / n for k, v in scoring.seconds.items()}
    # the histories' encoding (the transformer) is timed inside their scoring: what is left
    # is the product with every item's embedding and its copy
    scoring_ms["items"] = scoring_ms.get("score", 0.0) - scoring_ms.get("encode", 0.0)
    val_s = timer.seconds.get("validation", 0.0)
    edited = sum(e.histories_scored for e in found) - n
    sizes = [e.size for e in found if e.valid]
    return {
        "model": family,
        "items": model.n_items - 1,
        "users": n,
        "hist": float(np.mean([len(h) for h in chosen])),
        "window": float(np.mean([min(len(h), model.capacity) for h in chosen])),
        "train_s": train_seconds(bundle),
        "wall": wall,
        "ms_user": 1000 * wall / n,
        "passes": float(np.mean([e.model_calls for e in found])),
        "own_passes": passes / n,
        "scored": scored / n,
        "edited_s": edited / val_s if val_s > 0 else float("nan"),
        "valid": sum(e.valid for e in found),
        "size": float(np.mean(sizes)) if sizes else float("nan"),
        "rss": peak_rss_mib(),
        "stages": {k: 1000 * v / n for k, v in timer.seconds.items()},
        "scoring": scoring_ms,
        # the catalogue-bound scoring work per scored history, in microseconds
        "us_hist": 1000 * sum(scoring_ms[k] for k in CATALOGUE_BOUND) / max(1e-9, scored / n),
    }


def degenerate(r: dict[str, Any]) -> bool:
    """Whether a catalogue's model gave the search almost nothing to do (few histories scored
    or few explanations found): its figures do not measure the explainer."""
    return r["scored"] < 5 or r["valid"] < r["users"] / 4


def run_catalogue(args: argparse.Namespace) -> None:
    """The ``catalogue`` part: tables, fitted exponents and the plot."""
    print(
        f"\ncatalogue: the causal explainer (default settings) on {args.sample} sampled users "
        f"of {args.users} per catalogue, one process (load average {load_average()})"
    )
    results = []
    for family in args.models:
        for n_items in args.items:
            began = time.perf_counter()
            r = measure_catalogue(family, n_items, args)
            results.append(r)
            print(
                f"  {family} {n_items} items: {r['ms_user']:.0f} ms/user "
                f"({time.perf_counter() - began:.0f} s with data and training; "
                f"load {load_average()})",
                flush=True,
            )
    print(f"\nload average after the catalogue part: {load_average()}\n")
    for r in results:
        if degenerate(r):
            print(
                f"warning: {r['model']} at {r['items']} items scored {r['scored']:.0f} "
                f"histories per user and explained {r['valid']}/{r['users']}: its model "
                "barely depends on the history (too little training), so the search had "
                "almost nothing to do and its figures do not measure the explainer"
            )
    print(
        table(
            ["model", "items", "users", "mean hist", "mean window", "train s", *SUMMARY_COLUMNS],
            [
                [
                    r["model"],
                    r["items"],
                    r["users"],
                    f"{r['hist']:.0f}",
                    f"{r['window']:.0f}",
                    f"{r['train_s']:.0f}",
                    f"{r['wall']:.1f}",
                    f"{r['ms_user']:.0f}",
                    f"{r['passes']:.1f}",
                    f"{r['own_passes']:.3f}",
                    f"{r['scored']:.0f}",
                    f"{r['edited_s']:.0f}",
                    f"{r['valid']}/{r['users']}",
                    f"{r['size']:.2f}",
                    f"{r['rss']:.0f}",
                ]
                for r in results
            ],
        )
    )
    stage_keys = [k for k, _ in STAGES]
    scoring_keys = ["encode", *CATALOGUE_BOUND]
    print("\nms per user by stage (run.py's stages), and the scoring steps across them")
    print(
        table(
            ["model", "items", *stage_keys, "| encode", "items", "mask", "top-1", "us/hist."],
            [
                [r["model"], r["items"]]
                + [f"{r['stages'].get(k, 0.0):.1f}" for k in stage_keys]
                + [f"{r['scoring'].get(k, 0.0):.1f}" for k in scoring_keys]
                + [f"{r['us_hist']:.1f}"]
                for r in results
            ],
        )
    )
    fits = {}
    for family in args.models:
        mine = [r for r in results if r["model"] == family]
        fits[family] = fit_exponent([r["items"] for r in mine], [r["ms_user"] for r in mine])
        small, large = mine[0], mine[-1]
        ratio = large["ms_user"] / small["ms_user"]
        verdict = "met" if ratio <= 3.0 else f"missed by {ratio / 3.0:.2f}x"
        per_hist = fit_exponent([r["items"] for r in mine], [r["us_hist"] for r in mine])
        print(
            f"{family}: ms/user ~ items^{fits[family]:.2f}; {large['items']} / "
            f"{small['items']} items: x{ratio:.2f} (target <= 3x: {verdict}); scoring per "
            f"scored history ~ items^{per_hist:.2f}"
        )
        workload = large["scored"] / small["scored"]
        if degenerate(small) or degenerate(large):
            print(
                f"  histories scored per user: x{workload:.2f} from {small['items']} to "
                f"{large['items']} items; no like-for-like ratio (a model gave the search "
                "almost nothing to do, see the warning above)"
            )
            continue
        # the ratio had the largest catalogue's search scored as many histories per user as
        # the smallest's: the smallest's cost plus the extra scoring cost of each history
        alike = 1 + small["scored"] * (large["us_hist"] - small["us_hist"]) / (
            1000 * small["ms_user"]
        )
        print(
            f"  histories scored per user: x{workload:.2f} from {small['items']} to "
            f"{large['items']} items; at the smallest's workload the ratio would be "
            f"x{alike:.2f}"
            + (
                " (the workloads differ: the models search differently, so read this line "
                "and the per-history exponent, not only the ms/user ratio)"
                if not 2 / 3 <= workload <= 1.5
                else ""
            )
        )
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for family in args.models:
        mine = [r for r in results if r["model"] == family]
        x = [r["items"] for r in mine]
        (line,) = ax.loglog(
            x, [r["ms_user"] for r in mine], "o-", label=f"{family} total (k={fits[family]:.2f})"
        )
        ax.loglog(
            x,
            [sum(r["scoring"].get(k, 0.0) for k in CATALOGUE_BOUND) for r in mine],
            "s--",
            color=line.get_color(),
            alpha=0.6,
            label=f"{family} catalogue-bound scoring",
        )
        ax.loglog(
            x,
            [3.0 * mine[0]["ms_user"]] * len(x),
            ":",
            color=line.get_color(),
            alpha=0.5,
            label=f"{family} target (3x smallest)",
        )
    ax.set_xlabel("catalogue size (items)")
    ax.set_ylabel("ms per explained user")
    ax.set_title(f"Causal explainer vs catalogue ({args.sample} users)")
    save_plot(fig, ax, "growth-catalogue.png")


# ------------------------------------------------------------------------------- users


def _children_left(timeout: float = 15.0) -> list[str]:
    """This process's child processes still running after ``timeout`` seconds (Ray's should
    be gone once the engine has shut it down; exited ones not yet reaped do not count)."""
    import psutil

    def alive() -> list[str]:
        found = []
        for p in psutil.Process().children(recursive=True):
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(f"{p.pid} {' '.join(p.cmdline()[:2])}")
            except psutil.Error:  # gone meanwhile
                pass
        return found

    deadline = time.monotonic() + timeout
    while (left := alive()) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def time_evaluate(model, users: list[str], engine: str, workers: int, chunk: int) -> dict:
    """One ``evaluate`` run of the causal explainer; its wall and steady-state throughput."""
    from recausal.evaluate import evaluate

    done_at: list[tuple[float, int]] = []

    def on_chunk(index: int, rows: list[dict[str, Any]]) -> None:
        done_at.append((time.perf_counter(), len(rows)))

    began = time.perf_counter()
    rows = evaluate(
        model,
        "causal",
        users=users,
        engine=engine,
        workers=workers,
        chunk_size=chunk,
        plots=False,
        on_chunk=on_chunk,
    )
    ended = time.perf_counter()
    # the steady state: from the W-th chunk back (every worker started) to the last chunk
    # before the final W (after it, fewer chunks are left than workers)
    steady = None
    first, last = workers - 1, len(done_at) - workers - 1
    if last > first:
        steady = sum(n for _, n in done_at[first + 1 : last + 1]) / (
            done_at[last][0] - done_at[first][0]
        )
    return {
        "engine": engine,
        "workers": workers,
        "wall_s": ended - began,
        "first_s": done_at[0][0] - began if done_at else float("nan"),
        "wall": len(users) / (ended - began),
        "steady": steady,
        "rows": rows,
    }


def run_users(args: argparse.Namespace) -> None:
    """The ``users`` part: Ray throughput against workers; table, fit and plot."""
    import torch

    from recausal.data import dataset_histories
    from recausal.models import load_model

    cpus = os.cpu_count() or 1
    print(
        f"\nusers: evaluate(..., engine='ray') on {args.sample} sampled users of "
        f"{args.big_users}; {cpus} CPUs (load average {load_average()})"
    )
    name = f"growth-users-i{args.users_items}-u{args.big_users}"
    began = time.perf_counter()
    full = make_growth_dataset(
        name,
        n_items=args.users_items,
        n_users=args.big_users,
        min_len=10,
        max_len=40,
        mean_extra=10.0,
    )
    made = time.perf_counter() - began
    subset = training_subset(full, min(args.big_train_users, args.big_users))
    bundle = trained_bundle(
        "sasrec", subset, args.users_items, args.epochs, args.train_threads, args.lr
    )
    began = time.perf_counter()
    histories = dataset_histories(full)
    read_s = time.perf_counter() - began
    users = sample_of(histories, args.sample, args.seed)
    model = load_model(bundle, dataset=full)
    print(
        f"  data {made:.0f} s (0 when cached), model trained in {train_seconds(bundle):.0f} s, "
        f"reading the {len(histories)} users' histories {read_s:.1f} s; "
        f"{np.mean([len(histories[u]) for u in users]):.1f} items per sampled history",
        flush=True,
    )
    os.environ.pop("RAY_ADDRESS", None)  # a local Ray of the engine's own, never a cluster's
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in every worker: one torch thread per chunk
    try:
        local = time_evaluate(model, users, "local", 1, args.chunk_size)
    finally:
        torch.set_num_threads(threads)
    print(f"  local, this process: {local['wall_s']:.1f} s", flush=True)
    results = []
    for workers in args.workers:
        results.append(time_evaluate(model, users, "ray", workers, args.chunk_size))
        left = _children_left()
        print(
            f"  ray, {workers} worker(s): {results[-1]['wall_s']:.1f} s (load {load_average()})"
            + (f"; processes left: {left}" if left else ""),
            flush=True,
        )
    print(f"\nload average after the users part: {load_average()}\n")
    base = results[0]

    def efficiency(r: dict, key: str) -> str:
        if r[key] is None or base[key] is None:
            return "n/a"
        return f"{r[key] / (base[key] * r['workers'] / base['workers']):.2f}"

    rows = [
        [
            "local (1 process)",
            1,
            f"{local['wall_s']:.1f}",
            f"{local['first_s']:.1f}",
            f"{local['wall']:.2f}",
            "",
            "n/a" if local["steady"] is None else f"{local['steady']:.2f}",
            "",
        ]
    ]
    for r in results:
        rows.append(
            [
                "ray",
                r["workers"],
                f"{r['wall_s']:.1f}",
                f"{r['first_s']:.1f}",
                f"{r['wall']:.2f}",
                efficiency(r, "wall"),
                "n/a" if r["steady"] is None else f"{r['steady']:.2f}",
                efficiency(r, "steady"),
            ]
        )
    print(
        table(
            [
                "engine",
                "workers",
                "wall s",
                "first chunk s",
                "users/s wall",
                "x linear",
                "users/s steady",
                "x linear",
            ],
            rows,
        )
    )
    # the steady state where the run was long enough to have one (base included)
    key = "steady" if base["steady"] is not None else "wall"
    measured = [r for r in results if r[key] is not None]
    ws = [r["workers"] for r in measured]
    ys = [r[key] for r in measured]
    k_all = fit_exponent(ws, ys)
    held = [(w, y) for w, y in zip(ws, ys, strict=True) if w <= cpus]
    k_held = fit_exponent([w for w, _ in held], [y for _, y in held])
    print(
        f"users/s ({key}) ~ workers^k: k={k_all:.2f} over workers {ws}, k={k_held:.2f} over "
        f"the workers {cpus} cores can hold ({[w for w, _ in held]}); 1 = linear"
    )
    worst = min(
        (
            r[key] / (base[key] * r["workers"] / base["workers"])
            for r in measured
            if r["workers"] <= cpus
        ),
        default=float("nan"),
    )
    print(
        f"lowest efficiency at <= {cpus} workers: {worst:.2f} (target >= 0.80: "
        f"{'met' if worst >= 0.8 else 'missed'})"
    )
    same = all(_same_rows(r["rows"], local["rows"]) for r in results)
    print(f"rows equal to the local run's: {'yes' if same else 'NO'}")
    plt = _pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 4))
    all_ws = [r["workers"] for r in results]
    ax.loglog(all_ws, [r["wall"] for r in results], "o-", label="wall (with start-up)")
    if key == "steady":
        ax.loglog(ws, ys, "s-", label=f"steady (k={k_all:.2f})")
    ax.loglog(ws, [base[key] * w / base["workers"] for w in ws], ":", color="grey", label="linear")
    ax.axvline(cpus, color="grey", alpha=0.4, lw=1)
    ax.set_xticks(all_ws, [str(w) for w in all_ws])
    ax.set_xlabel(f"Ray workers ({cpus} CPUs)")
    ax.set_ylabel("users explained per second")
    ax.set_title(f"evaluate --engine ray, {len(users)} of {len(histories)} users")
    save_plot(fig, ax, "growth-users.png")


# ------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Parse the flags and run the requested parts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=("catalogue", "users"), default=None)
    parser.add_argument("--models", nargs="+", choices=tuple(CONFIGS), default=["sasrec"])
    parser.add_argument("--items", type=int, nargs="+", default=[1700, 10_000, 100_000])
    parser.add_argument("--users", type=int, default=3000, help="users per catalogue dataset")
    parser.add_argument(
        "--train-users", type=int, default=1000, help="users the catalogue models train on"
    )
    parser.add_argument("--sample", type=int, default=None, help="users timed (100 / 2000)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs")
    parser.add_argument("--lr", type=float, default=0.005, help="training learning rate")
    parser.add_argument("--big-users", type=int, default=100_000, help="users of the users part")
    parser.add_argument("--big-train-users", type=int, default=2000)
    parser.add_argument("--users-items", type=int, default=1700, help="items of the users part")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--chunk-size", type=int, default=16, help="users per chunk (users)")
    parser.add_argument("--seed", type=int, default=0, help="the samples' seed")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (catalogue)")
    parser.add_argument("--train-threads", type=int, default=1, help="torch threads, training")
    parser.add_argument(
        "--repeats", type=int, default=3, help="catalogue timings per size (the best is kept)"
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke run")
    args = parser.parse_args(argv)
    parts = args.parts or ["catalogue", "users"]
    if args.quick:
        args.items = [500, 2000]
        args.users = 200
        args.train_users = 200
        args.big_users = 2000
        args.big_train_users = 200
        args.chunk_size = 4
        args.epochs = 1
    catalogue_sample = args.sample or (20 if args.quick else 100)
    users_sample = args.sample or (32 if args.quick else 2000)

    import torch

    torch.set_num_threads(args.threads)
    print(
        f"recausal growth benchmark: {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}, load average {load_average()}, "
        f"python {sys.version.split()[0]}; cache {CACHE}"
    )
    began = time.perf_counter()
    if "catalogue" in parts:
        args.sample = catalogue_sample
        run_catalogue(args)
    if "users" in parts:
        args.sample = users_sample
        run_users(args)
    print(
        f"\n{time.perf_counter() - began:.0f} s in all; peak RSS {peak_rss_mib():.0f} MiB; "
        f"load average {load_average()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
