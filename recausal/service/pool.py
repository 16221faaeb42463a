"""The loaded models of the service: what every route gets injected (FastAPI ``Depends``).

Model work runs in worker threads, one at a time per model: a lock per model keeps its call
counters, and so each explanation's ``model_calls``, exact.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from recausal.errors import InvalidInputError

if TYPE_CHECKING:
    from recausal.models import SequentialModel

T = TypeVar("T")


def _safe(fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception:
        return default


@dataclass
class ServedModel:
    """One loaded model, its name, and the lock that serialises work on it."""

    name: str
    model: SequentialModel
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: item token -> title, read once at start-up (empty when the dataset has none)
    titles: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.titles:
            self.titles = _safe(lambda: dict(self.model.titles), {})

    def run(self, fn: Callable[[], T]) -> T:
        """Call ``fn`` while holding this model's lock (meant for a worker thread).

        Args:
            fn: the work.

        Returns:
            What ``fn`` returns.
        """
        with self.lock:
            return fn()

    def describe(self) -> dict[str, Any]:
        """Name, family and sizes, for ``/health``.

        Returns:
            ``{"name", "family", "n_items", "capacity", "dataset"}``.
        """
        m = self.model
        return {
            "name": self.name,
            "family": type(m).__name__.removesuffix("Model"),
            "n_items": m.n_items - 1,
            "capacity": m.capacity,
            "dataset": _safe(lambda: m.dataset_name, None),
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

    def __init__(self, models: Mapping[str, Any]) -> None:
        """Load the models.

        Args:
            models: name -> bundle path, shipped bundle name, or loaded model.
        """
        self.models: dict[str, ServedModel] = {}
        for name, spec in models.items():
            if not isinstance(name, str) or not name:
                raise InvalidInputError(f"model names must be non-empty strings, got {name!r}")
            self.models[name] = _serve(name, spec)
        self.default = next(iter(self.models))

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


def get_pool(request: Request) -> ModelPool:
    """The pool of the app serving ``request`` (the routes' dependency).

    Args:
        request: the request.

    Returns:
        The app's :class:`ModelPool`.
    """
    return request.app.state.pool


#: a route parameter that receives the :class:`ModelPool`
Pool = Annotated[ModelPool, Depends(get_pool)]
