"""Where chunks run: in this process, on local worker processes, or on Ray actors.

Every engine yields ``(chunk index, rows)`` as chunks finish (in any order); the rows come from
:func:`recausal.evaluate.chunk.run_chunk` everywhere. Workers load the model once, from its bundle.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

from recausal.evaluate.chunk import run_chunk
from recausal.evaluate.spec import JobSpec

if TYPE_CHECKING:
    from recausal.models import SequentialModel

#: one chunk: its index and its ``(user, history)`` pairs
Chunk = tuple[int, list[tuple[str, list[str]]]]
#: one finished chunk: its index and its rows
Done = tuple[int, list[dict[str, Any]]]

_WORKER_MODEL: Any = None


def _init_worker(bundle: str) -> None:
    """Process-pool initializer: one torch thread, the model loaded once per process."""
    import torch

    from recausal.models import load_model

    global _WORKER_MODEL
    torch.set_num_threads(1)
    _WORKER_MODEL = load_model(bundle)


def _worker_chunk(index: int, users: list[tuple[str, list[str]]], spec: JobSpec) -> Done:
    return index, run_chunk(_WORKER_MODEL, users, spec)


class _RayWorker:
    """A Ray actor holding one loaded model (made remote lazily, so Ray stays optional)."""

    def __init__(self, bundle: str) -> None:
        _init_worker(bundle)

    def run(self, index: int, users: list[tuple[str, list[str]]], spec: JobSpec) -> Done:
        """The rows of one chunk."""
        return _worker_chunk(index, users, spec)


def _run_local(model: SequentialModel, chunks: list[Chunk], spec: JobSpec) -> Iterator[Done]:
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


def run_chunks(
    model: SequentialModel, chunks: list[Chunk], spec: JobSpec, *, engine: str, workers: int
) -> Generator[Done, None, None]:
    """Run ``chunks`` on an engine; close the iterator to stop early.

    Args:
        model: the model (``model.path``, its bundle, is what workers load).
        chunks: the chunks to compute.
        spec: what to compute.
        engine: ``local`` (in this process, or ``workers`` local processes) or ``ray``.
        workers: local worker processes, or Ray actors.

    Returns:
        A generator of ``(chunk index, rows)``, in the order the chunks finish.
    """
    if not chunks:
        return
    if engine == "ray":
        yield from _run_ray(str(model.path), chunks, spec, workers)
    elif workers > 1:
        yield from _run_processes(str(model.path), chunks, spec, min(workers, len(chunks)))
    else:
        yield from _run_local(model, chunks, spec)
