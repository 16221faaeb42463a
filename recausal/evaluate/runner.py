"""The evaluation job: explain many users with several explainers, one row per (user, explainer).

Users are cut into fixed chunks (``chunk_size`` users, in the dataset's user order). A chunk is
the unit of work and of saving: every explainer explains every user of the chunk
(:mod:`~recausal.evaluate.chunk`), the rows go to one journal part
(:mod:`~recausal.evaluate.journal`), and a restarted run with the same arguments skips the chunks
already saved. Chunks run in this process, on local worker processes or as Ray tasks, locally or
on an existing Ray cluster (:mod:`~recausal.evaluate.engines`), on the CPU or a GPU; the rows do
not depend on the engine or (beyond float rounding) on the device, which are therefore not part
of the arguments a resumed run must match.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from recausal.errors import InvalidInputError, RecausalError
from recausal.evaluate.engines import Chunk, run_chunks
from recausal.evaluate.journal import Expected, Journal, make_manifest
from recausal.evaluate.report import write_report
from recausal.evaluate.schema import ROWS_VERSION, rows_frame
from recausal.evaluate.spec import DEFAULT_EXPLAINERS, check_engine, job_spec
from recausal.evaluate.users import Users, resolve_users
from recausal.usecases import user_history

if TYPE_CHECKING:
    from recausal.models import SequentialModel

__all__ = ["DEFAULT_EXPLAINERS", "evaluate"]


def _as_model(model: SequentialModel | str | os.PathLike | None, device: Any) -> SequentialModel:
    """The model, loaded on ``device`` (``None``: the CPU) unless it is already loaded."""
    from recausal.models import SequentialModel, load_model

    if not isinstance(model, SequentialModel):
        return load_model(model, device="cpu" if device is None else device)
    here = model.device
    # "cuda" names the current GPU, where a model loaded with "cuda" is
    index = here.index if device is None or device.index is None else device.index
    if device is not None and (device.type, index) != (here.type, here.index):
        raise InvalidInputError(
            f"model {model.name} is loaded on {model.device}, not on device {str(device)!r}; "
            "load it there (load_model(..., device=...)) or pass its bundle's path"
        )
    return model


def _plan(model: SequentialModel, user_ids: list[str], chunk_size: int) -> list[Chunk]:
    """The chunks of ``chunk_size`` users, each user with their whole history."""
    histories = {u: user_history(model, u).items for u in user_ids}
    return [
        (i // chunk_size, [(u, histories[u]) for u in user_ids[i : i + chunk_size]])
        for i in range(0, len(user_ids), chunk_size)
    ]


def evaluate(
    model: SequentialModel | str | os.PathLike | None = None,
    explainers: str | Sequence[str] = DEFAULT_EXPLAINERS,
    users: Users = "all",
    *,
    max_size: int = 5,
    k: int = 10,
    removal: str = "delete",
    seed: int = 0,
    out: str | os.PathLike | None = None,
    workers: int = 1,
    engine: str = "local",
    address: str | None = None,
    chunk_size: int = 16,
    deletion_max: int = 5,
    exclude_seen: bool | None = None,
    device: str | None = None,
    overwrite: bool = False,
    repair: bool = False,
    progress: bool = False,
    plots: bool = True,
    on_chunk: Callable[[int, list[dict[str, Any]]], None] | None = None,
    command: str | None = None,
) -> pd.DataFrame:
    """Explain ``users`` with each explainer; one row per (user, explainer).

    With ``out``, completed chunks are journaled there (a rerun with the same arguments
    resumes; other arguments are refused unless ``overwrite``), and the rows, summary and plots
    are written when all are done (:func:`recausal.evaluate.report.write_report`).

    Args:
        model: a loaded model or a bundle (path or shipped name; default the SASRec ml-100k one).
        explainers: the explainer names (comma-separated or a sequence).
        users: see :func:`recausal.evaluate.users.resolve_users`.
        max_size: the largest explanation set tried.
        k: the size of the original top-k list.
        removal: ``delete`` or ``pad``.
        seed: the explainers' seed.
        out: the output folder, or ``None`` to keep nothing.
        workers: ``> 1``: run chunks on that many local processes; with ``engine="ray"``, the
            Ray tasks in flight at once. Both need a model loaded from a bundle.
        engine: ``local`` or ``ray``.
        address: with ``engine="ray"``, the Ray cluster to run on (``HOST:PORT`` of its head,
            ``auto``); ``None``: ``RAY_ADDRESS`` if set, else a local Ray started for the run.
            Every node loads the bundle from the same absolute path (see
            :mod:`recausal.evaluate.engines`).
        chunk_size: users per saved chunk.
        deletion_max: the longest deletion curve.
        exclude_seen: leave the users' own items out of the recommendations (``None``: the
            model's default, see ``SequentialModel.excludes_seen``).
        device: where the models run, in this process and in every worker: ``"cpu"``,
            ``"cuda"``, ``"cuda:N"`` or ``"mps"`` [default: a loaded model's device, else
            ``"cpu"``]. It does not change the rows (beyond float rounding), so a run may
            resume on another device.
        overwrite: discard an earlier run in ``out``.
        repair: recompute the chunks whose journal parts are damaged (all chunks if the
            manifest is) instead of raising
            :class:`~recausal.evaluate.journal.JournalDamagedError`.
        progress: show a progress bar.
        plots: write the PNG plots.
        on_chunk: called as ``on_chunk(index, rows)`` after each chunk is saved.
        command: the command line that made the run (recorded in the manifest and summary).

    Returns:
        The rows, with the columns of :data:`recausal.evaluate.schema.COLUMNS`.
    """
    spec = job_spec(
        explainers,
        max_size=max_size,
        k=k,
        removal=removal,
        seed=seed,
        deletion_max=deletion_max,
        chunk_size=chunk_size,
        exclude_seen=exclude_seen,
    )
    workers = check_engine(engine, workers, address)
    if device is not None:
        from recausal.models.device import check_device

        device = check_device(device)
    model = _as_model(model, device)
    if (engine == "ray" or workers > 1) and model.path is None:
        raise InvalidInputError(
            "workers > 1 and engine='ray' need a model loaded from a bundle (model.path is None)"
        )
    user_ids = resolve_users(model, users)
    chunks = _plan(model, user_ids, spec.chunk_size)
    expected: Expected = {
        index: [(u, n) for u, _ in pairs for n in spec.explainers] for index, pairs in chunks
    }
    manifest = make_manifest(model, user_ids, spec, users)
    manifest["arguments"]["rows_version"] = ROWS_VERSION  # older journals are refused
    if command:
        manifest["command"] = command
    journal = Journal(out)
    journal.open(manifest, overwrite, repair)
    done = journal.saved(expected)
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
    placement: dict[str, int] = {}
    results = run_chunks(
        model,
        todo,
        spec,
        engine=engine,
        workers=workers,
        address=address,
        placement=placement,
        device=str(model.device),
    )
    try:
        for index, rows in results:
            if [(r["user"], r["explainer"]) for r in rows] != expected[index]:
                raise RecausalError(f"chunk {index} came back with the wrong rows")
            journal.save(index, rows)
            done[index] = rows
            bar.update(sizes[index])
            if on_chunk is not None:
                on_chunk(index, rows)
    finally:
        bar.close()
        results.close()
    frame = rows_frame(journal.rows(expected, done))  # the parts on disk, checked again
    if journal.out is not None:
        manifest["elapsed_seconds"] = round(time.perf_counter() - started, 3)
        manifest["resumed_chunks"] = len(chunks) - len(todo)
        manifest["engine"] = engine
        manifest["workers"] = workers
        manifest["device"] = str(model.device)
        if engine == "ray":
            # the chunks each Ray node computed in the (last) run, by node address
            manifest["ray_nodes"] = dict(sorted(placement.items()))
        write_report(frame, journal.out, manifest=manifest, plots=plots)
    return frame
