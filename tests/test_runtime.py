from __future__ import annotations

import logging

import pytest

from lagless import _guard
from lagless._runtime import Runtime
from lagless._server_timing import server_timing
from lagless._trace import Trace


def _finished(duration_ms: float, spans: int = 0) -> Trace:
    t = Trace("GET", "/x", route="/x", start_ns=0)
    for i in range(spans):
        t.add_span("db", "select 1", i, i + 1)
    t.finish(int(duration_ms * 1_000_000))
    return t


def test_ring_is_bounded(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(ring_size=3)
    for _ in range(10):
        fresh_runtime.finish_trace(_finished(1))
    assert len(fresh_runtime.recent_traces()) == 3


def test_spans_per_trace_are_bounded(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(max_spans=5)
    t = _finished(1, spans=12)
    fresh_runtime.finish_trace(t)
    assert len(t.spans) == 5
    assert t.attrs["dropped_spans"] == 7


def test_spans_are_bounded_while_the_request_runs(fresh_runtime: Runtime) -> None:
    """Regression: the limit used to apply only at finish, so a running request could grow
    its trace without bound (a loop of a million queries)."""
    fresh_runtime.configure(max_spans=5)
    t = Trace("GET", "/x")
    for i in range(10_000):
        span = t.add_span("db", "select 1", i, i + 1)
    assert span.name == "select 1"  # still handed back to the caller
    assert len(t.spans) == 5
    assert t.attrs["dropped_spans"] == 9_995
    t.finish()
    fresh_runtime.finish_trace(t)
    assert len(t.spans) == 5 and t.attrs["dropped_spans"] == 9_995


def test_loading_a_file_keeps_every_span(fresh_runtime: Runtime) -> None:
    from lagless._export import trace_from_dict, trace_to_dict

    t = _finished(1, spans=12)
    fresh_runtime.configure(max_spans=5)
    assert len(trace_from_dict(trace_to_dict(t)).spans) == 12


def test_slow_request_log(fresh_runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    fresh_runtime.configure(slow_request_ms=10)
    with caplog.at_level(logging.WARNING, logger="lagless"):
        fresh_runtime.finish_trace(_finished(5))
        fresh_runtime.finish_trace(_finished(25, spans=2))
    slow = [r.getMessage() for r in caplog.records]
    assert len(slow) == 1
    assert "slow request GET /x" in slow[0]
    assert "db=" in slow[0]


def test_failing_listener_is_reported_not_raised(
    fresh_runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Trace] = []

    def bad(trace: Trace) -> None:
        raise RuntimeError("listener bug")

    fresh_runtime.add_listener(bad)
    fresh_runtime.add_listener(seen.append)
    fresh_runtime.add_listener(seen.append)  # idempotent
    with caplog.at_level(logging.ERROR, logger="lagless"):
        fresh_runtime.finish_trace(_finished(1))
    assert len(seen) == 1
    assert sum(_guard.internal_errors.values()) == 1
    assert "internal error" in caplog.text
    fresh_runtime.remove_listener(bad)
    fresh_runtime.finish_trace(_finished(1))
    assert sum(_guard.internal_errors.values()) == 1


def test_server_timing_counts_union_of_concurrent_queries() -> None:
    t = Trace(start_ns=0)
    # three concurrent 4 ms queries, overlapping: union 6 ms
    t.add_span("db", "q", 1_000_000, 5_000_000)
    t.add_span("db", "q", 2_000_000, 6_000_000)
    t.add_span("db", "q", 3_000_000, 7_000_000)
    t.add_span("cache", "GET", 8_000_000, 9_000_000)
    t.add_span("middleware", "Auth", 0, 500_000)
    value = server_timing(t, 10_000_000)
    entries = {p.split(";")[0]: p for p in value.split(", ")}
    assert entries["db"] == 'db;dur=6.00;desc="3 queries"'
    assert entries["cache"] == 'cache;dur=1.00;desc="1 call"'
    assert entries["mw"] == "mw;dur=0.50"
    assert entries["app"] == "app;dur=2.50"
    assert entries["total"] == "total;dur=10.00"


def test_server_timing_without_spans() -> None:
    assert server_timing(Trace(start_ns=0), 2_000_000) == "app;dur=2.00, total;dur=2.00"
