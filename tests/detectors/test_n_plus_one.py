from __future__ import annotations

from lagless.detectors import DetectorSettings, analyze

from ._build import add, db, make_trace, n_plus_one_trace

BOOKS = "SELECT book.id, book.title FROM book WHERE book.author_id = %s"


def codes(findings):
    return [f.code for f in findings]


def only(findings, code):
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, findings
    return found[0]


def test_repeated_select_after_parent_is_n_plus_one():
    finding = only(analyze([n_plus_one_trace(repeats=10)], mode="doctor"), "n-plus-one")
    assert finding.title == "N+1 queries: 10 similar SELECTs on book"
    assert not finding.potential
    assert finding.severity == "high"
    evidence, parent = finding.evidence
    assert evidence["count"] == 10 and evidence["distinct_params"] == 10
    assert evidence["total_ms"] == 20.0
    assert parent["role"] == "parent" and parent["rows"] == 10
    # ten sequential 2 ms round trips cover 20 ms; one batched 2 ms query would remain
    assert finding.cost_ms == 18.0
    assert "select_related" in finding.fix and "selectinload" in finding.fix


def test_below_repeat_threshold_is_not_reported():
    assert "n-plus-one" not in codes(analyze([n_plus_one_trace(repeats=4)], mode="doctor"))


def test_production_needs_time_as_well_as_count():
    fast = n_plus_one_trace(repeats=10, each_ms=1.0)  # 10 ms in all, under Sentry's 50 ms
    slow = n_plus_one_trace(repeats=10, each_ms=6.0)  # 60 ms
    assert "n-plus-one" not in codes(analyze([fast], mode="production"))
    assert "n-plus-one" in codes(analyze([fast], mode="doctor"))
    assert "n-plus-one" in codes(analyze([slow], mode="production"))


def test_parallel_repeats_still_count_and_cost_their_union():
    finding = only(
        analyze([n_plus_one_trace(repeats=8, parallel=True)], mode="doctor"), "n-plus-one"
    )
    assert finding.evidence[0]["parallel"] is True
    assert finding.cost_ms == 0.0  # all 8 overlapped: batching saves nothing of wall time


def test_repeats_separated_by_pool_and_other_spans_still_count():
    trace = make_trace("/authors", duration_ms=80)
    db(trace, "SELECT id FROM author", 0, 1, rows=6)
    for i in range(6):
        t = 2 + i * 10
        add(trace, "pool", "QueuePool.getconn", t, 1, wait_ms=0.5)
        add(trace, "cache", "GET", t + 1.5, 1, key="author:{}", key_hash=i, hit=False)
        db(trace, BOOKS, t + 3, 2, params_hash=i)
        add(trace, "custom", "format", t + 6, 1)
    finding = only(analyze([trace], mode="doctor"), "n-plus-one")
    assert finding.evidence[0]["count"] == 6


def test_potential_without_a_parent_query():
    finding = only(analyze([n_plus_one_trace(parent=False)], mode="doctor"), "n-plus-one")
    assert finding.potential
    assert finding.title.startswith("Potential N+1")
    assert finding.severity == "medium"


def test_unparameterised_repeats_are_not_n_plus_one():
    trace = make_trace()
    db(trace, "SELECT id FROM author", 0, 1)
    for i in range(8):
        db(trace, f"SELECT id FROM book WHERE author_id = {i}", 2 + i * 2, 1)
    assert "n-plus-one" not in codes(analyze([trace], mode="doctor"))


def test_identical_parameters_are_a_duplicate_not_n_plus_one():
    trace = make_trace()
    db(trace, "SELECT id FROM author", 0, 1)
    for i in range(6):
        db(trace, BOOKS, 2 + i * 2, 1, params_hash=42)
    found = codes(analyze([trace], mode="doctor"))
    assert "n-plus-one" not in found
    assert "duplicate-query" in found


def test_redis_recorded_as_db_spans_is_not_n_plus_one():
    trace = make_trace()
    for i in range(10):
        db(trace, "GET", i * 2, 1, params_hash=i, **{"db.system": "redis"})
    assert analyze([trace], mode="doctor") == []


def test_writes_in_a_loop_are_not_n_plus_one_selects():
    trace = make_trace()
    for i in range(10):
        db(trace, "UPDATE book SET price = %s WHERE id = %s", i * 2, 1, params_hash=i)
    assert "n-plus-one" not in codes(analyze([trace], mode="doctor"))


def test_threshold_is_configurable():
    trace = n_plus_one_trace(repeats=3)
    settings = DetectorSettings(n_plus_one_min_repeats=3)
    assert "n-plus-one" in codes(analyze([trace], mode="doctor", settings=settings))


def test_many_repeats_are_critical():
    finding = only(
        analyze([n_plus_one_trace(repeats=60, each_ms=0.2)], mode="doctor"), "n-plus-one"
    )
    assert finding.severity == "critical"


def test_sqlalchemy_spans_get_sqlalchemy_advice_only():
    trace = n_plus_one_trace()
    for span in trace.spans:
        span.attrs = {**(span.attrs or {}), "driver": "sqlalchemy"}
    finding = only(analyze([trace], mode="doctor"), "n-plus-one")
    assert "selectinload" in finding.fix and "select_related" not in finding.fix


def test_http_n_plus_one():
    trace = make_trace("/orders", duration_ms=200)
    for i in range(7):
        add(
            trace,
            "http",
            "GET https://api.example.com/users/{}",
            i * 20,
            15,
            url_hash=i,
            status=200,
        )
    finding = only(analyze([trace], mode="production"), "n-plus-one-http")
    assert finding.evidence[0] == {
        "call": "GET https://api.example.com/users/{}",
        "count": 7,
        "distinct_urls": 7,
        "total_ms": 105.0,
    }
    assert "asyncio.gather" in finding.fix


def test_http_raw_urls_are_folded_and_compared():
    trace = make_trace("/orders")
    for i in range(6):
        add(trace, "http", f"GET https://api.example.com/users/{i + 10}?x=1", i * 3, 2)
    finding = only(analyze([trace], mode="doctor"), "n-plus-one-http")
    assert finding.evidence[0]["call"] == "GET https://api.example.com/users/{}"


def test_same_url_fetched_repeatedly_is_not_http_n_plus_one():
    trace = make_trace("/orders")
    for i in range(6):
        add(trace, "http", "GET https://api.example.com/config", i * 3, 2, url_hash=7)
    assert analyze([trace], mode="doctor") == []


def test_cache_n_plus_one():
    trace = make_trace("/feed", attrs={"framework": "fastapi"})
    for i in range(12):
        add(trace, "cache", "GET", i, 0.5, key="post:{}", key_hash=i, hit=True, driver="redis")
    finding = only(analyze([trace], mode="doctor"), "n-plus-one-cache")
    assert finding.evidence[0]["call"] == "GET post:{}"
    assert "MGET" in finding.fix
    assert "n-plus-one" not in codes(analyze([trace], mode="doctor"))


def test_cache_reads_of_one_key_are_not_n_plus_one():
    trace = make_trace("/feed")
    for i in range(12):
        add(trace, "cache", "GET", i, 0.5, key="settings", key_hash=1, hit=True)
    assert analyze([trace], mode="doctor") == []


def test_cache_writes_are_not_n_plus_one_reads():
    trace = make_trace("/feed")
    for i in range(12):
        add(trace, "cache", "SET", i, 0.5, key="post:{}", key_hash=i)
    assert analyze([trace], mode="doctor") == []
