"""The HTTP service: recommendations and their explanations over HTTP (FastAPI).

``create_app({"name": bundle_path_or_model, ...})`` loads the models once and returns an ASGI
app. Model work runs in worker threads, one at a time per model (a lock per model keeps its
call counters, and so each explanation's ``model_calls``, exact), so the event loop keeps
answering while a model computes. Every request body is validated before any model work:
anything malformed gets a 4xx answer ``{"error": ..., "detail": ...}``, never a 500.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from recausal.errors import (
    InvalidInputError,
    RecausalError,
    UnknownItemError,
    UnknownUserError,
    UnsupportedModelError,
)

if TYPE_CHECKING:
    from recausal.models.adapter import SequentialModel

__all__ = ["MAX_BODY_BYTES", "MAX_HISTORY", "ServedModel", "create_app"]

#: hard cap on the items of a history sent in a request (longer ones are refused, 422)
MAX_HISTORY = 1000
#: hard cap on a request body, in bytes (larger ones are refused, 413)
MAX_BODY_BYTES = 64 * 1024
#: most items a request may ask for
MAX_K = 100
#: largest explanation set a request may ask for
MAX_SET_SIZE = 10

#: explainer parameters the service imposes (bounds the work one request can cause)
SERVICE_LIMITS: dict[str, dict[str, Any]] = {"exhaustive": {"max_candidates": 20_000}}

T = TypeVar("T")

Token = Annotated[StrictStr, Field(min_length=1, max_length=64)] | StrictInt
UserId = Annotated[StrictStr, Field(min_length=1, max_length=64)] | StrictInt


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
        """Call ``fn`` while holding this model's lock (meant for a worker thread)."""
        with self.lock:
            return fn()

    def describe(self) -> dict[str, Any]:
        """Name, family and sizes, for ``/health``."""
        m = self.model
        return {
            "name": self.name,
            "family": type(m).__name__.removesuffix("Model"),
            "n_items": m.n_items - 1,
            "capacity": m.capacity,
            "dataset": _safe(lambda: m.dataset_name, None),
        }


def _safe(fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception:
        return default


class _Body(BaseModel):
    """Fields shared by every POST body."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        None, description="Name of a loaded model (default: the first)."
    )
    user: UserId | None = Field(None, description="A user id of the model's dataset.")
    history: Annotated[list[Token], Field(min_length=1, max_length=MAX_HISTORY)] | None = Field(
        None, description="Item tokens, oldest first (instead of user)."
    )
    k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = Field(10, description="Top-k size.")

    @model_validator(mode="after")
    def _one_source(self) -> _Body:
        if (self.user is None) == (self.history is None):
            raise ValueError("give exactly one of 'user' or 'history'")
        return self


class RecommendRequest(_Body):
    """Body of ``POST /recommend``."""


class ExplainRequest(_Body):
    """Body of ``POST /explain``."""

    explainer: Annotated[StrictStr, Field(max_length=40)] | None = Field(
        None, description="Explainer name (default: causal when installed, else occlusion)."
    )
    max_size: Annotated[StrictInt, Field(ge=1, le=MAX_SET_SIZE)] = 5
    removal: Literal["delete", "pad"] = "delete"
    seed: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] = 0
    include_graph: bool = True


def _explainers() -> dict[str, Any]:
    from recausal.explain import EXPLAINERS

    return EXPLAINERS


def default_explainer() -> str:
    """``causal`` when it is registered, else ``occlusion``."""
    return "causal" if "causal" in _explainers() else "occlusion"


def _finite(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by None (JSON has no inf or NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def _error(status: int, message: str, detail: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if detail is not None:
        body["detail"] = detail
    return JSONResponse(body, status_code=status)


def _status_of(exc: RecausalError) -> int:
    if isinstance(exc, UnknownUserError):
        return 404
    if isinstance(exc, UnknownItemError | InvalidInputError):
        return 422
    if isinstance(exc, UnsupportedModelError):
        return 400
    return 400


class _BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 (by the declared
    length before reading, or while reading a body sent without one)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.strip().isdigit() and int(declared) > self.limit:
            response = _error(413, f"request body larger than {self.limit} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise StarletteHTTPException(
                        413, f"request body larger than {self.limit} bytes"
                    )
            return message

        await self.app(scope, limited_receive, send)


def _load(name: str, spec: Any) -> ServedModel:
    from recausal.models.adapter import SequentialModel

    if isinstance(spec, SequentialModel) or (
        not isinstance(spec, str | os.PathLike) and hasattr(spec, "recommend")
    ):
        return ServedModel(name, spec)
    from recausal.models import load_model

    return ServedModel(name, load_model(spec))


def _discover_function() -> Callable[..., Any] | None:
    """``recausal.discover.discover``, or None where causal discovery is not installed."""
    import importlib

    try:
        module = importlib.import_module("recausal.discover")
    except ImportError:
        return None
    fn = getattr(module, "discover", None)
    return fn if callable(fn) else None


def _as_pag(found: Any, head: int | None) -> Any:
    """The PAG in what ``discover`` returned (a PAG, or a result with ``.pag(head)``)."""
    from recausal.causal.pag import PAG

    if isinstance(found, PAG):
        return found
    return found.pag(head)


def create_app(
    models: Mapping[str, str | os.PathLike | SequentialModel],
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> FastAPI:
    """The service as an ASGI app; ``models`` maps a name to a bundle path (or shipped bundle
    name) or to an already loaded model. The first is the default model."""
    if not isinstance(models, Mapping) or not models:
        raise InvalidInputError("models must be a non-empty mapping of name to bundle or model")
    if not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise InvalidInputError(
            f"max_body_bytes must be a positive integer, got {max_body_bytes!r}"
        )
    served: dict[str, ServedModel] = {}
    for name, spec in models.items():
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"model names must be non-empty strings, got {name!r}")
        served[name] = _load(name, spec)
    default = next(iter(served))

    from recausal import __version__

    app = FastAPI(
        title="recausal",
        version=__version__,
        description="Recommendations from RecBole transformers, and which history items "
        "caused them.",
    )
    app.add_middleware(_BodyLimit, limit=max_body_bytes)
    app.state.models = served

    # ----------------------------------------------------------------- errors
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in exc.errors()[:20]
        ]
        summary = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in detail[:5])
        return _error(422, f"invalid request: {summary}", detail)

    @app.exception_handler(RecausalError)
    async def _recausal(request: Request, exc: RecausalError) -> JSONResponse:
        return _error(_status_of(exc), str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        if exc.status_code == 400 and message == "There was an error parsing the body":
            message = (
                "could not parse the request body as JSON (nested too deeply, a number too "
                "long, or not UTF-8)"
            )
        return _error(exc.status_code, message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__})")

    # ----------------------------------------------------------------- helpers
    def pick(name: str | None) -> ServedModel:
        if name is None:
            return served[default]
        if name not in served:
            raise StarletteHTTPException(
                404, f"unknown model {name!r}; loaded: {', '.join(served)}"
            )
        return served[name]

    def history_of(sm: ServedModel, body: _Body) -> tuple[list[str], str | None, int]:
        """The history to use (at most ``capacity`` items) and how many were dropped."""
        if body.history is not None:
            hist = [str(t) for t in body.history]
            user = None
        else:
            user = str(body.user)
            hist = list(sm.model.user_history(user))
        cap = sm.model.capacity
        dropped = max(0, len(hist) - cap)
        return hist[dropped:], user, dropped

    def check_explainer(name: str | None) -> str:
        name = default_explainer() if name is None else name
        known = _explainers()
        if name not in known:
            raise InvalidInputError(f"unknown explainer {name!r}; choose one of {', '.join(known)}")
        return name

    # ----------------------------------------------------------------- routes
    @app.get("/health", summary="Liveness and the loaded models")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "version": __version__,
            "default_model": default,
            "models": [sm.describe() for sm in served.values()],
            "explainers": list(_explainers()),
        }

    @app.post("/recommend", summary="Top-k items for a user or a history")
    async def recommend(body: RecommendRequest) -> JSONResponse:
        sm = pick(body.model)

        def work() -> tuple[Any, list[str], str | None, int]:
            hist, user, dropped = history_of(sm, body)
            return sm.model.recommend([hist], k=body.k)[0], hist, user, dropped

        rec, hist, user, dropped = await run_in_threadpool(sm.run, work)
        titles = sm.titles
        rows = [
            {"rank": r, "item": item, "title": titles.get(item), "score": score}
            for r, (item, score) in enumerate(zip(rec.items, rec.scores, strict=True), start=1)
        ]
        return JSONResponse(
            _finite(
                {
                    "model": sm.name,
                    "user": user,
                    "history_length": len(hist) + dropped,
                    "history_used": len(hist),
                    "k": body.k,
                    "recommendations": rows,
                }
            )
        )

    def explain_work(
        sm: ServedModel, hist: list[str], explainer: str, k: int, params: dict[str, Any]
    ) -> Any:
        from recausal.explain import get_explainer

        params = {**params, **SERVICE_LIMITS.get(explainer, {})}
        return get_explainer(explainer, **params).explain(sm.model, hist, k=k)

    @app.post("/explain", summary="Which history items caused the top-1 recommendation")
    async def explain(body: ExplainRequest) -> JSONResponse:
        sm = pick(body.model)
        name = check_explainer(body.explainer)
        params = {"max_size": body.max_size, "removal": body.removal, "seed": body.seed}

        def work() -> tuple[Any, list[str], str | None, int]:
            hist, user, dropped = history_of(sm, body)
            return explain_work(sm, hist, name, body.k, params), hist, user, dropped

        expl, hist, user, dropped = await run_in_threadpool(sm.run, work)
        titles = sm.titles
        out = expl.to_dict(include_graph=body.include_graph)
        out["titles"] = {t: titles[t] for t in {*expl.history, *expl.top_k} if t in titles}
        return JSONResponse(
            _finite(
                {
                    "model": sm.name,
                    "user": user,
                    "history_length": len(hist) + dropped,
                    "history_used": len(hist),
                    "explanation": out,
                }
            )
        )

    @app.get(
        "/explain/{user}.html",
        response_class=HTMLResponse,
        summary="The explanation of a user's recommendation as a self-contained HTML page",
    )
    async def explain_page(
        user: Annotated[str, PathParam(max_length=64)],
        model: Annotated[str | None, Query(max_length=200)] = None,
        explainer: Annotated[str | None, Query(max_length=40)] = None,
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        max_size: Annotated[int, Query(ge=1, le=MAX_SET_SIZE)] = 5,
        removal: Literal["delete", "pad"] = "delete",
        seed: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
    ) -> HTMLResponse:
        from recausal.report.html import explanation_html

        sm = pick(model)
        name = check_explainer(explainer)
        params = {"max_size": max_size, "removal": removal, "seed": seed}
        body = RecommendRequest(user=user, k=k)
        expl = await run_in_threadpool(
            sm.run, lambda: explain_work(sm, history_of(sm, body)[0], name, k, params)
        )
        page = explanation_html(expl, model=sm.model, titles=sm.titles, user=user)
        return HTMLResponse(page)

    @app.get("/graph/{user}", summary="The causal graph (PAG) of a user's sequence: JSON or SVG")
    async def graph(
        user: Annotated[str, PathParam(max_length=64)],
        model: Annotated[str | None, Query(max_length=200)] = None,
        head: Annotated[int | None, Query(ge=0, le=1023)] = None,
        format: Literal["json", "svg"] = "json",
    ) -> Response:
        discover = _discover_function()
        if discover is None:
            return _error(501, "causal discovery (recausal.discover) is not available here")
        sm = pick(model)
        body = RecommendRequest(user=user)

        def work() -> Any:
            hist = history_of(sm, body)[0]
            found = discover(sm.model, hist, heads="aggregate" if head is None else head)
            return _as_pag(found, head)

        pag = await run_in_threadpool(sm.run, work)
        label = "aggregate over heads" if head is None else f"head {head}"
        if format == "svg":
            titles = sm.titles
            labels = {k: titles.get(t, t) for k, t in enumerate(pag.items or ())}
            svg = pag.to_svg(
                title=f"Causal graph for user {user} ({sm.name}, {label})", labels=labels
            )
            return Response(svg, media_type="image/svg+xml")
        return JSONResponse(
            _finite({"model": sm.name, "user": user, "head": head, "graph": pag.to_dict()})
        )

    return app


def parse_model_specs(specs: list[str] | tuple[str, ...]) -> dict[str, str | Path]:
    """``NAME=PATH`` or a bare path / shipped name (named after its last path part)."""
    out: dict[str, str | Path] = {}
    for spec in specs:
        if not isinstance(spec, str) or not spec.strip():
            raise InvalidInputError(f"--model needs NAME=PATH or a bundle, got {spec!r}")
        name, sep, path = spec.partition("=")
        if not sep:
            path = spec
            name = Path(spec.rstrip("/\\")).name
        if not name or not path:
            raise InvalidInputError(f"--model needs NAME=PATH or a bundle, got {spec!r}")
        if name in out:
            raise InvalidInputError(f"--model: the name {name!r} is given twice")
        out[name] = path
    return out
