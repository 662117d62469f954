from __future__ import annotations

from lagless.detectors import analyze

from ._build import make_trace


def get(digest="d1", headers=None, status=200, request_headers=None, duration_ms=30.0, **attrs):
    return make_trace(
        "/products/{id}",
        duration_ms=duration_ms,
        status=status,
        response_bytes=2000,
        attrs={"body_digest": digest, "framework": "flask", **attrs},
        response_headers={"content-type": "application/json", **(headers or {})},
        request_headers=request_headers,
    )


def test_identical_responses_without_validators():
    [finding] = analyze([get(), get(), get("d2")], mode="production")
    assert finding.code == "no-http-caching"
    assert finding.title == (
        "No HTTP caching: 2 identical responses without Cache-Control, ETag or Last-Modified"
    )
    assert finding.requests == 2 and finding.cost_ms == 30.0
    assert "make_conditional" in finding.fix


def test_responses_with_a_validator_or_cache_control_are_fine():
    assert analyze([get(headers={"etag": '"v1"'}) for _ in range(3)], mode="doctor") == []
    assert (
        analyze([get(headers={"cache-control": "no-store"}) for _ in range(3)], mode="doctor") == []
    )


def test_differing_bodies_personal_responses_and_posts_are_fine():
    assert analyze([get("a"), get("b"), get("c")], mode="doctor") == []
    assert analyze([get(has_set_cookie=True) for _ in range(3)], mode="doctor") == []
    posts = [get() for _ in range(3)]
    for t in posts:
        t.method = "POST"
    assert analyze(posts, mode="doctor") == []


def test_no_digest_means_no_evidence():
    traces = [get(None), get(None)]
    for t in traces:
        del t.attrs["body_digest"]
    assert analyze(traces, mode="doctor") == []


def test_production_needs_time():
    fast = [get(duration_ms=2.0) for _ in range(3)]
    assert analyze(fast, mode="production") == []
    assert len(analyze(fast, mode="doctor")) == 1


def test_etag_that_never_yields_304():
    headers = {"etag": 'W/"v1"', "cache-control": "no-cache"}
    traces = [get(headers=headers, request_headers={"if-none-match": '"v1"'}) for _ in range(2)]
    [finding] = analyze(traces, mode="doctor")
    assert finding.title == "ETag never answered with 304: 2 conditional requests got a full 200"
    assert finding.evidence[0]["etag"] == 'W/"v1"'
    assert finding.cost_ms == 1.6  # 2000 bytes at 10 Mbit/s
    assert "make_conditional" in finding.fix


def test_etag_answered_with_304_is_fine():
    headers = {"etag": '"v1"'}
    ok = get(headers=headers, status=304, request_headers={"if-none-match": '"v1"'})
    stale = get(headers=headers, request_headers={"if-none-match": '"v0"'})
    assert analyze([ok, stale], mode="doctor") == []
