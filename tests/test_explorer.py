"""The explorer's routes (fast, no browser): the page and its assets, its data endpoints, the
batched recommend call, offline /docs and /redoc, and ``recausal explore``."""

from __future__ import annotations

import re
from importlib import resources

import pytest

pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
from click.testing import CliRunner
from starlette.testclient import TestClient

from recausal.service.app import create_app
from recausal.service.explorer import ASSETS, CSP, MAX_BATCH

# Any URL naming a host: the page must fetch nothing from outside its own origin.
_EXTERNAL = re.compile(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", re.IGNORECASE)
_INLINE_HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)


@pytest.fixture(scope="module")
def client(sasrec, bert4rec_bundle):
    with TestClient(create_app({"sasrec": sasrec, "bert4rec": bert4rec_bundle})) as c:
        yield c


def _window(model, user: str = "1") -> list[str]:
    return model.user_history(user)


# ------------------------------------------------------------------------------ the page
def test_page_is_served_with_a_strict_csp(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert '<script type="module" src="/static/explorer/explorer.js">' in r.text
    assert client.head("/").status_code == 200


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_assets_are_shipped_and_self_contained(client, name):
    r = client.get(f"/static/explorer/{name}")
    assert r.status_code == 200
    assert r.headers["content-type"] == ASSETS[name]
    text = r.text
    assert _EXTERNAL.findall(text.replace("http://www.w3.org/2000/svg", "")) == []
    assert not _INLINE_HANDLER.search(text)
    assert "<style" not in text.lower() or name != "index.html"
    assert "@import" not in text and "url(" not in text  # no fonts or images to fetch
    # the wheel ships the same file (package data)
    assert resources.files("recausal.service").joinpath("static", name).read_text() == text


def test_index_has_no_inline_script(client):
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", client.get("/").text, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)


def test_unknown_assets_are_404(client):
    assert client.get("/static/explorer/app.py").status_code == 404
    assert client.get("/static/explorer/..%2Fapp.py").status_code == 404
    assert client.get("/docs-assets/core.py").status_code == 404


# ------------------------------------------------------------------------------ docs offline
def test_docs_and_redoc_use_local_assets(client):
    for path, asset in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
        page = client.get(path)
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", page.text)
        assert urls and all(u.startswith("/") for u in urls), urls
        assert f"/docs-assets/{asset}" in page.text
        assert "fonts.googleapis" not in page.text
        assert client.get(f"/docs-assets/{asset}").status_code == 200
    assert client.get("/docs-assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    assert client.get("/openapi.json").json()["paths"]["/recommend/batch"]


# ------------------------------------------------------------------------------ data endpoints
def test_users_search_by_prefix(client, sasrec):
    r = client.get("/explorer/users", params={"q": "1", "model": "sasrec", "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["users"][0] == "1"
    assert all(u.startswith("1") for u in body["users"]) and len(body["users"]) <= 5
    assert body["total"] >= len(body["users"])
    everyone = client.get("/explorer/users", params={"limit": 200}).json()
    assert everyone["total"] == 120 and everyone["model"] == "sasrec"
    assert client.get("/explorer/users", params={"q": "nobody"}).json()["users"] == []
    assert client.get("/explorer/users", params={"limit": 0}).status_code == 422
    assert client.get("/explorer/users", params={"model": "nope"}).status_code == 404


def test_history_of_a_user(client, sasrec):
    body = client.get("/explorer/history/1", params={"model": "sasrec"}).json()
    items = _window(sasrec)
    assert body["history"] == items
    assert body["capacity"] == sasrec.capacity
    assert body["window_start"] == max(0, len(items) - sasrec.capacity)
    assert set(body["titles"]) <= set(items)
    assert client.get("/explorer/history/no-such-user").status_code == 404


def test_titles_lookup(client, sasrec):
    tok = sasrec.items[1]
    body = client.get("/explorer/titles", params={"items": f"{tok},zzz", "model": "sasrec"})
    assert body.status_code == 200
    assert set(body.json()["titles"]) <= {tok}


# ------------------------------------------------------------------------------ batch
def test_batch_matches_single_recommend_calls(client, sasrec):
    full = _window(sasrec)
    edited = full[:-1]
    r = client.post("/recommend/batch", json={"model": "sasrec", "histories": [full, edited]})
    assert r.status_code == 200
    body = r.json()
    assert body["k"] == 10 and body["capacity"] == sasrec.capacity
    assert len(body["results"]) == 2
    for hist, result in zip([full, edited], body["results"], strict=True):
        single = client.post("/recommend", json={"model": "sasrec", "history": hist}).json()
        assert result["recommendations"] == single["recommendations"]
        assert result["history_length"] == len(hist)
        assert result["history_used"] == min(len(hist), sasrec.capacity)
        assert result["window_start"] == len(hist) - result["history_used"]


def test_batch_with_numbers_k_and_the_other_model(client, bert4rec_bundle):
    from recausal.models import load_model

    model = load_model(bert4rec_bundle)
    hist = [int(t) for t in model.user_history("1")[-5:]]
    r = client.post("/recommend/batch", json={"model": "bert4rec", "histories": [hist], "k": 3})
    assert r.status_code == 200
    rows = r.json()["results"][0]["recommendations"]
    assert [row["rank"] for row in rows] == [1, 2, 3]
    expected = model.recommend([[str(t) for t in hist]], k=3)[0]
    assert [row["item"] for row in rows] == list(expected.items)


@pytest.mark.parametrize(
    "body",
    [
        {"histories": []},
        {"histories": [[]]},
        {"histories": "1,2"},
        {"histories": [["1"]], "k": 0},
        {"histories": [["1"]], "user": "1"},
        {"histories": [["1"]] * (MAX_BATCH + 1)},
        {"histories": [[True]]},
    ],
)
def test_batch_rejects_malformed_bodies(client, body):
    r = client.post("/recommend/batch", json=body)
    assert r.status_code == 422, r.text
    assert "error" in r.json()


def test_batch_unknown_item_and_model(client):
    r = client.post("/recommend/batch", json={"histories": [["no-such-item"]]})
    assert 400 <= r.status_code < 500 and "error" in r.json()
    r = client.post("/recommend/batch", json={"histories": [["1"]], "model": "nope"})
    assert r.status_code == 404


# ------------------------------------------------------------------------------ explore
def test_explore_serves_the_shipped_bundles_and_opens_the_browser(monkeypatch):
    import socket
    import threading
    import webbrowser

    import uvicorn

    from recausal.cli import cli
    from recausal.service import app as service_app
    from recausal.service import explore_cli

    seen: dict = {}
    opened = threading.Event()

    class Pool:
        def close(self) -> None:
            seen["closed"] = True

    def fake_create_app(models, **options):
        seen["models"] = models
        state = type("State", (), {"models": models, "pool": Pool()})()
        return type("App", (), {"state": state})()

    def fake_run(app, host, port, **options):
        seen.update(host=host, port=port)
        assert opened.wait(5), "the browser was not opened"

    def fake_open(url):
        seen["url"] = url
        opened.set()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setattr(service_app, "create_app", fake_create_app)
    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setattr(webbrowser, "open", fake_open)
    monkeypatch.setattr(explore_cli, "wait_for_server", lambda host, port: True)
    result = CliRunner().invoke(cli, ["explore", "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert list(seen["models"]) == list(explore_cli.EXPLORE_MODELS)
    assert (seen["host"], seen["port"]) == ("127.0.0.1", port)
    assert seen["url"] == f"http://127.0.0.1:{port}/" and seen["closed"]
    assert f"explorer: http://127.0.0.1:{port}/" in result.output

    opened.set()
    seen.pop("url")
    result = CliRunner().invoke(cli, ["explore", "--no-browser", "--port", str(port)])
    assert result.exit_code == 0, result.output
    assert "url" not in seen


def test_explorer_url_and_wait_for_server():
    import socket

    from recausal.service.explore_cli import explorer_url, wait_for_server

    assert explorer_url("0.0.0.0", 80) == "http://127.0.0.1:80/"
    assert explorer_url("::1", 8000) == "http://[::1]:8000/"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert wait_for_server("127.0.0.1", s.getsockname()[1], timeout=2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert not wait_for_server("127.0.0.1", port, timeout=0.3)


def test_redoc_bundle_fetches_nothing_remote(client):
    js = client.get("/docs-assets/redoc.standalone.js").text
    assert "cdn.redoc.ly" not in js and "/docs-assets/favicon.png" in js
