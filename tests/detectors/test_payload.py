from __future__ import annotations

import pytest

from lagless.detectors import analyze
from lagless.detectors.payload import accepts_compression

from ._build import add, make_trace


def response(size, *, content_type="application/json", encoding=None, accept="gzip, br", **kw):
    headers = {"content-type": content_type}
    if encoding:
        headers["content-encoding"] = encoding
    return make_trace(
        "/export",
        response_bytes=size,
        response_headers=headers,
        request_headers={"accept-encoding": accept} if accept else {},
        **kw,
    )


def codes(trace, mode="doctor"):
    return sorted(f.code for f in analyze([trace], mode=mode))


def test_large_json_payload():
    [finding] = analyze([response(400_000, encoding="br")], mode="doctor")
    assert finding.code == "large-payload"
    assert finding.title == "Large JSON response: 400 KB"
    assert finding.cost_ms == 320.0  # 400 KB at 10 Mbit/s
    assert "sparse fieldsets" in finding.fix


def test_payload_under_threshold_or_not_json_is_fine():
    assert codes(response(250_000, encoding="gzip")) == []
    assert codes(response(900_000, content_type="image/png")) == []


def test_uncompressed_payload_to_a_client_accepting_gzip():
    trace = response(50_000, attrs={"framework": "fastapi"})
    [finding] = analyze([trace], mode="doctor")
    assert finding.code == "uncompressed-payload"
    assert finding.title == (
        "Uncompressed response: 50.0 KB of application/json sent to a client accepting compression"
    )
    assert finding.cost_ms == 30.0  # three quarters of 50 KB at 10 Mbit/s
    assert "fastapi.middleware.gzip.GZipMiddleware" in finding.fix


def test_compressed_small_or_unaccepted_responses_are_fine():
    assert codes(response(50_000, encoding="gzip")) == []
    assert codes(response(1000)) == []
    assert codes(response(50_000, accept=None)) == []
    assert codes(response(50_000, accept="gzip;q=0, identity")) == []
    assert codes(response(50_000, content_type="image/jpeg")) == []


@pytest.mark.parametrize(
    ("header", "expected"),
    [("gzip", True), ("br;q=0.5", True), ("identity", False), ("gzip;q=0", False), ("", False)],
)
def test_accept_encoding(header, expected):
    assert accepts_compression(header) is expected


def test_slow_serialization():
    trace = response(2000, encoding="gzip", duration_ms=50, attrs={"framework": "django"})
    add(trace, "serialize", "JSONRenderer", 30, 15, bytes=2000)
    [finding] = analyze([trace], mode="production")
    assert finding.code == "slow-serialization"
    assert finding.title == "Slow serialization: 15.0 ms (30% of the request)"
    assert "orjson" in finding.fix


def test_quick_serialization_is_fine():
    trace = response(2000, encoding="gzip", duration_ms=50)
    add(trace, "serialize", "json", 30, 2)
    assert codes(trace, "production") == []
    tiny = response(2000, encoding="gzip", duration_ms=2)
    add(tiny, "serialize", "json", 1, 0.8)
    assert codes(tiny) == []  # 40 % of the request but under the 1 ms doctor floor


def test_serialization_is_judged_on_the_routes_median_request():
    traces = []
    for ms in (30, 2, 2):
        trace = response(2000, encoding="gzip", duration_ms=50)
        add(trace, "serialize", "json", 10, ms)
        traces.append(trace)
    assert analyze(traces, mode="production") == []
    traces[1].spans[0].duration_ns = 25_000_000
    [finding] = analyze(traces, mode="production")
    assert finding.cost_ms == 25.0 and finding.requests == 3
