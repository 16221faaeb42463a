"""The explorer in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium) against the service on a loopback socket.

In CI (``CI`` set) a missing browser fails these tests; elsewhere it skips them. Selenium is
given the system chromedriver, so it downloads nothing.

Run as a script, this file takes the screenshots of docs/explorer.md from a running explorer::

    recausal explore --no-browser --port 8765 &
    python tests/test_explorer_browser.py http://127.0.0.1:8765 docs/img
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
WAIT_S = 30


def _need(reason: str) -> None:
    """Fail in CI (the browser is part of the test set-up there), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/run installs it)", pytrace=False)
    pytest.skip(reason)


def _browser_paths() -> tuple[str, str]:
    binary = next((p for p in map(shutil.which, CHROMIUM) if p), None)
    debian = Path("/usr/lib/chromium/chromedriver")
    driver = shutil.which("chromedriver") or (str(debian) if debian.exists() else None)
    if binary is None or driver is None:
        _need("chromium or chromedriver is missing (apt-get install chromium chromium-driver)")
    return binary, driver


def make_driver(width: int = 1280, height: int = 900, *, mobile: bool = False) -> Any:
    """A headless Chromium with its console and network logs kept."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium is not installed (the 'test' extra)")
    binary, driver_path = _browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--metrics-recording-only",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    drv = webdriver.Chrome(service=Service(driver_path), options=options)
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile},
    )
    drv.set_script_timeout(WAIT_S)
    return drv


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def server(sasrec_bundle, bert4rec_bundle) -> Iterator[str]:
    """The service with the tiny models on a loopback socket (uvicorn in a thread)."""
    pytest.importorskip("fastapi", reason="the 'serve' extra is not installed")
    from recausal.service.app import create_app
    from recausal.testing.server import serving

    app = create_app({"sasrec": sasrec_bundle, "bert4rec": bert4rec_bundle})
    with serving(app) as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (first, so that a missing browser is told before the models train)."""
    drv = make_driver()
    yield drv
    drv.quit()


@pytest.fixture
def page(browser, server) -> Iterator[Any]:
    """The browser; after the test, no console error and no request off the machine."""
    browser.get_log("browser")
    browser.get_log("performance")
    yield browser
    check_logs(browser, server)


def check_logs(drv: Any, base: str) -> None:
    """Fail on any console error, or any request to anything but ``base``'s origin."""
    errors = [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    origin = urlsplit(base)
    away = []
    for entry in drv.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] not in ("Network.requestWillBeSent", "Network.webSocketCreated"):
            continue
        url = message["params"].get("request", {}).get("url") or message["params"].get("url", "")
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            continue
        if (parts.scheme, parts.hostname, parts.port) != (
            origin.scheme,
            "127.0.0.1",
            origin.port,
        ):
            away.append(url)
    assert away == [], away


# ------------------------------------------------------------------------------ helpers
def wait(drv: Any, condition: Any, what: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(drv, WAIT_S, poll_frequency=0.05).until(condition, message=what)


def css(drv: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return drv.find_elements(By.CSS_SELECTOR, selector)


def status_is(text: str) -> Any:
    return lambda d: text in css(d, "#status")[0].text


def list_items(drv: Any, selector: str) -> list[str]:
    return [b.get_attribute("data-item") for b in css(drv, f"{selector} button[data-rank]")]


def causes(drv: Any) -> set[int]:
    return {int(b.get_attribute("data-pos")) for b in css(drv, "#timeline li.cause button")}


def api_explanation(base: str, **body: Any) -> dict:
    import httpx

    r = httpx.post(f"{base}/explain", json=body, timeout=WAIT_S)
    assert r.status_code == 200, r.text
    return r.json()["explanation"]


# ------------------------------------------------------------------------------ tests
def test_explain_toggle_and_permalink(page, server):
    from selenium.webdriver.common.keys import Keys

    drv = page
    drv.get(f"{server}/")
    wait(drv, status_is("Pick a user"), "the page to start")
    models = [o.get_attribute("value") for o in css(drv, "#model option")]
    assert models == ["sasrec", "bert4rec"]
    assert css(drv, "#explainer")[0].get_attribute("value") == "causal"  # the default

    # pick user 1 (the search offers it)
    box = css(drv, "#user")[0]
    box.send_keys("1")
    wait(drv, lambda d: "1" in [o.get_attribute("value") for o in css(d, "#users option")], "users")
    box.send_keys(Keys.ENTER)
    wait(drv, lambda d: len(css(d, "#topk button[data-rank]")) == 10, "the top-k list")
    top = list_items(drv, "#topk")
    assert css(drv, "#timeline li.window")  # the model's window is marked

    # click the third item: its explanation, highlighted as the API answers
    css(drv, '#topk button[data-rank="3"]')[0].click()
    wait(drv, status_is("Explained #3"), "the explanation")
    expected = api_explanation(server, user="1", model="sasrec", rank=3, k=10, explainer="causal")
    assert expected["recommended"] == top[2]
    want = set(expected["sets"][0]["positions"]) if expected["sets"] else set()
    assert causes(drv) == want
    if expected["new_rank"] is not None:
        assert css(drv, ".new-rank")[0].text == str(expected["new_rank"])
    if expected.get("graph"):
        assert css(drv, "#graph svg .node.target")
    assert "r=3" in drv.current_url and "u=1" in drv.current_url

    # the explainers side by side
    css(drv, "#compare")[0].click()
    names = [o.get_attribute("value") for o in css(drv, "#explainer option")]
    wait(
        drv,
        lambda d: all("…" not in r.text for r in css(d, ".compare tbody tr")),
        "every explainer's answer",
    )
    assert [r.get_attribute("data-explainer") for r in css(drv, ".compare tbody tr")] == names

    # toggle an item off: the list changes (the cause, when there is one: it must)
    last = css(drv, "#timeline li.window button")[-1]
    pos = min(want) if want else int(last.get_attribute("data-pos"))
    css(drv, f'#timeline button[data-pos="{pos}"]')[0].click()
    wait(drv, lambda d: len(css(d, "#edited button[data-rank]")) == 10, "the edited list")
    edited = list_items(drv, "#edited")
    assert edited != top
    assert f"off={pos}" in drv.current_url
    assert css(drv, f'#timeline li.off button[data-pos="{pos}"]')

    # the permalink restores the same state in a fresh page
    link = drv.current_url
    drv.get("about:blank")
    drv.get(link)
    wait(drv, status_is("Explained #3"), "the explanation from the permalink")
    wait(drv, lambda d: len(css(d, "#edited button[data-rank]")) == 10, "the edited list again")
    assert list_items(drv, "#topk") == top
    assert list_items(drv, "#edited") == edited
    assert causes(drv) == want
    assert css(drv, f'#timeline li.off button[data-pos="{pos}"]')
    assert css(drv, "#topk li.selected button")[0].get_attribute("data-rank") == "3"

    # toggled back on: the edits are gone
    css(drv, f'#timeline button[data-pos="{pos}"]')[0].click()
    wait(drv, lambda d: not css(d, "#edited-box")[0].is_displayed(), "the edits undone")
    assert "off=" not in drv.current_url


def test_pasted_history_whole_graph_and_export(page, server, bert4rec, tmp_path):
    drv = page
    items = bert4rec.user_history("1")[-6:]
    drv.get(f"{server}/#m=bert4rec&h={','.join(items)}&k=5&r=1&g=1")
    wait(drv, status_is("Explained #1"), "the explanation of a pasted history")
    assert len(css(drv, "#topk button[data-rank]")) == 5
    assert len(css(drv, "#timeline li")) == len(items)
    expected = api_explanation(server, history=items, model="bert4rec", rank=1, k=5)
    assert causes(drv) == set(expected["sets"][0]["positions"] if expected["sets"] else [])
    graph = expected.get("graph")
    if graph:  # the whole graph: every node
        assert len(css(drv, "#graph svg .node")) == graph["n_nodes"]
        css(drv, "#graph-all")[0].click()
        assert "g=1" not in drv.current_url

    # export: the explanation as JSON, the page as one HTML file with no script or link
    drv.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
    )
    css(drv, "#export-json")[0].click()
    css(drv, "#export-html")[0].click()
    wait(
        drv,
        lambda d: len(list(tmp_path.glob("*.json")) + list(tmp_path.glob("*.html"))) == 2,
        "the downloads",
    )
    exported = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert exported["explanation"]["sets"] == expected["sets"]
    html = next(tmp_path.glob("*.html")).read_text()
    assert "<style>" in html and "<script" not in html and "stylesheet" not in html


def test_docs_load_offline(page, server):
    drv = page
    drv.get(f"{server}/docs")
    wait(drv, lambda d: css(d, ".swagger-ui .opblock"), "Swagger UI")
    drv.get(f"{server}/redoc")
    wait(drv, lambda d: css(d, "redoc [data-section-id], .redoc-wrap"), "ReDoc")


# ------------------------------------------------------------------------------ screenshots
def _shot(drv: Any, path: Path) -> None:
    data = drv.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]
    path.write_bytes(base64.b64decode(data))


def take_screenshots(base: str, out: Path) -> float:
    """The docs' screenshots of a running ``recausal explore``; returns the time to the first
    explanation of a permalink (seconds, model warm)."""
    out.mkdir(parents=True, exist_ok=True)
    link = "#m=sasrec-ml100k&u=1&k=10&x=causal&r=3"
    drv = make_driver(1280, 900)
    try:
        drv.get(f"{base}/{link}")  # warm the model
        wait(drv, status_is("Explained #3"), "warm-up")
        drv.get("about:blank")
        drv.get(f"{base}/{link}")
        wait(drv, status_is("Explained #3"), "the explanation")
        first = drv.execute_script(
            "return performance.getEntriesByName('recausal:explained')[0].startTime"
        )
        drv.execute_script("window.scrollTo(0, 0)")
        _shot(drv, out / "explorer-desktop.png")
        drv.execute_script("document.getElementById('explanation').scrollIntoView()")
        _shot(drv, out / "explorer-explanation.png")
        css(drv, "#compare")[0].click()
        wait(drv, lambda d: all("…" not in r.text for r in css(d, ".compare tbody tr")), "compare")
        drv.execute_script("document.getElementById('comparison').scrollIntoView()")
        _shot(drv, out / "explorer-compare.png")
        css(drv, "#apply")[0].click()
        wait(drv, lambda d: len(css(d, "#edited button[data-rank]")) == 10, "edited")
        drv.execute_script("window.scrollTo(0, 0)")
        _shot(drv, out / "explorer-playground.png")
        drv.get(f"{base}/#m=bert4rec-ml100k&u=1&k=10&r=3&g=1")
        wait(drv, status_is("Explained #3"), "the whole graph")
        drv.execute_script("document.getElementById('graph-box').scrollIntoView()")
        _shot(drv, out / "explorer-graph.png")
    finally:
        drv.quit()
    drv = make_driver(390, 844, mobile=True)
    try:
        drv.get(f"{base}/{link}")
        wait(drv, status_is("Explained #3"), "the phone page")
        drv.execute_script("window.scrollTo(0, 0)")
        _shot(drv, out / "explorer-phone.png")
        drv.execute_script("document.getElementById('explanation').scrollIntoView()")
        _shot(drv, out / "explorer-phone-explanation.png")
    finally:
        drv.quit()
    return first / 1000


if __name__ == "__main__":
    seconds = take_screenshots(sys.argv[1].rstrip("/"), Path(sys.argv[2]))
    print(f"time to first explanation: {seconds:.3f} s")
