"""Hand-built traces with explicit times (milliseconds from the request's start)."""

from __future__ import annotations

from typing import Any

from lagless._trace import Span, Trace

T0 = 1_000_000_000  # the request's start, in perf_counter nanoseconds


def ns(ms: float) -> int:
    return T0 + int(ms * 1_000_000)


def make_trace(
    route: str = "/items",
    method: str = "GET",
    *,
    duration_ms: float = 100.0,
    status: int = 200,
    response_bytes: int = 0,
    attrs: dict[str, Any] | None = None,
    request_headers: dict[str, str] | None = None,
    response_headers: dict[str, str] | None = None,
    path: str | None = None,
) -> Trace:
    trace = Trace(method, path or route, route=route, start_ns=T0)
    trace.duration_ns = int(duration_ms * 1_000_000)
    trace.status = status
    trace.response_bytes = response_bytes
    trace.attrs.update(attrs or {})
    trace.request_headers = request_headers or {}
    trace.response_headers = response_headers or {}
    return trace


def add(trace: Trace, kind: str, name: str, start_ms: float, dur_ms: float, **attrs: Any) -> Span:
    return trace.add_span(kind, name, ns(start_ms), ns(start_ms + dur_ms), attrs or None)


def db(trace: Trace, sql: str, start_ms: float, dur_ms: float, **attrs: Any) -> Span:
    return add(trace, "db", sql, start_ms, dur_ms, **attrs)


def n_plus_one_trace(
    *,
    repeats: int = 10,
    each_ms: float = 2.0,
    parent: bool = True,
    route: str = "/authors",
    parallel: bool = False,
) -> Trace:
    """A list of authors, then one book query per author (sequential unless ``parallel``)."""
    trace = make_trace(route, duration_ms=5 + repeats * (each_ms + 0.5) + 5)
    t = 1.0
    if parent:
        db(
            trace,
            "SELECT author.id, author.name FROM author",
            t,
            2.0,
            params_hash=None,
            rows=repeats,
        )
        t += 3.0
    for i in range(repeats):
        start = t if parallel else t + i * (each_ms + 0.5)
        db(
            trace,
            "SELECT book.id, book.title FROM book WHERE book.author_id = %s",
            start,
            each_ms,
            params_hash=1000 + i,
            rows=3,
        )
    return trace
