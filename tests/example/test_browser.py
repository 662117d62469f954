"""The tuned example's page in a real browser: headless Chromium loads the fingerprinted
assets, the page asks the API for MessagePack through ``lagless-msgpack.js`` and renders what
it decoded."""

from __future__ import annotations

import os
import shutil
from typing import Any

import pytest

from lagless._runtime import Runtime

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]


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


@pytest.mark.slow
def test_tuned_page_reads_messagepack_in_the_browser(
    fresh_runtime: Runtime, example_cache: str, serve: Any
) -> None:
    sync_playwright = _need_browser()
    pytest.importorskip("fastapi")
    from lagless._cli.example_cmd import build_app

    fresh_runtime.configure(cache_dir=example_cache)
    base = serve(build_app("tuned", None))
    api: dict[str, tuple[str, str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
            args=ARGS,
            headless=True,
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def seen(response: Any) -> None:
                if "/api/" in response.url:
                    headers = response.headers
                    api[response.url.split(base, 1)[1]] = (
                        headers.get("content-type", ""),
                        headers.get("content-encoding", "identity"),
                    )

            page.on("response", seen)
            page.goto(base + "/")
            page.wait_for_function("document.querySelectorAll('#books li').length >= 20")
            page.wait_for_function("document.querySelectorAll('#reviews li').length >= 10")
            stats = page.text_content("#stats") or ""
            label = page.text_content("#books-time") or ""
            page.click("#books li")
            page.wait_for_function("document.querySelector('#book h3') !== null")
            title = page.text_content("#book h3") or ""
        finally:
            browser.close()
    assert errors == []
    assert "12000 books by 1500 authors" in stats
    assert "MessagePack" in label
    assert " — " in title  # "<title> — <author>", decoded from the detail's MessagePack
    assert api, "the page made no API calls"
    assert {media for media, _ in api.values()} == {"application/msgpack"}
    # The list page is large enough to be compressed for a browser.
    list_call = next(v for k, v in api.items() if k.startswith("/api/books?"))
    assert list_call[1] in ("br", "zstd", "gzip")
