"""The explanation explorer: a single-page app at ``/`` on the service's JSON API.

The page and its assets (``static/``: ``index.html``, ``explorer.js``, ``explorer.css``) are
served from the package, under a strict Content-Security-Policy (no inline script or style,
no other origin), so the explorer works with no network. Besides the page, this router adds
what the page needs and the core API lacks:

- ``GET /explorer/users``: user ids of a model's dataset matching a search;
- ``GET /explorer/history/{user}``: a user's full history with its titles and window;
- ``GET /explorer/titles``: the titles of some items (those outside a history and its top-k);
- ``POST /recommend/batch``: the top-k of several histories in one call (the counterfactual
  playground: the history as it is and as edited).

:func:`install_docs` serves ``/docs`` (Swagger UI) and ``/redoc`` from the assets shipped by the
``fastapi-offline`` package instead of a CDN.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from recausal import usecases
from recausal.errors import RecausalError
from recausal.service.errors import error_response
from recausal.service.limits import MAX_HISTORY, MAX_K
from recausal.service.pool import Pool, ServedModel
from recausal.service.responses import finite_json
from recausal.service.schemas import Token

__all__ = ["CSP", "MAX_BATCH", "BatchRequest", "install_docs", "router"]

#: most histories one ``POST /recommend/batch`` may hold
MAX_BATCH = 64
#: most user ids one ``GET /explorer/users`` answers with
MAX_USERS = 200

#: the explorer page's Content-Security-Policy: everything from this origin, nothing inline
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

#: the explorer's assets: file name -> media type (nothing else is served from static/)
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "explorer.js": "text/javascript; charset=utf-8",
    "explorer.css": "text/css; charset=utf-8",
}

#: Swagger UI and ReDoc assets shipped by fastapi-offline: file name -> media type
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
DOCS_PREFIX = "/docs-assets"
#: the body of /docs and /redoc without fastapi-offline
_NO_DOCS = "<p>Install the <code>serve</code> extra (fastapi-offline) for the API docs.</p>"
#: URLs in the docs assets that would leave the machine, and their local stand-ins
DOCS_REWRITES = {
    "redoc.standalone.js": [
        (b"https://cdn.redoc.ly/redoc/logo-mini.svg", f"{DOCS_PREFIX}/favicon.png".encode())
    ]
}

router = APIRouter()


class BatchRequest(BaseModel):
    """Body of ``POST /recommend/batch``: several histories, one model, one k."""

    model_config = ConfigDict(extra="forbid")

    model: Annotated[StrictStr, Field(max_length=200)] | None = Field(
        None, description="Name of a loaded model (default: the first)."
    )
    histories: Annotated[
        list[Annotated[list[Token], Field(min_length=1, max_length=MAX_HISTORY)]],
        Field(min_length=1, max_length=MAX_BATCH),
    ] = Field(description="Histories of item tokens, each oldest first.")
    k: Annotated[StrictInt, Field(ge=1, le=MAX_K)] = Field(10, description="Top-k size.")
    exclude_seen: bool | None = Field(
        None, description="Leave out the items of each history (default: the model's policy)."
    )


def _asset(package: str, name: str, media_type: str, *, csp: bool = False) -> Response:
    """A file shipped in ``package``'s ``static/`` folder (ReDoc's remote logo made local)."""
    data = (resources.files(package) / "static" / name).read_bytes()
    for remote, local in DOCS_REWRITES.get(name, []) if package != "recausal.service" else []:
        data = data.replace(remote, local)
    headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    if csp:
        headers["Content-Security-Policy"] = CSP
    return Response(data, media_type=media_type, headers=headers)


def _user_ids(sm: ServedModel) -> list[str]:
    """The user ids of the model's dataset, numeric ones in numeric order (empty when the
    model has no dataset)."""
    try:
        ids = list(sm.model._user_histories)  # the model's dataset, read once and cached
    except (RecausalError, AttributeError, OSError):
        return []
    return sorted(ids, key=lambda u: (not u.isdigit(), int(u) if u.isdigit() else 0, u))


# --------------------------------------------------------------------------- the page
@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def page() -> Response:
    return _asset("recausal.service", "index.html", ASSETS["index.html"], csp=True)


@router.get("/static/explorer/{name}", include_in_schema=False)
async def asset(name: Annotated[str, PathParam(max_length=40)]) -> Response:
    if name not in ASSETS:
        return error_response(404, f"no asset {name!r}")
    return _asset("recausal.service", name, ASSETS[name], csp=name == "index.html")


# --------------------------------------------------------------------------- data for the page
@router.get("/explorer/users", summary="User ids of a model's dataset, by prefix")
async def users(
    pool: Pool,
    q: Annotated[str, Query(max_length=64)] = "",
    model: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_USERS)] = 20,
) -> dict[str, Any]:
    sm = pool.pick(model)
    ids = await sm.call(lambda _: _user_ids(sm))
    query = q.strip()
    hits = [u for u in ids if u.startswith(query)] if query else ids
    return {"model": sm.name, "query": query, "total": len(hits), "users": hits[:limit]}


@router.get("/explorer/history/{user}", summary="A user's full history, its window and titles")
async def user_history(
    user: Annotated[str, PathParam(max_length=64)],
    pool: Pool,
    model: Annotated[str | None, Query(max_length=200)] = None,
) -> JSONResponse:
    sm = pool.pick(model)
    hist = await sm.call(lambda _: usecases.user_history(sm.model, user))
    return JSONResponse(
        {
            "model": sm.name,
            "user": hist.user,
            "history": hist.items,
            "window_start": hist.dropped,
            "capacity": sm.model.capacity,
            "titles": {t: sm.titles[t] for t in set(hist.items) if t in sm.titles},
        }
    )


@router.get("/explorer/titles", summary="Titles of some items of a model's dataset")
async def titles(
    pool: Pool,
    items: Annotated[str, Query(max_length=4000, description="Item tokens, comma-separated.")],
    model: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    sm = pool.pick(model)
    wanted = [t for t in items.split(",") if t][:MAX_K]
    return {"model": sm.name, "titles": {t: sm.titles[t] for t in wanted if t in sm.titles}}


@router.post("/recommend/batch", summary="Top-k items for several histories in one call")
async def recommend_batch(body: BatchRequest, pool: Pool) -> JSONResponse:
    sm = pool.pick(body.model)

    def work(_: float) -> list[dict[str, Any]]:
        out = []
        for items in body.histories:
            hist = usecases.given_history(sm.model, items)
            rows = usecases.recommendation_rows(
                sm.model, hist.items, body.k, titles=sm.titles, exclude_seen=body.exclude_seen
            )
            out.append(
                {
                    "history_length": hist.length,
                    "history_used": hist.window,
                    "window_start": hist.dropped,
                    "recommendations": rows,
                }
            )
        return out

    results = await sm.call(work)
    shown = {str(t) for h in body.histories for t in h}
    titles = {t: sm.titles[t] for t in shown if t in sm.titles}
    return finite_json(
        {
            "model": sm.name,
            "k": body.k,
            "capacity": sm.model.capacity,
            "results": results,
            "titles": titles,
        }
    )


# --------------------------------------------------------------------------- offline /docs
def _docs_html(title: str, head: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        f'<link rel="icon" href="{DOCS_PREFIX}/favicon.png">{head}</head>'
        f"<body>{body}</body></html>"
    )


def _docs_page(
    app: FastAPI, path: str, name: str, title: str, render: Callable[[str], HTMLResponse] | None
) -> None:
    """Serve the docs page ``render(title)`` at ``path`` (the route ``name``), or, without
    ``render`` (no fastapi-offline), a page saying how to install it."""

    async def docs_page() -> HTMLResponse:
        if render is None:
            return _docs_html(title, "", _NO_DOCS)
        return render(title)

    app.get(path, include_in_schema=False, name=name)(docs_page)


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs`` (Swagger UI) and ``/redoc`` with assets from the ``fastapi-offline``
    package (no CDN); without that package both pages say how to install it.

    Args:
        app: a FastAPI app made with ``docs_url=None, redoc_url=None``.
    """
    try:
        resources.files("fastapi_offline").joinpath("static")
        have_assets = True
    except ModuleNotFoundError:
        have_assets = False
    openapi = app.openapi_url or "/openapi.json"
    title = app.title

    @app.get(f"{DOCS_PREFIX}/{{name}}", include_in_schema=False)
    async def docs_asset(name: Annotated[str, PathParam(max_length=40)]) -> Response:
        if not have_assets or name not in DOCS_ASSETS:
            return error_response(404, f"no asset {name!r}")
        response = _asset("fastapi_offline", name, DOCS_ASSETS[name])
        response.headers["Cache-Control"] = "max-age=86400"
        return response

    def swagger(page_title: str) -> HTMLResponse:
        from fastapi.openapi.docs import get_swagger_ui_html

        return get_swagger_ui_html(
            openapi_url=openapi,
            title=page_title,
            swagger_js_url=f"{DOCS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_PREFIX}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # its badge would call out
        )

    def redoc(page_title: str) -> HTMLResponse:
        from fastapi.openapi.docs import get_redoc_html

        return get_redoc_html(
            openapi_url=openapi,
            title=page_title,
            redoc_js_url=f"{DOCS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_PREFIX}/favicon.png",
            with_google_fonts=False,
        )

    _docs_page(app, "/docs", "swagger", f"{title} - Swagger UI", swagger if have_assets else None)
    _docs_page(app, "/redoc", "redoc", f"{title} - ReDoc", redoc if have_assets else None)
