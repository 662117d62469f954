from __future__ import annotations

from lagless._trace import Trace
from lagless.detectors import analyze

from ._build import add, db, make_trace


def test_sync_calls_on_the_loop_are_blocking():
    trace = make_trace("/report", duration_ms=300, attrs={"async_handler": True})
    db(trace, "SELECT id FROM report WHERE id = %s", 0, 30, params_hash=1, on_loop=True)
    add(trace, "http", "GET https://api.example/x", 40, 90, on_loop=True, driver="requests")
    add(trace, "http", "GET https://api.example/x", 140, 10, on_loop=True, driver="requests")
    [finding] = analyze([trace], mode="production")
    assert finding.code == "blocking-call" and not finding.potential
    assert finding.title == (
        "Blocking call in async code: 3 synchronous call(s) held the event loop for 130.0 ms"
    )
    assert finding.severity == "critical"  # >= asyncio's 100 ms slow-callback threshold
    assert finding.evidence[0] == {
        "call": "http: GET https://api.example/x",
        "count": 2,
        "total_ms": 100.0,
        "on_loop": True,
    }
    assert "asyncio.to_thread" in finding.fix and "httpx.AsyncClient" in finding.fix


def test_calls_off_the_loop_are_fine():
    trace = make_trace("/report", duration_ms=300, attrs={"async_handler": True})
    db(trace, "SELECT id FROM report WHERE id = $1", 0, 30, params_hash=1)
    assert analyze([trace], mode="doctor") == []


def test_short_blocking_is_reported_in_doctor_runs_only():
    trace = make_trace("/r", duration_ms=10)
    add(trace, "custom", "time.sleep", 1, 2, on_loop=True)
    assert analyze([trace], mode="production") == []
    [finding] = analyze([trace], mode="doctor")
    assert finding.severity == "high"


def test_loop_lag_without_sync_spans_is_potential():
    trace = make_trace("/r", duration_ms=400, attrs={"loop_lag_ms": 180.0})
    [finding] = analyze([trace], mode="production")
    assert finding.potential and finding.severity == "medium"
    assert (
        finding.title == "Potential event-loop blocking: the loop lagged 180 ms during the request"
    )
    assert finding.cost_ms == 180.0


def test_small_loop_lag_is_fine():
    trace = make_trace("/r", duration_ms=400, attrs={"loop_lag_ms": 30.0})
    assert analyze([trace], mode="production") == []
    trace.attrs["loop_lag_ms"] = 5.0
    assert analyze([trace], mode="doctor") == []
    trace.attrs["loop_lag_ms"] = 25.0
    assert [f.code for f in analyze([trace], mode="doctor")] == ["blocking-call"]


def _lagged(lag_ms: float) -> Trace:
    trace = Trace("GET", "/x", route="/x", start_ns=0)
    trace.attrs["loop_lag_ms"] = lag_ms
    trace.finish(200_000_000)
    return trace


def test_one_stall_among_a_routes_requests_is_the_machines_not_the_routes():
    # A single 135 ms pause (a GC of a big heap) in one of three requests: not the route.
    assert analyze([_lagged(135.0), _lagged(0.0), _lagged(1.0)], mode="doctor") == []
    # The lag in most requests of the route: a potential finding, counting those requests.
    [finding] = analyze([_lagged(135.0), _lagged(60.0), _lagged(0.0)], mode="doctor")
    assert finding.code == "blocking-call"
    assert finding.potential
    assert finding.requests == 2
