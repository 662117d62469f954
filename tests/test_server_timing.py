"""The Server-Timing fast path (running totals for sequential spans) agrees with the exact
path (interval unions) on every trace shape, and hands overlapping traces to the exact one."""

from __future__ import annotations

import random

import pytest

from lagless._server_timing import _server_timing_exact, server_timing
from lagless._trace import Trace

KINDS = ("db", "pool", "cache", "http", "serialize", "middleware", "handler", "custom")


def _sequential(rng: random.Random) -> Trace:
    t = Trace(start_ns=0)
    at = 0
    for _ in range(rng.randrange(0, 8)):
        at += rng.randrange(0, 300_000)
        dur = rng.randrange(0, 2_000_000)
        t.add_span(rng.choice(KINDS), "s", at, at + dur)
        at += dur
    return t


def test_fast_path_matches_exact_path_on_sequential_traces() -> None:
    rng = random.Random(1234)
    for _ in range(2000):
        t = _sequential(rng)
        now = (t.spans[-1].end_ns if t.spans else 0) + rng.randrange(0, 1_000_000)
        assert server_timing(t, now) == _server_timing_exact(t, now)


def test_fast_path_matches_exact_path_with_overlaps() -> None:
    rng = random.Random(99)
    for _ in range(2000):
        t = Trace(start_ns=0)
        for _ in range(rng.randrange(1, 8)):
            start = rng.randrange(0, 5_000_000)
            t.add_span(rng.choice(KINDS), "s", start, start + rng.randrange(0, 2_000_000))
        assert server_timing(t, 8_000_000) == _server_timing_exact(t, 8_000_000)


def test_sequential_db_and_middleware() -> None:
    t = Trace(start_ns=0)
    t.add_span("middleware", "Auth", 0, 250_000)
    t.add_span("pool", "acquire", 1_000_000, 1_500_000)
    t.add_span("db", "q", 1_500_000, 3_500_000)
    t.add_span("db", "q", 3_500_000, 4_000_000)
    t.add_span("handler", "view", 500_000, 4_500_000)
    assert server_timing(t, 5_000_000) == (
        'db;dur=3.00;desc="2 queries", mw;dur=0.25, app;dur=1.75, total;dur=5.00'
    )


def test_io_layers_are_reported_in_order() -> None:
    t = Trace(start_ns=0)
    t.add_span("http", "GET /x", 0, 1_000_000)
    t.add_span("cache", "GET", 1_000_000, 1_500_000)
    t.add_span("serialize", "json", 2_000_000, 2_100_000)
    t.add_span("cache", "SET", 2_100_000, 2_200_000)
    assert server_timing(t, 3_000_000) == (
        'cache;dur=0.60;desc="2 calls", http;dur=1.00;desc="1 call", '
        'serialize;dur=0.10;desc="1 call", app;dur=1.30, total;dur=3.00'
    )


def test_asgi_bytes_path_matches_server_timing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ASGI middleware formats a trace of sequential queries as bytes itself; every
    shape with spans gives the same text as :func:`server_timing`."""
    import lagless.integrations.asgi as asgi_mod

    rng = random.Random(7)
    for _ in range(3000):
        t = Trace(start_ns=0)
        at = rng.randrange(0, 300_000)
        for _ in range(rng.randrange(1, 5)):
            kind = rng.choice(("db", "db", "db", "pool", "handler"))
            dur = rng.randrange(0, 3_000_000)
            t.add_span(kind, "s", at, at + dur)
            at += dur + rng.randrange(-100_000, 500_000)
        now = at + rng.randrange(-2_000_000, 2_000_000)
        monkeypatch.setattr(asgi_mod, "_now", lambda now=now: now)
        expected = server_timing(t, now).encode("latin-1")
        assert asgi_mod._timing_value(t) == expected
