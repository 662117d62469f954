"""Cache-Control policies and the response cache's sans-IO rules."""

from __future__ import annotations

import pytest

from lagless.cache import CachePolicies, CachePolicy
from lagless.cache._response import (
    StoredResponse,
    VaryMarker,
    bypass_reason,
    cache_status,
    decode_entry,
    decorate,
    normalize_query,
    parse_cache_control,
    parse_vary,
    primary_key,
    refusal_reason,
    storable_headers,
    variant_key,
)


@pytest.mark.parametrize(
    ("policy", "header", "ttl"),
    [
        (CachePolicy(max_age=60), "public, max-age=60", 60),
        (
            CachePolicy(max_age=60, s_maxage=300, stale_while_revalidate=30, stale_if_error=600),
            "public, max-age=60, s-maxage=300, stale-while-revalidate=30, stale-if-error=600",
            300,
        ),
        (
            CachePolicy(max_age=31536000, immutable=True),
            "public, max-age=31536000, immutable",
            31536000,
        ),
        (CachePolicy(private=True, max_age=30, s_maxage=99), "private, max-age=30", None),
        (CachePolicy(no_store=True, max_age=30), "no-store", None),
        (CachePolicy(no_cache=True, max_age=0), "public, no-cache, max-age=0", None),
        (
            CachePolicy(max_age=10, must_revalidate=True, ttl=5),
            "public, max-age=10, must-revalidate",
            5,
        ),
        (CachePolicy(max_age=10, store=False), "public, max-age=10", None),
        (CachePolicy(), None, None),
    ],
)
def test_policy_rendering_and_server_ttl(
    policy: CachePolicy, header: str | None, ttl: float | None
) -> None:
    assert policy.cache_control == header
    assert policy.server_ttl == ttl


def test_policy_validation() -> None:
    with pytest.raises(ValueError, match="max_age"):
        CachePolicy(max_age=-1)
    with pytest.raises(ValueError, match="ttl"):
        CachePolicy(ttl=0)
    with pytest.raises(TypeError, match="CachePolicy"):
        CachePolicies({"/x": "public"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="start with"):
        CachePolicies({"GET x": CachePolicy()})


def test_route_patterns() -> None:
    product = CachePolicy(max_age=60)
    static = CachePolicy(max_age=3600, immutable=True)
    put = CachePolicy(etag=lambda r: "1")
    home = CachePolicy(max_age=5)
    policies = CachePolicies(
        {"GET /products/{pid}": product, "/static/*": static, "PUT /products/{pid}": put, "/": home}
    )
    match = policies.match("GET", "/products/42")
    assert match is not None and match.policy is product and match.params == {"pid": "42"}
    assert match.pattern == "GET /products/{pid}"
    head = policies.match("HEAD", "/products/42")
    assert head is not None and head.policy is product  # HEAD follows GET
    put_match = policies.match("PUT", "/products/7")
    assert put_match is not None and put_match.policy is put
    assert policies.match("GET", "/products/42/reviews") is None
    static_match = policies.match("GET", "/static/css/site.css")
    assert static_match is not None and static_match.policy is static
    assert policies.match("GET", "/") is not None
    assert policies.match("POST", "/") is None
    assert CachePolicies(default=home).match("GET", "/anything") is not None


def test_cache_control_parsing_is_tolerant() -> None:
    assert parse_cache_control(' Public ,MAX-AGE = 60,, no-cache="Set-Cookie, X", ') == {
        "public": None,
        "max-age": "60",
        "no-cache": "Set-Cookie, X",
    }
    assert parse_cache_control(None) == {}


def test_vary_parsing() -> None:
    assert parse_vary(" Accept-Encoding ,accept, ACCEPT") == ["accept", "accept-encoding"]
    assert parse_vary("Accept, *") == ["*"]
    assert parse_vary("") == []


def test_keys() -> None:
    assert normalize_query("b=2&a=1&a=") == "a=1&a=&b=2"
    assert normalize_query("s=b&s=a") != normalize_query("s=a&s=b")  # order of repeats kept
    assert primary_key("GET", "/x", "b=2&a=1") == primary_key("HEAD", "/x", "a=1&b=2")
    assert primary_key("GET", "/x", "a=1") != primary_key("GET", "/X", "a=1")
    assert primary_key("GET", "/x", "a=1") != primary_key("GET", "/x", "a=2")
    assert primary_key("GET", "/x", "", "A.example") == primary_key("GET", "/x", "", "a.example")
    assert primary_key("GET", "/x", "", "a.example") != primary_key("GET", "/x", "", "b.example")
    p = primary_key("GET", "/x", "")
    gzip = variant_key(p, ["accept-encoding"], {"accept-encoding": "gzip,  br"})
    assert gzip == variant_key(p, ["accept-encoding"], {"accept-encoding": "gzip,br"})
    assert gzip != variant_key(p, ["accept-encoding"], {"accept-encoding": "br"})
    secret = variant_key(p, ["authorization"], {"authorization": "Bearer TOKEN123"})
    assert "TOKEN123" not in secret  # header values are hashed


def test_bypass_reasons() -> None:
    public = CachePolicy(max_age=60)
    assert bypass_reason("GET", {}, public) is None
    assert bypass_reason("HEAD", {}, public) is None
    assert bypass_reason("POST", {}, public) == "method"
    assert bypass_reason("GET", {"authorization": "Bearer x"}, public) == "authorization"
    assert bypass_reason("GET", {"cookie": "sid=1"}, public) == "cookie"
    assert bypass_reason("GET", {"cache-control": "No-Cache"}, public) == "request"
    assert bypass_reason("GET", {}, CachePolicy(private=True, max_age=9)) == "policy"
    opted = CachePolicy(max_age=60, vary_on_cookie=True, vary_on_authorization=True)
    assert bypass_reason("GET", {"authorization": "x", "cookie": "y"}, opted) is None


@pytest.mark.parametrize(
    ("status", "headers", "reason"),
    [
        (200, {}, None),
        (404, {}, None),
        (500, {}, "status"),
        (206, {}, "status"),
        (200, {"set-cookie": "sid=1"}, "set-cookie"),
        (200, {"cache-control": "Private, max-age=60"}, "private"),
        (200, {"cache-control": " NO-STORE"}, "no-store"),
        (200, {"cache-control": "no-cache"}, "no-cache"),
        (200, {"vary": "Accept, *"}, "vary-star"),
        (200, {"vary": "Accept"}, None),
    ],
)
def test_refusal_reasons(status: int, headers: dict[str, str], reason: str | None) -> None:
    assert refusal_reason(status, headers) == reason


def test_cache_status_values() -> None:
    assert cache_status(hit=True, ttl=30) == "lagless; hit; ttl=30"
    assert cache_status(hit=False, fwd="uri-miss", stored=True) == "lagless; fwd=uri-miss; stored"
    assert (
        cache_status(hit=False, fwd="bypass", detail="authorization")
        == "lagless; fwd=bypass; detail=authorization"
    )


def test_entries_round_trip() -> None:
    entry = StoredResponse(200, [("content-type", "text/plain")], b"\x00body", 12.5, 60.0)
    assert decode_entry(entry.encode()) == entry
    assert decode_entry(VaryMarker(["accept"]).encode()) == VaryMarker(["accept"])
    assert decode_entry(b"garbage") is None
    kept = storable_headers([("Server-Timing", "x"), ("Content-Type", "a/b"), ("Age", "3")], 5)
    assert kept == [("content-type", "a/b"), ("content-length", "5")]


def test_decorate_never_makes_personal_responses_public() -> None:
    policy = CachePolicy(max_age=60, s_maxage=600)
    personal = decorate("GET", {"authorization": "x"}, 200, [], b"body", policy=policy)
    assert ("cache-control", "private, max-age=60") in personal
    with_cookie = decorate("GET", {}, 200, [("set-cookie", "a=b")], b"body", policy=policy)
    assert ("cache-control", "private, max-age=60") in with_cookie
    public = decorate("GET", {}, 200, [], b"body", policy=policy)
    assert ("cache-control", "public, max-age=60, s-maxage=600") in public
    assert any(n == "etag" for n, _ in public)
    own = decorate("GET", {}, 200, [("Cache-Control", "no-cache")], b"b", policy=policy)
    assert [v for n, v in own if n.lower() == "cache-control"] == ["no-cache"]
    varying = decorate(
        "GET",
        {"cookie": "s"},
        200,
        [("vary", "Accept")],
        b"b",
        policy=CachePolicy(max_age=60, vary_on_cookie=True),
    )
    assert ("vary", "accept, cookie") in varying
