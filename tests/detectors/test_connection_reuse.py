from __future__ import annotations

from lagless.detectors import analyze

from ._build import add, db, make_trace


def request(connect: bool, connect_ms: float = 4.0):
    trace = make_trace("/items", duration_ms=20, attrs={"framework": "django"})
    if connect:
        add(trace, "pool", "connect", 0, connect_ms, new_connection=True)
    db(trace, "SELECT id FROM item WHERE id = %s", 5, 1, params_hash=1)
    return trace


def test_new_connection_on_every_request():
    traces = [request(True) for _ in range(4)]
    [finding] = analyze(traces, mode="production")
    assert finding.code == "no-connection-reuse"
    assert finding.title == "New database connection on 4 of 4 requests"
    assert finding.requests == 4 and finding.cost_ms == 4.0
    assert "CONN_MAX_AGE" in finding.fix and "create_engine" not in finding.fix


def test_first_request_connecting_is_warm_up_not_a_problem():
    traces = [request(True), *(request(False) for _ in range(5))]
    assert analyze(traces, mode="doctor") == []
    assert analyze([request(True)], mode="doctor") == []


def test_new_connection_flag_on_db_spans_counts():
    traces = []
    for _ in range(3):
        trace = make_trace("/items", duration_ms=20)
        db(trace, "SELECT 1 FROM item", 0, 1, new_connection=True)
        traces.append(trace)
    [finding] = analyze(traces, mode="doctor")
    assert finding.code == "no-connection-reuse" and finding.cost_ms == 0.0


def test_pool_wait_share():
    trace = make_trace("/items", duration_ms=100)
    add(trace, "pool", "QueuePool.getconn", 0, 45, wait_ms=44.0)
    db(trace, "SELECT id FROM item WHERE id = %s", 46, 2, params_hash=1)
    [finding] = analyze([trace], mode="production")
    assert finding.title == "Pool wait: 44.0 ms (44% of the request) waiting for a connection"
    assert finding.severity == "medium"
    assert "max_size" in finding.fix


def test_acquire_span_duration_counts_as_wait_and_small_waits_are_fine():
    trace = make_trace("/items", duration_ms=100)
    add(trace, "pool", "acquire", 0, 60)
    assert [f.severity for f in analyze([trace], mode="production")] == ["high"]
    quick = make_trace("/items", duration_ms=100)
    add(quick, "pool", "acquire", 0, 5)
    assert analyze([quick], mode="production") == []


def test_connect_inside_a_checkout_is_not_pool_wait():
    trace = make_trace("/items", duration_ms=20)
    add(trace, "pool", "sqlalchemy.pool.checkout", 0, 8, wait_ms=8.0)
    add(trace, "pool", "connect", 0.5, 7, new_connection=True)
    db(trace, "SELECT id FROM item WHERE id = %s", 9, 1, params_hash=1, new_connection=True)
    assert analyze([trace], mode="doctor") == []
    # and a connection shown both as a connect span and a flagged query counts once
    [finding] = analyze([trace, trace], mode="doctor")
    assert finding.evidence[0]["count"] == 2 and finding.cost_ms == 7.0


def test_pool_wait_is_judged_on_the_routes_median_request():
    def one(wait):
        trace = make_trace("/items", duration_ms=100)
        add(trace, "pool", "QueuePool.getconn", 0, wait + 0.1, wait_ms=wait)
        return trace

    assert analyze([one(60), one(0.1), one(0.2)], mode="production") == []  # one stalled request
    [finding] = analyze([one(60), one(45), one(0.2)], mode="production")
    assert finding.cost_ms == 45.0 and finding.requests == 3
