"""One worked example per detector code, built from the same hand-made traces as the tests.

docs/detectors.md shows each example's finding as JSON; ``test_docs.py`` regenerates them and
fails if the page drifts. ``python -m tests.detectors._examples`` rewrites the blocks.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lagless._explain import Explainer
from lagless._trace import Trace
from lagless.detectors import Finding, analyze

from ._build import add, db, make_trace, n_plus_one_trace


def _n_plus_one() -> list[Finding]:
    trace = n_plus_one_trace(repeats=10, each_ms=6.0)
    trace.attrs["framework"] = "django"
    return analyze([trace], mode="production")


def _n_plus_one_http() -> list[Finding]:
    trace = make_trace("/orders", duration_ms=200)
    for i in range(7):
        add(trace, "http", "GET https://api.example.com/users/{}", i * 20, 15, url_hash=i)
    return analyze([trace], mode="production")


def _n_plus_one_cache() -> list[Finding]:
    trace = make_trace("/feed", attrs={"framework": "fastapi"})
    for i in range(12):
        add(trace, "cache", "GET", i, 0.5, key="post:{}", key_hash=i, hit=True)
    return analyze([trace], mode="doctor")


def _duplicate() -> list[Finding]:
    trace = make_trace("/me", attrs={"framework": "django"})
    q = "SELECT user.id, user.name FROM user WHERE user.id = %s"
    db(trace, q, 0, 8, params_hash=7)
    db(trace, q, 9, 8, params_hash=7)
    return analyze([trace], mode="production")


def _missing_index() -> list[Finding]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "shop.db"
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER, title TEXT)")
        conn.executemany(
            "INSERT INTO book (author_id, title) VALUES (?, ?)",
            [(i % 97, f"t{i}") for i in range(3000)],
        )
        conn.commit()
        conn.close()
        trace = make_trace("/authors/{id}/books", duration_ms=704, attrs={"framework": "fastapi"})
        db(
            trace,
            "SELECT book.id, book.title FROM book WHERE book.author_id = ?",
            1,
            700,
            params_hash=1,
            driver="sqlalchemy",
            **{"db.system": "sqlite"},
        )
        explainer = Explainer.from_url(str(path))
        try:
            return analyze([trace], mode="production", explainer=explainer)
        finally:
            explainer.close()


def _over_fetching() -> list[Finding]:
    trace = make_trace("/books/count", response_bytes=40, attrs={"framework": "django"})
    db(
        trace,
        "SELECT book.id, book.price FROM book WHERE book.shop_id = %s LIMIT 20000",
        0,
        60,
        rows=20000,
        params_hash=1,
    )
    return analyze([trace], mode="production")


def _sequential() -> list[Finding]:
    trace = make_trace("/dashboard", duration_ms=500, attrs={"async_handler": True})
    db(trace, "SELECT id FROM orders WHERE user_id = $1", 0, 130, params_hash=1)
    add(trace, "http", "GET https://weather.example/today", 131, 120, url_hash=2)
    add(trace, "cache", "GET", 252, 10, key="banner", key_hash=3)
    return analyze([trace], mode="production")


def _blocking() -> list[Finding]:
    trace = make_trace("/report", duration_ms=300, attrs={"async_handler": True})
    db(trace, "SELECT id FROM report WHERE id = %s", 0, 30, params_hash=1, on_loop=True)
    add(trace, "http", "GET https://api.example/x", 40, 90, on_loop=True, driver="requests")
    add(trace, "http", "GET https://api.example/x", 140, 10, on_loop=True, driver="requests")
    return analyze([trace], mode="production")


def _connection_reuse() -> list[Finding]:
    traces = []
    for _ in range(4):
        trace = make_trace("/items", duration_ms=20, attrs={"framework": "django"})
        add(trace, "pool", "connect", 0, 4, new_connection=True)
        db(trace, "SELECT id FROM item WHERE id = %s", 5, 1, params_hash=1)
        traces.append(trace)
    return analyze(traces, mode="production")


def _slow_middleware() -> list[Finding]:
    trace = make_trace("/x", duration_ms=100, attrs={"framework": "fastapi"})
    add(trace, "middleware", "AuthMiddleware", 0, 35)
    add(trace, "middleware", "CORSMiddleware", 35, 1)
    return analyze([trace], mode="production")


def _http_caching() -> list[Finding]:
    traces = [
        make_trace(
            "/products/{id}",
            duration_ms=30,
            response_bytes=2000,
            attrs={"body_digest": "d1", "framework": "flask"},
            response_headers={"content-type": "application/json"},
        )
        for _ in range(3)
    ]
    return analyze(traces, mode="production")


def _payload(size: int, encoding: str | None, framework: str) -> Trace:
    headers = {"content-type": "application/json"}
    if encoding:
        headers["content-encoding"] = encoding
    return make_trace(
        "/export",
        duration_ms=50,
        response_bytes=size,
        response_headers=headers,
        request_headers={"accept-encoding": "gzip, br"},
        attrs={"framework": framework},
    )


def _large() -> list[Finding]:
    return analyze([_payload(400_000, "br", "fastapi")], mode="production")


def _uncompressed() -> list[Finding]:
    return analyze([_payload(50_000, None, "fastapi")], mode="production")


def _serialization() -> list[Finding]:
    trace = _payload(2000, "gzip", "django")
    add(trace, "serialize", "JSONRenderer", 30, 15, bytes=2000)
    return analyze([trace], mode="production")


def _static() -> list[Finding]:
    trace = make_trace(
        "/static/{path}",
        path="/static/app.js",
        duration_ms=4,
        response_bytes=80_000,
        response_headers={"content-type": "text/javascript"},
        request_headers={"accept-encoding": "gzip, br"},
    )
    return analyze([trace], mode="production")


EXAMPLES: dict[str, Callable[[], list[Finding]]] = {
    "n-plus-one": _n_plus_one,
    "n-plus-one-http": _n_plus_one_http,
    "n-plus-one-cache": _n_plus_one_cache,
    "duplicate-query": _duplicate,
    "missing-index": _missing_index,
    "over-fetching": _over_fetching,
    "sequential-io": _sequential,
    "blocking-call": _blocking,
    "no-connection-reuse": _connection_reuse,
    "slow-middleware": _slow_middleware,
    "no-http-caching": _http_caching,
    "large-payload": _large,
    "uncompressed-payload": _uncompressed,
    "slow-serialization": _serialization,
    "static-no-cache": _static,
}


def example(code: str) -> dict[str, Any]:
    """The example finding of ``code`` as the JSON report shows it."""
    [finding] = [f for f in EXAMPLES[code]() if f.code == code]
    return finding.to_dict()


def block(code: str) -> str:
    return "```json\n" + json.dumps(example(code), indent=2, ensure_ascii=False) + "\n```"


def refresh(doc: Path) -> None:
    """Rewrite the example block after each ``<!-- example: CODE -->`` marker of ``doc``."""
    marker = re.compile(r"<!-- example: (\S+) -->(?:\n```json\n.*?\n```)?", re.S)
    text = doc.read_text("utf-8")
    doc.write_text(
        marker.sub(lambda m: f"<!-- example: {m.group(1)} -->\n{block(m.group(1))}", text),
        "utf-8",
    )


if __name__ == "__main__":
    refresh(Path(__file__).resolve().parents[2] / "docs" / "detectors.md")
