"""The evaluation job: explain many users with several explainers, one row per (user, explainer).

Users are cut into fixed chunks (``chunk_size`` users, in the dataset's user order). A chunk is
the unit of work and of saving: every explainer explains every user of the chunk, the rows go
to one journal part written atomically (``OUT/journal/part-NNNNNN.jsonl``), and a restarted run
with the same arguments skips the chunks whose part exists. Chunks run in this process, on local
worker processes (``workers``), or as Ray tasks (``engine="ray"``); each chunk is computed the
same way everywhere (one torch thread, the same batches), so the rows do not depend on the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recausal._io import write_atomic
from recausal.errors import InvalidInputError, RecausalError, UnknownUserError

if TYPE_CHECKING:
    from recausal.explain.base import Explanation
    from recausal.models.adapter import SequentialModel

DEFAULT_EXPLAINERS: tuple[str, ...] = ("causal", "attention", "recency", "occlusion", "random")
ENGINES = ("local", "ray")
MANIFEST = "manifest.json"
JOURNAL = "journal"
MANIFEST_FORMAT = "recausal-evaluation"
MANIFEST_VERSION = 1

#: Columns of the rows table, in order. List-valued columns hold Python lists.
COLUMNS: tuple[str, ...] = (
    "user",
    "explainer",
    "history_length",
    "history_used",
    "recommended",
    "score",
    "top_k",
    "valid",
    "size",
    "n_sets",
    "set_positions",
    "set_items",
    "sets",
    "replacement",
    "replacement_rank",
    "model_calls",
    "histories_scored",
    "seconds",
    "graph_nodes",
    "graph_edges",
    "deletion",
    "error",
)
#: Columns that measure time and so differ between two runs of the same job.
TIMING_COLUMNS: tuple[str, ...] = ("seconds",)
LIST_COLUMNS: tuple[str, ...] = ("top_k", "set_positions", "set_items", "sets", "deletion")
_INT_COLUMNS = (
    "history_length",
    "history_used",
    "size",
    "n_sets",
    "replacement_rank",
    "model_calls",
    "histories_scored",
)


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides the rows of an evaluation (what a resumed run must match)."""

    explainers: tuple[str, ...]
    max_size: int
    k: int
    removal: str
    seed: int
    deletion_max: int
    chunk_size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["explainers"] = list(self.explainers)
        return out


# --------------------------------------------------------------------------- one chunk
def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """The row as it reads back from JSON (tuples become lists, numpy scalars Python ones)."""
    return json.loads(json.dumps(row, ensure_ascii=False))


def _deletion_flags(
    model: SequentialModel, explanations: Sequence[Explanation], spec: JobSpec
) -> list[list[bool | None]]:
    """For each explanation: did the top-1 change after removing its top-m ranked items
    (m = 1..deletion_max)? ``None`` where the ranking has fewer than m items. One batched
    ``score_ids`` call for all explanations (all explainers of one user)."""
    from recausal.explain.base import remove_positions

    edits: list[np.ndarray] = []
    slots: list[tuple[int, int, int]] = []  # (explanation index, m - 1, target id)
    for e_idx, expl in enumerate(explanations):
        ids = model.encode(list(expl.history), warn=False)
        target = model.item_ids[expl.recommended]
        order = [r.position for r in expl.ranking]
        for m in range(1, spec.deletion_max + 1):
            if m <= len(order):
                edits.append(remove_positions(ids, order[:m], spec.removal))  # type: ignore[arg-type]
                slots.append((e_idx, m - 1, target))
    flags: list[list[bool | None]] = [[None] * spec.deletion_max for _ in explanations]
    if edits:
        new_top = model.score_ids(edits).argmax(axis=1)
        for (e_idx, m_idx, target), top in zip(slots, new_top, strict=True):
            flags[e_idx][m_idx] = bool(int(top) != target)
    return flags


def _row(user: str, full_length: int, expl: Explanation, deletion: list[bool | None]) -> dict:
    first = expl.sets[0] if expl.sets else ()
    graph = expl.graph
    return {
        "user": user,
        "explainer": expl.explainer,
        "history_length": full_length,
        "history_used": len(expl.history),
        "recommended": expl.recommended,
        "score": float(expl.score),
        "top_k": list(expl.top_k),
        "valid": bool(expl.valid),
        "size": expl.size,
        "n_sets": len(expl.sets),
        "set_positions": list(first),
        "set_items": [expl.history[p] for p in first],
        "sets": [list(s) for s in expl.sets],
        "replacement": expl.replacement,
        "replacement_rank": expl.replacement_rank,
        "model_calls": int(expl.model_calls),
        "histories_scored": int(expl.histories_scored),
        "seconds": float(expl.seconds),
        "graph_nodes": None if graph is None else int(graph.n_nodes),
        "graph_edges": None if graph is None else len(graph.edges()),
        "deletion": deletion,
        "error": None,
    }


def _error_row(user: str, explainer: str, lengths: tuple[int, int], error: Exception) -> dict:
    row: dict[str, Any] = dict.fromkeys(COLUMNS)
    row.update(
        user=user,
        explainer=explainer,
        history_length=lengths[0],
        history_used=lengths[1],
        valid=False,
        n_sets=0,
        top_k=[],
        set_positions=[],
        set_items=[],
        sets=[],
        deletion=[],
        error=f"{type(error).__name__}: {error}",
    )
    return row


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run with one torch thread (the same arithmetic in every engine), then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_chunk(
    model: SequentialModel, users: Sequence[tuple[str, Sequence[str]]], spec: JobSpec
) -> list[dict[str, Any]]:
    """Rows for one chunk of ``(user, history)`` pairs: user order, then explainer order.

    An explainer that raises a :class:`RecausalError` for a batch is retried user by user;
    the users it still fails on get a row with ``error`` set (and are left out of the measures).
    """
    from recausal.explain import get_explainer

    histories = [list(h) for _, h in users]
    per_explainer: dict[str, list[Explanation | Exception]] = {}
    with _one_torch_thread():
        for name in spec.explainers:
            explainer = get_explainer(
                name, max_size=spec.max_size, removal=spec.removal, seed=spec.seed
            )
            try:
                results: list[Explanation | Exception] = list(
                    explainer.explain_many(model, histories, k=spec.k)
                )
            except RecausalError:
                results = []
                for hist in histories:
                    try:
                        results.append(explainer.explain(model, hist, k=spec.k))
                    except RecausalError as exc:
                        results.append(exc)
            per_explainer[name] = results
        rows: list[dict[str, Any]] = []
        for u_idx, (user, hist) in enumerate(users):
            done = [
                (name, per_explainer[name][u_idx])
                for name in spec.explainers
                if not isinstance(per_explainer[name][u_idx], Exception)
            ]
            flags = _deletion_flags(model, [e for _, e in done], spec)  # type: ignore[misc]
            by_name = {name: (e, f) for (name, e), f in zip(done, flags, strict=True)}
            for name in spec.explainers:
                if name in by_name:
                    expl, deletion = by_name[name]
                    rows.append(_row(user, len(hist), expl, deletion))  # type: ignore[arg-type]
                else:
                    err = per_explainer[name][u_idx]
                    lengths = (len(hist), min(len(hist), model.capacity))
                    rows.append(_error_row(user, name, lengths, err))  # type: ignore[arg-type]
    return [_jsonable(r) for r in rows]


# --------------------------------------------------------------------------- workers
_WORKER_MODEL: Any = None


def _init_worker(bundle: str) -> None:
    """Process-pool initializer: one torch thread, the model loaded once per process."""
    import torch

    from recausal.models import load_model

    global _WORKER_MODEL
    torch.set_num_threads(1)
    _WORKER_MODEL = load_model(bundle)


def _worker_chunk(
    index: int, users: list[tuple[str, list[str]]], spec: JobSpec
) -> tuple[int, list[dict]]:
    return index, run_chunk(_WORKER_MODEL, users, spec)


class _RayWorker:
    """A Ray actor holding one loaded model (made remote lazily, so Ray stays optional)."""

    def __init__(self, bundle: str) -> None:
        _init_worker(bundle)

    def run(
        self, index: int, users: list[tuple[str, list[str]]], spec: JobSpec
    ) -> tuple[int, list[dict]]:
        return _worker_chunk(index, users, spec)


Chunk = tuple[int, list[tuple[str, list[str]]]]


def _run_local(model: SequentialModel, chunks: list[Chunk], spec: JobSpec) -> Iterator[Chunk]:
    for index, users in chunks:
        yield index, run_chunk(model, users, spec)


def _run_processes(bundle: str, chunks: list[Chunk], spec: JobSpec, workers: int) -> Iterator:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(bundle,)
    ) as pool:
        futures = [pool.submit(_worker_chunk, index, users, spec) for index, users in chunks]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _run_ray(bundle: str, chunks: list[Chunk], spec: JobSpec, workers: int) -> Iterator:
    from recausal.errors import require_extra

    ray = require_extra("ray", "ray")
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        if os.environ.get("RAY_ADDRESS"):
            ray.init(ignore_reinit_error=True)
        else:
            ray.init(
                num_cpus=max(workers, 2),
                include_dashboard=False,
                ignore_reinit_error=True,
                log_to_driver=False,
            )
    try:
        actor = ray.remote(num_cpus=1)(_RayWorker)
        actors = [actor.remote(bundle) for _ in range(max(workers, 1))]
        pool = ActorPool(actors)
        yield from pool.map_unordered(lambda a, c: a.run.remote(c[0], c[1], spec), chunks)
    finally:
        if started:
            ray.shutdown()


# --------------------------------------------------------------------------- inputs
def resolve_users(
    model: SequentialModel, users: str | int | os.PathLike | Sequence[str]
) -> list[str]:
    """The user ids to evaluate, in order.

    ``"all"``: every user of the model's dataset (RecBole's user order); an integer ``N`` (or
    its string): the first N of them (all if fewer); a path to a text file: one user id per
    line (blank lines and ``#`` comments skipped); a list: those ids. Ids must be known and
    distinct.
    """
    from recausal.data import dataset_histories, resolve_dataset

    known = list(dataset_histories(resolve_dataset(model.dataset_name)))
    if isinstance(users, bool):
        raise InvalidInputError(f"users must be 'all', N, a file or a list, got {users!r}")
    if isinstance(users, int | np.integer):
        if users < 1:
            raise InvalidInputError(f"users must be a positive number of users, got {users}")
        return known[: int(users)]
    if isinstance(users, str | os.PathLike):
        text = os.fspath(users)
        if text == "all":
            return known
        if text.strip().isdigit():
            return resolve_users(model, int(text))
        path = Path(text)
        if not path.is_file():
            raise InvalidInputError(
                f"users must be 'all', a positive number, or a file of user ids; got {text!r} "
                "(no such file)"
            )
        lines = path.read_text(encoding="utf-8").splitlines()
        chosen = [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]
    else:
        chosen = [str(u) for u in users]
    if not chosen:
        raise InvalidInputError(f"users: no user ids given ({users!r})")
    seen: set[str] = set()
    known_set = set(known)
    for user in chosen:
        if user in seen:
            raise InvalidInputError(f"users: user {user!r} is listed twice")
        if user not in known_set:
            raise UnknownUserError(
                f"users: user {user!r} is not in the dataset of model {model.name}"
            )
        seen.add(user)
    return chosen


def _check_explainers(explainers: str | Sequence[str]) -> tuple[str, ...]:
    from recausal.explain import EXPLAINERS

    names = explainers.split(",") if isinstance(explainers, str) else list(explainers)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise InvalidInputError("explainers: give at least one explainer name")
    for name in names:
        if name not in EXPLAINERS:
            raise InvalidInputError(
                f"explainers: unknown explainer {name!r}; choose from {', '.join(EXPLAINERS)}"
            )
    if len(set(names)) != len(names):
        raise InvalidInputError(f"explainers: a name is listed twice in {names}")
    return tuple(names)


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


# --------------------------------------------------------------------------- journal
def _part_path(out: Path, index: int) -> Path:
    return out / JOURNAL / f"part-{index:06d}.jsonl"


def _manifest(model: SequentialModel, users: list[str], spec: JobSpec, spec_users: Any) -> dict:
    digest = hashlib.sha256("\n".join(users).encode("utf-8")).hexdigest()
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "arguments": {
            "model": model.name,
            "weights_sha256": model.meta.get("weights_sha256"),
            "users_sha256": digest,
            "n_users": len(users),
            **spec.to_dict(),
        },
        "model_path": str(model.path) if model.path else None,
        "users": spec_users if isinstance(spec_users, str | int) else "list",
    }


_OWN_OUTPUTS = (
    "rows.parquet",
    "rows.csv",
    "summary.md",
    "summary.json",
    "sizes.png",
    "deletion.png",
    "replacement_rank.png",
)


def _prepare_out(out: Path, manifest: dict, overwrite: bool) -> None:
    """Create ``out`` with its manifest, or check that an existing one is this run's."""
    path = out / MANIFEST
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"out {str(out)!r} exists and is not a directory")
    if path.is_file() and overwrite:
        shutil.rmtree(out / JOURNAL, ignore_errors=True)
        for name in (MANIFEST, *_OWN_OUTPUTS):
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
    elif path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RecausalError(f"out {str(out)!r}: cannot read {MANIFEST}: {exc}") from None
        old_args, new_args = old.get("arguments", {}), manifest["arguments"]
        if old_args != new_args:
            diff = sorted(
                key
                for key in set(old_args) | set(new_args)
                if old_args.get(key) != new_args.get(key)
            )
            raise InvalidInputError(
                f"out {str(out)!r} holds a run with different arguments ({', '.join(diff)}); "
                "use another --out, or --overwrite to discard it"
            )
        (out / JOURNAL).mkdir(exist_ok=True)
        for stale in (out / JOURNAL).glob(".*.tmp"):  # a write cut short by a kill
            with contextlib.suppress(OSError):
                stale.unlink()
        return
    elif out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"out {str(out)!r} is not empty and holds no evaluation; use an empty folder "
            "(or --overwrite)"
        )
    (out / JOURNAL).mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))


def _read_part(path: Path, expected: list[tuple[str, str]]) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    got = [(r["user"], r["explainer"]) for r in rows]
    if got != expected:
        raise RecausalError(
            f"journal part {path} does not hold the rows of its chunk (edited or from another "
            "run); delete it to recompute that chunk, or use --overwrite"
        )
    return rows


def read_manifest(out: str | os.PathLike) -> dict[str, Any]:
    """The manifest of an evaluation folder."""
    return json.loads((Path(out) / MANIFEST).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the table
def rows_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a DataFrame with the columns of :data:`COLUMNS` and stable dtypes
    (nullable integers where a value can be missing, NaN graph sizes for non-causal rows)."""
    df = pd.DataFrame.from_records(list(rows), columns=list(COLUMNS))
    for col in _INT_COLUMNS:
        df[col] = pd.array([None if v is None or v != v else int(v) for v in df[col]], "Int64")
    for col in ("graph_nodes", "graph_edges", "score", "seconds"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["valid"] = df["valid"].astype(bool)
    for col in ("user", "explainer"):
        df[col] = df[col].astype(str)
    return df


# --------------------------------------------------------------------------- the job
def evaluate(
    model: SequentialModel | str | os.PathLike | None = None,
    explainers: str | Sequence[str] = DEFAULT_EXPLAINERS,
    users: str | int | os.PathLike | Sequence[str] = "all",
    *,
    max_size: int = 5,
    k: int = 10,
    removal: str = "delete",
    seed: int = 0,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    engine: str = "local",
    chunk_size: int = 16,
    deletion_max: int = 5,
    overwrite: bool = False,
    progress: bool = False,
    plots: bool = True,
    on_chunk: Callable[[int, list[dict[str, Any]]], None] | None = None,
    command: str | None = None,
) -> pd.DataFrame:
    """Explain ``users`` with each explainer; one row per (user, explainer), see :data:`COLUMNS`.

    ``model`` is a loaded model or a bundle (path or shipped name; default the SASRec ml-100k
    one). ``users``: see :func:`resolve_users`. With ``out``, completed chunks are journaled
    there (a rerun with the same arguments resumes; other arguments are refused unless
    ``overwrite``), and the rows, summary and plots are written when all are done
    (:func:`recausal.evaluate.report.write_report`). ``workers > 1`` runs chunks on that many
    local processes; ``engine="ray"`` on Ray actors (both need a model loaded from a bundle).
    ``on_chunk(index, rows)`` is called after each chunk is saved; ``command`` (the command
    line that made the run) is recorded in the manifest and the summary.
    """
    from recausal.models import load_model
    from recausal.models.adapter import SequentialModel

    names = _check_explainers(explainers)
    spec = JobSpec(
        explainers=names,
        max_size=_positive_int("max_size", max_size),
        k=_positive_int("k", k),
        removal=str(removal),
        seed=int(seed),
        deletion_max=_positive_int("deletion_max", deletion_max),
        chunk_size=_positive_int("chunk_size", chunk_size),
    )
    if spec.removal not in ("delete", "pad"):
        raise InvalidInputError(f"removal must be 'delete' or 'pad', got {removal!r}")
    workers = _positive_int("workers", workers)
    if engine not in ENGINES:
        raise InvalidInputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if not isinstance(model, SequentialModel):
        model = load_model(model)
    parallel = engine == "ray" or workers > 1
    if parallel and model.path is None:
        raise InvalidInputError(
            "workers > 1 and engine='ray' need a model loaded from a bundle (model.path is None)"
        )
    user_ids = resolve_users(model, users)
    # Each user's most recent items that the model uses (the adapter would keep the same ones,
    # with a truncation warning per user).
    histories = {u: model.user_history(u)[-model.capacity :] for u in user_ids}
    chunks: list[Chunk] = [
        (i // spec.chunk_size, [(u, histories[u]) for u in user_ids[i : i + spec.chunk_size]])
        for i in range(0, len(user_ids), spec.chunk_size)
    ]
    expected = {
        index: [(u, n) for u, _ in users_ for n in spec.explainers] for index, users_ in chunks
    }
    done: dict[int, list[dict]] = {}
    out_dir = Path(out) if out is not None else None
    manifest = _manifest(model, user_ids, spec, users)
    if command:
        manifest["command"] = command
    if out_dir is not None:
        _prepare_out(out_dir, manifest, overwrite)
        for index, _ in chunks:
            part = _part_path(out_dir, index)
            if part.is_file():
                done[index] = _read_part(part, expected[index])
    todo = [c for c in chunks if c[0] not in done]

    from tqdm.auto import tqdm

    started = time.perf_counter()
    bar = tqdm(
        total=len(user_ids),
        initial=sum(len(c[1]) for c in chunks if c[0] in done),
        unit="user",
        disable=not progress,
        desc="evaluate",
    )
    sizes = {index: len(u) for index, u in chunks}
    if not todo:
        results: Iterator = iter(())
    elif engine == "ray":
        results = _run_ray(str(model.path), todo, spec, workers)
    elif workers > 1:
        results = _run_processes(str(model.path), todo, spec, min(workers, len(todo)))
    else:
        results = _run_local(model, todo, spec)
    try:
        for index, rows in results:
            if [(r["user"], r["explainer"]) for r in rows] != expected[index]:
                raise RecausalError(f"chunk {index} came back with the wrong rows")
            if out_dir is not None:
                text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
                write_atomic(_part_path(out_dir, index), text.encode("utf-8"))
            done[index] = rows
            bar.update(sizes[index])
            if on_chunk is not None:
                on_chunk(index, rows)
    finally:
        bar.close()
        close = getattr(results, "close", None)
        if close is not None:
            close()
    frame = rows_frame([r for index, _ in chunks for r in done[index]])
    if out_dir is not None:
        from recausal.evaluate.report import write_report

        manifest["elapsed_seconds"] = round(time.perf_counter() - started, 3)
        manifest["resumed_chunks"] = len(chunks) - len(todo)
        manifest["engine"] = engine
        manifest["workers"] = workers
        write_report(frame, out_dir, manifest=manifest, plots=plots)
    return frame
