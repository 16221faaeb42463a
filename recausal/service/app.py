"""The HTTP service: recommendations and their explanations over HTTP (FastAPI).

``create_app({"name": bundle_path_or_model, ...})`` loads the models once into a
:class:`~recausal.service.pool.ModelPool` and returns an ASGI app whose routes get the pool
injected. Model work runs on each model's own worker thread, one request at a time per model,
behind a bounded queue and within a time budget
(:meth:`~recausal.service.pool.ServedModel.call`), so the event loop, ``/health`` and the other
models keep answering while a model computes; an explanation that runs out of its budget
answers what it found, marked incomplete (``"complete": false``). Every request body is
validated before any model work: anything malformed gets a 4xx answer ``{"error": ...,
"detail": ...}``, never a 500. The work itself is :mod:`recausal.usecases`; the routes only
shape the answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response

from recausal import usecases
from recausal._checks import check_int
from recausal._version import __version__
from recausal.errors import InvalidInputError
from recausal.report.html import explanation_html
from recausal.service.errors import error_response, install_error_handlers
from recausal.service.explorer import install_docs
from recausal.service.explorer import router as explorer_router
from recausal.service.limits import (
    MAX_BODY_BYTES,
    MAX_HISTORY,
    MAX_K,
    MAX_SEED,
    MAX_SET_SIZE,
    QUEUE_SIZE,
    SERVICE_LIMITS,
    TIME_BUDGET_S,
    BodyLimit,
    HostCheck,
    normalize_hosts,
)
from recausal.service.pool import ModelPool, Pool, ServedModel
from recausal.service.responses import finite_json
from recausal.service.schemas import ExplainRequest, HistoryRequest, RecommendRequest

if TYPE_CHECKING:
    from recausal.explain import Explanation
    from recausal.models import SequentialModel

__all__ = ["MAX_BODY_BYTES", "MAX_HISTORY", "ServedModel", "create_app", "parse_model_specs"]

#: ``recausal.discovery.discover``, or None where causal discovery is not installed
_discover_function = usecases.discover_function

router = APIRouter()


# --------------------------------------------------------------------------- helpers
def _history(sm: ServedModel, body: HistoryRequest) -> usecases.UsedHistory:
    """The body's history (a user's or the given items), whole."""
    if body.history is not None:
        return usecases.given_history(sm.model, body.history)
    return usecases.user_history(sm.model, str(body.user))


def _answer(sm: ServedModel, hist: usecases.UsedHistory, **fields: Any) -> JSONResponse:
    """A JSON answer about one history: the model, the user, the history's lengths, then
    ``fields``."""
    head = {
        "model": sm.name,
        "user": hist.user,
        "history_length": hist.length,
        "history_used": hist.window,
    }
    return finite_json({**head, **fields})


def _explain(
    sm: ServedModel,
    items: list[str],
    explainer: str,
    k: int,
    params: dict[str, Any],
    search_s: float,
) -> Explanation:
    """The explanation, with the parameters the service imposes on that explainer, searching
    for at most ``search_s`` seconds."""
    params = {**params, **SERVICE_LIMITS.get(explainer, {})}
    return usecases.explain_history(
        sm.model, items, explainer, k=k, time_budget=search_s, **params
    )


# --------------------------------------------------------------------------- routes
# No docstrings on the routes: FastAPI would publish them as the operations' descriptions;
# each route's ``summary`` documents it.
@router.get("/health", summary="Liveness and the loaded models")
async def health(pool: Pool) -> dict[str, Any]:
    return {
        "status": "ok",
        "version": __version__,
        "default_model": pool.default,
        "models": [sm.describe() for sm in pool.models.values()],
        "explainers": usecases.explainer_names(),
    }


@router.post("/recommend", summary="Top-k items for a user or a history")
async def recommend(body: RecommendRequest, pool: Pool) -> JSONResponse:
    sm = pool.pick(body.model)

    def work(_: float) -> tuple[usecases.UsedHistory, list[dict[str, Any]]]:
        hist = _history(sm, body)
        rows = usecases.recommendation_rows(
            sm.model, hist.items, body.k, titles=sm.titles, exclude_seen=body.exclude_seen
        )
        return hist, rows

    hist, rows = await sm.call(work)
    return _answer(sm, hist, k=body.k, recommendations=rows)


@router.post(
    "/explain", summary="Which history items caused a recommendation (the top-1, or any item)"
)
async def explain(body: ExplainRequest, pool: Pool) -> JSONResponse:
    sm = pool.pick(body.model)
    name = usecases.check_explainer(body.explainer)
    params = {
        "max_size": body.max_size,
        "removal": body.removal,
        "seed": body.seed,
        "exclude_seen": body.exclude_seen,
        "item": None if body.item is None else str(body.item),
        "rank": body.rank,
    }

    def work(search_s: float) -> tuple[usecases.UsedHistory, Explanation]:
        hist = _history(sm, body)
        return hist, _explain(sm, hist.items, name, body.k, params, search_s)

    hist, expl = await sm.call(work)
    payload = usecases.explanation_payload(expl, sm.titles, include_graph=body.include_graph)
    return _answer(sm, hist, explanation=payload)


@router.get(
    "/explain/{user}.html",
    response_class=HTMLResponse,
    summary="The explanation of a user's recommendation as a self-contained HTML page",
)
async def explain_page(
    user: Annotated[str, PathParam(max_length=64)],
    pool: Pool,
    model: Annotated[str | None, Query(max_length=200)] = None,
    explainer: Annotated[str | None, Query(max_length=40)] = None,
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    max_size: Annotated[int, Query(ge=1, le=MAX_SET_SIZE)] = 5,
    removal: Literal["delete", "pad"] = "delete",
    seed: Annotated[int, Query(ge=0, le=MAX_SEED)] = 0,
    item: Annotated[str | None, Query(max_length=64)] = None,
    rank: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
    exclude_seen: bool | None = None,
) -> HTMLResponse:
    sm = pool.pick(model)
    name = usecases.check_explainer(explainer)
    params = {
        "max_size": max_size,
        "removal": removal,
        "seed": seed,
        "item": item,
        "rank": rank,
        "exclude_seen": exclude_seen,
    }

    def work(search_s: float) -> Explanation:
        items = usecases.user_history(sm.model, user).items
        return _explain(sm, items, name, k, params, search_s)

    expl = await sm.call(work)
    page = explanation_html(expl, model=sm.model, titles=sm.titles, user=user)
    return HTMLResponse(page)


@router.get("/graph/{user}", summary="The causal graph (PAG) of a user's sequence: JSON or SVG")
async def graph(
    user: Annotated[str, PathParam(max_length=64)],
    pool: Pool,
    model: Annotated[str | None, Query(max_length=200)] = None,
    head: Annotated[int | None, Query(ge=0, le=1023)] = None,
    format: Literal["json", "svg"] = "json",
    item: Annotated[str | None, Query(max_length=64)] = None,
    exclude_seen: bool | None = None,
) -> Response:
    discover = _discover_function()
    if discover is None:
        return error_response(501, usecases.NO_DISCOVERY)
    sm = pool.pick(model)

    def work(_: float) -> Any:
        items = usecases.user_history(sm.model, user).items
        return usecases.causal_graph(
            sm.model, items, head=head, discover=discover, target=item, exclude_seen=exclude_seen
        )

    pag = await sm.call(work)
    if format == "svg":
        label = "aggregate over heads" if head is None else f"head {head}"
        title = f"Causal graph for user {user} ({sm.name}, {label})"
        svg = usecases.graph_svg(pag, sm.titles, title=title)
        return Response(svg, media_type="image/svg+xml")
    return finite_json({"model": sm.name, "user": user, "head": head, "graph": pag.to_dict()})


# --------------------------------------------------------------------------- the app
def create_app(
    models: Mapping[str, str | os.PathLike | SequentialModel],
    *,
    max_body_bytes: int = MAX_BODY_BYTES,
    queue_size: int = QUEUE_SIZE,
    time_budget: float = TIME_BUDGET_S,
    allowed_hosts: Sequence[str] | None = None,
) -> FastAPI:
    """The service as an ASGI app.

    Args:
        models: name -> bundle path (or shipped bundle name) or an already loaded model; the
            first is the default model.
        max_body_bytes: the largest request body accepted (larger ones get 413).
        queue_size: requests each model may hold waiting behind the one it computes (more
            get 503 with ``Retry-After``).
        time_budget: seconds each request may take, its wait for its model included (past
            it: 503 while waiting, 504 while computing; an explanation stops searching at
            :data:`~recausal.service.limits.SEARCH_SHARE` of it and answers what it found,
            marked incomplete).
        allowed_hosts: the Host header values answered (others get 400), e.g.
            :data:`~recausal.service.limits.DEFAULT_ALLOWED_HOSTS` as ``recausal serve``
            does; ``None`` checks no Host header.

    Returns:
        The FastAPI app; ``app.state.models`` maps each name to its
        :class:`~recausal.service.pool.ServedModel`.
    """
    if not isinstance(models, Mapping) or not models:
        raise InvalidInputError("models must be a non-empty mapping of name to bundle or model")
    check_int(max_body_bytes, "max_body_bytes", minimum=1)
    pool = ModelPool(models, queue_size=queue_size, time_budget=time_budget)
    app = FastAPI(
        title="recausal",
        version=__version__,
        description="Recommendations from RecBole transformers, and which history items "
        "caused them.",
        docs_url=None,  # served offline by install_docs (no CDN)
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    if allowed_hosts is not None:  # outermost: checked first
        app.add_middleware(HostCheck, allowed_hosts=normalize_hosts(allowed_hosts))
    app.state.pool = pool
    app.state.models = pool.models
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(explorer_router)
    install_docs(app)
    return app


def parse_model_specs(specs: list[str] | tuple[str, ...]) -> dict[str, str | Path]:
    """Read the ``--model`` values of ``recausal serve``.

    Args:
        specs: each ``NAME=PATH``, or a bare path / shipped name (named after its last part).

    Returns:
        Name -> path or shipped name, in the order given.
    """
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
