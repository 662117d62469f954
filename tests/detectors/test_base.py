from __future__ import annotations

import json

import pytest

import lagless
from lagless.detectors import (
    DETECTORS,
    SEVERITIES,
    DetectorSettings,
    Finding,
    analyze,
    severity_at_least,
    severity_rank,
)
from lagless.errors import ConfigError

from ._build import add, db, make_trace, n_plus_one_trace

ISSUE_CODES = {
    "n-plus-one",
    "n-plus-one-http",
    "n-plus-one-cache",
    "duplicate-query",
    "missing-index",
    "over-fetching",
    "sequential-io",
    "blocking-call",
    "no-connection-reuse",
    "slow-middleware",
    "no-http-caching",
    "large-payload",
    "uncompressed-payload",
    "slow-serialization",
    "static-no-cache",
}


def test_every_code_of_the_issue_is_registered():
    assert set(DETECTORS) == ISSUE_CODES
    for code, detector in DETECTORS.items():
        assert detector.code == code and detector.summary
        assert detector.per_trace or detector.per_route


def test_severity_order():
    assert SEVERITIES == ("info", "low", "medium", "high", "critical")
    assert severity_rank("critical") > severity_rank("high") > severity_rank("medium")
    assert severity_at_least("critical", "high")
    assert severity_at_least("high", "high")
    assert not severity_at_least("medium", "high")
    with pytest.raises(ValueError, match="unknown severity 'severe'"):
        severity_at_least("severe", "high")


def test_public_exports():
    assert lagless.detect is analyze
    assert lagless.Finding is Finding
    assert {"detect", "Finding", "Severity"} <= set(lagless.__all__)


def test_finding_to_dict_shape_is_json_ready():
    finding = analyze([n_plus_one_trace()], mode="doctor")[0]
    data = finding.to_dict()
    required = {"code", "severity", "route", "method", "title", "evidence", "cost_ms", "fix"}
    assert required | {"potential", "requests"} <= set(data)
    assert data["code"] == "n-plus-one" and data["route"] == "/authors" and data["method"] == "GET"
    assert isinstance(data["evidence"], list) and data["evidence"][0]["count"] == 10
    json.dumps(data)  # serialisable as is


def test_disabling_a_code_switches_it_off():
    trace = n_plus_one_trace()
    assert [f.code for f in analyze([trace], mode="doctor")] == ["n-plus-one"]
    off = DetectorSettings(disabled=frozenset({"n-plus-one"}))
    assert analyze([trace], mode="doctor", settings=off) == []


def test_settings_validation():
    with pytest.raises(ConfigError, match="unknown detector code"):
        DetectorSettings(disabled=frozenset({"n-plus-two"}))
    with pytest.raises(ConfigError, match="did you mean 'n_plus_one_min_repeats'"):
        DetectorSettings().replace(n_plus_one_min_repeat=3)
    with pytest.raises(ConfigError, match=">= 0"):
        DetectorSettings(large_payload_bytes=-1)
    changed = DetectorSettings().replace(large_payload_bytes=10, disabled={"sequential-io"})
    assert changed.large_payload_bytes == 10 and changed.disabled == {"sequential-io"}


def test_bad_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="mode must be"):
        analyze([], mode="staging")  # type: ignore[arg-type]


def test_findings_aggregate_across_requests_of_a_route():
    traces = [n_plus_one_trace(repeats=r) for r in (6, 8, 10)]
    traces.append(n_plus_one_trace(repeats=2))  # healthy request of the same route
    [finding] = analyze(traces, mode="doctor")
    assert finding.requests == 3
    # costs 3*2.5-2=... each trace: union(r*2 ms) - 2 ms = 10, 14, 18 -> mean 14
    assert finding.cost_ms == pytest.approx(14.0)
    assert finding.total_cost_ms == pytest.approx(42.0)
    assert finding.evidence[0]["count"] == 10  # the strongest request's evidence


def test_routes_are_kept_apart():
    a = n_plus_one_trace(route="/a")
    b = n_plus_one_trace(route="/b")
    assert sorted(f.route for f in analyze([a, b], mode="doctor")) == ["/a", "/b"]


def test_ranking_is_worst_total_cost_first():
    cheap = n_plus_one_trace(route="/cheap", repeats=5, each_ms=1.0)
    costly = n_plus_one_trace(route="/costly", repeats=5, each_ms=10.0)
    often = [n_plus_one_trace(route="/often", repeats=5, each_ms=3.0) for _ in range(5)]
    ranked = analyze([cheap, costly, *often], mode="doctor")
    # /often: 5 requests x 12 ms = 60; /costly: 40 ms once; /cheap: 4 ms once
    assert [f.route for f in ranked] == ["/often", "/costly", "/cheap"]


def test_equal_cost_ranks_by_severity():
    trace = make_trace("/x", duration_ms=10)
    for i in range(6):  # a potential N+1 (no parent): medium, cost 0 (parallel)
        db(trace, "SELECT a FROM t WHERE id = ?", 1, 1, params_hash=i)
    for i in range(60):  # critical HTTP N+1, also fully parallel
        add(trace, "http", "GET http://svc/x/{}", 1, 1, url_hash=i)
    ranked = analyze([trace], mode="doctor")
    assert [f.severity for f in ranked] == ["critical", "medium"]


def test_a_healthy_request_has_no_findings():
    trace = make_trace(
        "/books/{id}",
        duration_ms=12,
        response_bytes=900,
        attrs={"framework": "fastapi", "async_handler": True, "body_digest": "abc"},
        request_headers={"accept-encoding": "gzip"},
        response_headers={"content-type": "application/json", "cache-control": "max-age=60"},
    )
    add(trace, "pool", "QueuePool.getconn", 0.5, 0.1, wait_ms=0.05)
    db(
        trace,
        "SELECT book.id, book.title FROM book WHERE book.id = %s",
        1,
        2,
        params_hash=1,
        rows=1,
    )
    add(trace, "middleware", "CORSMiddleware", 0, 0.2)
    add(trace, "serialize", "json", 10, 0.5)
    assert analyze([trace, trace], mode="doctor") == []
    assert analyze([trace, trace], mode="production") == []
