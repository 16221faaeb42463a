"""The loaded models of the service: what every route gets injected (FastAPI ``Depends``).

Each model has its own worker thread and its own bounded queue (:meth:`ServedModel.call`):
work on one model never waits for another, and a request waiting for its model holds no
thread (it awaits on the event loop), so neither a busy model nor a crowd of waiting requests
slows the other models or ``/health``. One request at a time runs on a model: its lock keeps
the model's call counters, and so each explanation's ``model_calls``, exact.

A model whose queue is full answers 503 with ``Retry-After``. Every request has a time budget,
its wait included: past it, a request still waiting is dropped from the queue (503, it never
runs). The work gets the seconds its request may still search (up to
:data:`~recausal.service.limits.SEARCH_SHARE` of the budget, counted from its arrival): an
explanation stops searching then and answers what it found, marked incomplete (200), and the
model is free at once. Work still computing when the whole budget has passed (work that cannot
stop early: a recommendation, a graph, one long model call) answers 504 at once; it finishes in
the model's worker, keeps its queue place until then, and its result is dropped.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from recausal._checks import check_int
from recausal.errors import InvalidInputError
from recausal.service.errors import unavailable
from recausal.service.limits import QUEUE_SIZE, SEARCH_SHARE, TIME_BUDGET_S

if TYPE_CHECKING:
    from recausal.models import SequentialModel

T = TypeVar("T")


def _safe(fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception:
        return default


def check_budget(seconds: Any, name: str = "time_budget") -> float:
    """A time budget in seconds: a positive, finite number.

    Args:
        seconds: the value to check.
        name: its name, for the error message.

    Returns:
        The budget as a float.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidInputError(f"{name} must be a number of seconds, got {seconds!r}")
    if not (math.isfinite(seconds) and seconds > 0):
        raise InvalidInputError(f"{name} must be a positive number of seconds, got {seconds!r}")
    return float(seconds)


def _consume(waiter: asyncio.Future) -> None:
    """Mark an abandoned future's exception as seen (no "never retrieved" warning)."""
    waiter.add_done_callback(lambda f: None if f.cancelled() else f.exception())


@dataclass
class ServedModel:
    """One loaded model, its name, its worker thread and queue, and the lock that serialises
    work on it.

    ``queue_size`` requests may wait behind the one being computed; ``time_budget`` seconds
    bound each request, its wait included (see the module's docstring).
    """

    name: str
    model: SequentialModel
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: item token -> title, read once at start-up (empty when the dataset has none)
    titles: dict[str, str] = field(default_factory=dict)
    #: requests that may wait behind the one being computed
    queue_size: int = QUEUE_SIZE
    #: seconds a request may take, its wait included
    time_budget: float = TIME_BUDGET_S
    _state: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _executor: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)
    _pending: int = field(default=0, init=False, repr=False)
    _mean_s: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.titles:
            self.titles = _safe(lambda: dict(self.model.titles), {})

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` while holding this model's lock, in the calling thread.

        Routes should use :meth:`call` instead: waiting here for the lock holds a thread.

        Args:
            fn: the work.

        Returns:
            What ``fn`` returns.
        """
        with self.lock:
            return fn()

    @property
    def pending(self) -> int:
        """Requests admitted and not finished: the one being computed and those waiting."""
        return self._pending

    async def call(self, fn: Callable[[float], T]) -> T:
        """Run ``fn(search_s)`` on this model's worker thread, after the requests queued before
        it.

        The caller awaits on the event loop and holds no thread while it waits.

        Args:
            fn: the work, called with this model's lock held and the seconds its request may
                still search (``>= 0``; an explanation takes it as its time budget).

        Returns:
            What ``fn`` returns. Raises an HTTP 503 (with ``Retry-After``) when the queue is
            full or the request waited past its time budget, 504 when its computation ran past
            it.
        """
        with self._state:
            if self._pending > self.queue_size:
                raise unavailable(
                    f"model {self.name!r} is busy ({self.queue_size} requests waiting); "
                    "retry later",
                    self._retry_after(),
                )
            self._pending += 1
            executor = self._worker()
        admitted = time.monotonic()
        try:
            future = executor.submit(self._work, fn, admitted)
        except RuntimeError:  # shut down meanwhile
            self._release()
            raise unavailable(f"model {self.name!r} is shutting down", 1.0) from None
        future.add_done_callback(self._release)
        waiter = asyncio.wrap_future(future)
        try:
            done, _ = await asyncio.wait({waiter}, timeout=self.time_budget)
        except asyncio.CancelledError:
            future.cancel()
            _consume(waiter)
            raise
        if waiter in done:
            return waiter.result()
        if future.cancel():
            raise self._expired()
        if future.done():  # finished just now
            return future.result()
        _consume(waiter)
        raise StarletteHTTPException(
            504,
            f"the request ran past its time budget ({self.time_budget:g} s) on model "
            f"{self.name!r}; ask for less work (a smaller max_size, a faster explainer)",
        )

    def close(self) -> None:
        """Stop this model's worker thread once its current work ends; queued work is dropped.

        A later :meth:`call` starts a new worker.
        """
        with self._state:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    def _worker(self) -> ThreadPoolExecutor:
        """The worker thread (started on first use); call with ``_state`` held."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"recausal-model-{self.name}"
            )
        return self._executor

    def _work(self, fn: Callable[[float], T], admitted: float) -> T:
        """Run ``fn`` in the worker with the seconds its request may still search, unless its
        request's budget was spent waiting."""
        if time.monotonic() - admitted > self.time_budget:
            raise self._expired()
        start = time.monotonic()
        try:
            with self.lock:
                search_until = admitted + SEARCH_SHARE * self.time_budget
                return fn(max(0.0, search_until - time.monotonic()))
        finally:
            took = time.monotonic() - start
            with self._state:
                self._mean_s = took if self._mean_s == 0 else 0.8 * self._mean_s + 0.2 * took

    def _release(self, _future: Future | None = None) -> None:
        with self._state:
            self._pending -= 1

    def _retry_after(self) -> float:
        """Seconds until the queue has likely moved (the work ahead at its mean duration)."""
        return min(self.time_budget, self._mean_s * max(self._pending, 1))

    def _expired(self) -> StarletteHTTPException:
        return unavailable(
            f"model {self.name!r} is busy: the request waited its whole time budget "
            f"({self.time_budget:g} s) in the queue; retry later",
            self._retry_after(),
        )

    def describe(self) -> dict[str, Any]:
        """Name, family and sizes, for ``/health``.

        Returns:
            ``{"name", "family", "n_items", "capacity", "dataset", "pending", "queue_size"}``
            (``pending``: requests being computed or waiting).
        """
        m = self.model
        return {
            "name": self.name,
            "family": type(m).__name__.removesuffix("Model"),
            "n_items": m.n_items - 1,
            "capacity": m.capacity,
            "dataset": _safe(lambda: m.dataset_name, None),
            "pending": self._pending,
            "queue_size": self.queue_size,
        }


def _serve(name: str, spec: Any) -> ServedModel:
    """A loaded model (anything with ``recommend``), or one loaded from a bundle."""
    from recausal.models import SequentialModel, load_model

    if isinstance(spec, SequentialModel) or (
        not isinstance(spec, str | os.PathLike) and hasattr(spec, "recommend")
    ):
        return ServedModel(name, spec)
    return ServedModel(name, load_model(spec))


class ModelPool:
    """The models the service serves, by name; the first is the default."""

    def __init__(
        self,
        models: Mapping[str, Any],
        *,
        queue_size: int = QUEUE_SIZE,
        time_budget: float = TIME_BUDGET_S,
    ) -> None:
        """Load the models.

        Args:
            models: name -> bundle path, shipped bundle name, or loaded model.
            queue_size: requests each model may hold waiting behind the one it computes.
            time_budget: seconds each request may take, its wait for its model included.
        """
        check_int(queue_size, "queue_size", minimum=0)
        time_budget = check_budget(time_budget)
        self.models: dict[str, ServedModel] = {}
        for name, spec in models.items():
            if not isinstance(name, str) or not name:
                raise InvalidInputError(f"model names must be non-empty strings, got {name!r}")
            sm = _serve(name, spec)
            sm.queue_size, sm.time_budget = queue_size, time_budget
            self.models[name] = sm
        self.default = next(iter(self.models))

    def close(self) -> None:
        """Stop every model's worker thread (see :meth:`ServedModel.close`)."""
        for sm in self.models.values():
            sm.close()

    def pick(self, name: str | None) -> ServedModel:
        """A model by name.

        Args:
            name: a loaded model's name, or ``None`` for the default.

        Returns:
            The model (an HTTP 404 for an unknown name).
        """
        if name is None:
            return self.models[self.default]
        if name not in self.models:
            raise StarletteHTTPException(
                404, f"unknown model {name!r}; loaded: {', '.join(self.models)}"
            )
        return self.models[name]


async def get_pool(request: Request) -> ModelPool:
    """The pool of the app serving ``request`` (the routes' dependency; ``async``, so that
    FastAPI does not hand it to a worker thread).

    Args:
        request: the request.

    Returns:
        The app's :class:`ModelPool`.
    """
    return request.app.state.pool


#: a route parameter that receives the :class:`ModelPool`
Pool = Annotated[ModelPool, Depends(get_pool)]
