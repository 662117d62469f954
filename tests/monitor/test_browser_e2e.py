"""End to end in a real browser: headless Chromium loads the example's page, the snippet
beacons the page's API timings, and the dashboard shows each route with client and server
times. The screenshot lands in artifacts/monitor-dashboard.png."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lagless._runtime import Runtime
from lagless.monitor import stop
from tests._serve import serve_fixture

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


def _need_browser() -> Any:
    required = os.environ.get("LAGLESS_REQUIRE_SERVICES") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            pytest.fail("Playwright is not installed")
        pytest.skip("Playwright is not installed")
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        if required:
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return sync_playwright


@pytest.fixture
def serve() -> Iterator[Any]:
    yield from serve_fixture()


def wait_for(predicate: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.slow
def test_browser_timings_reach_the_dashboard(
    fresh_runtime: Runtime, serve: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    sync_playwright = _need_browser()
    pytest.importorskip("fastapi")
    from lagless._cli.example_cmd import build_monitored_app

    fresh_runtime.configure(
        cache_dir=str(tmp_path_factory.mktemp("lagless-cache")), slow_sample_ms=5.0
    )
    app = build_monitored_app("naive", None, token=TOKEN)
    mon = app.monitor
    base = serve(app)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                page.goto(f"{base}/")
                page.wait_for_selector("#books li", timeout=30_000)
                page.wait_for_selector("#reviews li", timeout=30_000)
                page.click("#books li >> nth=0")
                page.wait_for_selector("#book h3", timeout=30_000)
                assert page.evaluate("typeof window.laglessBrowserTiming") == "object"
                page.evaluate("window.laglessBrowserTiming.flush()")
                wait_for(
                    lambda: (
                        {"/api/books", "/api/books/{book_id}", "/api/reviews/recent"}
                        <= set(mon.browser.routes)
                    ),
                    "beacons for the page's API calls",
                )
                books = mon.browser.routes["/api/books"]
                assert books.server.count >= 1  # Server-Timing was readable in the browser
                assert books.total.quantile(0.5) >= books.server.quantile(0.5) * 0.9

                page.goto(f"{base}/_lagless/?token={TOKEN}")
                row = page.wait_for_selector('tr[data-route="GET /api/books"]', timeout=30_000)
                page.wait_for_selector("#waterfall svg", timeout=30_000)
                text = row.inner_text()
                assert "client" in text and "server" in text, text
                assert "ms" in text
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "monitor-dashboard.png"), full_page=True)
                # Without the token (a fresh context has no cookie) the dashboard is refused.
                other = browser.new_context().new_page()
                assert other.goto(f"{base}/_lagless/").status == 401
            finally:
                browser.close()
    finally:
        stop()
