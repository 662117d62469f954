"""Regression tests from the review of the response cache: the Vary a pre-handler 304 must
carry, the route of requests the cache answers, keys that must not merge, and what must never
be stored (partials, oversized bodies, stale-at-once responses)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lagless.cache import (
    CachePolicies,
    CachePolicy,
    ConditionalMiddleware,
    ConditionalWSGIMiddleware,
    ResponseCacheMiddleware,
    ResponseCacheWSGIMiddleware,
)
from lagless.cache._flow import pattern_route, plan_store
from lagless.cache._response import (
    StoredResponse,
    decode_entry,
    normalize_query,
    precheck,
    primary_key,
    refusal_reason,
)
from tests.cache.conftest import FakeClock

VERSIONED = CachePolicy(max_age=60, vary=("Accept",), etag=lambda info: "v1")


# -- sans-IO rules -------------------------------------------------------------------------------
def test_policy_vary_is_normalized_and_validated() -> None:
    assert CachePolicy(vary=("Accept", " accept-language ", "accept")).vary == (
        "accept",
        "accept-language",
    )
    with pytest.raises(ValueError, match="no_store"):
        CachePolicy(vary=("*",))
    with pytest.raises(TypeError):
        CachePolicy(vary="accept")  # type: ignore[arg-type]


def test_pre_handler_304_carries_the_vary_and_cache_control_of_the_200() -> None:
    early, validators = precheck("GET", {"if-none-match": '"v1"'}, VERSIONED, "v1", None)
    assert early is not None and early[0] == 304
    headers = dict(early[1])
    assert headers["vary"] == "accept"  # RFC 9110 §15.4.5
    assert headers["cache-control"] == "public, max-age=60"
    assert headers["etag"] == '"v1"'
    assert validators == [("etag", '"v1"')]


def test_query_normalization_never_merges_distinct_queries() -> None:
    distinct = [
        ("a=1&a=2", "a=2&a=1"),
        ("a=1", "A=1"),
        ("a=%ff", "a=%fe"),  # both decode to U+FFFD
        ("a=%20", "a=+"),
        ("a=1&%61=2", "%61=2&a=1"),  # one name spelt two ways: order of values kept
        ("a=1", "a=1&b"),
    ]
    for left, right in distinct:
        assert normalize_query(left) != normalize_query(right), (left, right)
        assert primary_key("GET", "/x", left) != primary_key("GET", "/x", right)
    assert normalize_query("b=2&a=1") == normalize_query("a=1&b=2")
    assert normalize_query("a=1&&b=2&") == "a=1&b=2"


def test_scheme_and_host_are_part_of_the_key() -> None:
    http = primary_key("GET", "/x", "", "a.example", "http")
    assert http != primary_key("GET", "/x", "", "a.example", "https")
    assert http == primary_key("GET", "/x", "", "A.example", "HTTP")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"cache-control": "max-age=0"}, "stale"),
        ({"cache-control": "public, s-maxage=0, max-age=60"}, "stale"),
        ({"cache-control": 'private="set-cookie", max-age=60'}, "private"),
        ({"cache-control": 'no-cache="set-cookie"'}, "no-cache"),
        ({"cache-control": "NO-STORE"}, "no-store"),
        ({"cache-control": "s-maxage=60, max-age=0"}, None),
    ],
)
def test_refusals_read_the_response_directives(headers: dict[str, str], reason: str) -> None:
    assert refusal_reason(200, headers) == reason


def test_partial_content_and_oversized_bodies_are_never_stored() -> None:
    policy = CachePolicy(max_age=60)
    kwargs: dict[str, Any] = {"policy": policy, "max_body": 10, "stored_at": 0.0, "route": None}
    assert plan_store("GET", 206, [], b"abc", **kwargs) == (None, "status")
    assert plan_store("GET", 200, [], b"x" * 11, **kwargs) == (None, "size")
    stored, refusal = plan_store("GET", 200, [], b"x" * 10, **{**kwargs, "route": "/r/{id}"})
    assert refusal is None and stored is not None
    decoded = decode_entry(stored.encode())
    assert isinstance(decoded, StoredResponse) and decoded.route == "/r/{id}"


def test_pattern_route() -> None:
    policies = CachePolicies(
        {"GET /items/{iid}": CachePolicy(max_age=1), "/static/*": CachePolicy(max_age=1)},
        default=CachePolicy(max_age=1),
    )
    assert pattern_route(policies.match("HEAD", "/items/3")) == "/items/{iid}"  # type: ignore[arg-type]
    assert pattern_route(policies.match("GET", "/static/a.css")) is None  # type: ignore[arg-type]
    assert pattern_route(policies.match("GET", "/other")) is None  # type: ignore[arg-type]


# -- ASGI ------------------------------------------------------------------------------------------
class Recorder:
    """A raw ASGI app answering with what a test sets, and remembering what it was asked."""

    def __init__(self, body: bytes = b"hello", headers: list[tuple[bytes, bytes]] | None = None):
        self.body = body
        self.headers = headers or [(b"content-type", b"text/plain"), (b"vary", b"accept")]
        self.status = 200
        self.seen: list[dict[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        scope["route"] = None  # what a router leaves behind (tested to reach the outer scope)
        scope["path_template"] = "/items/{iid}"
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


async def call_asgi(
    app: Any, path: str = "/items/1", headers: dict[str, str] | None = None, scheme: str = "http"
) -> tuple[int, dict[str, str], bytes, dict[str, Any]]:
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": path,
        "query_string": b"",
        "scheme": scheme,
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    out = {k.decode(): v.decode() for k, v in sent[0]["headers"]}
    return sent[0]["status"], out, b"".join(m.get("body", b"") for m in sent[1:]), scope


@pytest.mark.parametrize("middleware", [ConditionalMiddleware, ResponseCacheMiddleware])
async def test_asgi_pre_handler_304_has_vary_and_names_the_route(middleware: Any) -> None:
    policies = CachePolicies({"GET /items/{iid}": VERSIONED})
    inner = Recorder()
    app = middleware(inner, policies=policies)
    status, headers, body, _ = await call_asgi(app, headers={"if-none-match": '"v1"'})
    assert (status, body, inner.seen) == (304, b"", [])
    assert headers["vary"] == "accept" and headers["cache-control"] == "public, max-age=60"


async def test_asgi_hits_and_early_answers_are_filed_under_their_route(clock: FakeClock) -> None:
    from lagless._trace import Trace, _current_trace

    policies = CachePolicies({"GET /items/{iid}": CachePolicy(max_age=60)})
    inner = Recorder()
    app = ResponseCacheMiddleware(inner, policies=policies, clock=clock)
    miss = Trace("GET", "/items/1")
    token = _current_trace.set(miss)
    try:
        *_, scope = await call_asgi(app)
    finally:
        _current_trace.reset(token)
    # The router's scope changes reach the scope the tracing middleware outside reads.
    assert scope["path_template"] == "/items/{iid}"
    hit = Trace("GET", "/items/1")
    token = _current_trace.set(hit)
    try:
        _, headers, _, _ = await call_asgi(app)
    finally:
        _current_trace.reset(token)
    assert headers["cache-status"].startswith("lagless; hit")
    assert hit.route == "/items/{iid}" and len(inner.seen) == 1


async def test_asgi_http_and_https_do_not_share_entries() -> None:
    policies = CachePolicies({"GET /items/{iid}": CachePolicy(max_age=60)})
    inner = Recorder()
    app = ResponseCacheMiddleware(inner, policies=policies)
    await call_asgi(app, scheme="http")
    _, headers, _, _ = await call_asgi(app, scheme="https")
    assert "fwd=uri-miss" in headers["cache-status"] and len(inner.seen) == 2


async def test_asgi_one_message_over_max_body_is_not_stored() -> None:
    policies = CachePolicies({"GET /items/{iid}": CachePolicy(max_age=60)})
    inner = Recorder(body=b"x" * 100)
    app = ResponseCacheMiddleware(inner, policies=policies, max_body=50)
    _, headers, body, _ = await call_asgi(app)
    assert body == b"x" * 100 and "detail=size" in headers["cache-status"]
    await call_asgi(app)
    assert len(inner.seen) == 2


async def test_asgi_range_miss_keeps_if_range_and_is_not_stored() -> None:
    policies = CachePolicies({"GET /items/{iid}": CachePolicy(max_age=60)})
    inner = Recorder(body=b"hel")
    inner.status = 206
    app = ResponseCacheMiddleware(inner, policies=policies)
    ranged = {"range": "bytes=0-2", "if-range": '"old"'}
    status, headers, _, _ = await call_asgi(app, headers=ranged)
    assert status == 206 and "detail=range" in headers["cache-status"]
    assert inner.seen[0]["if-range"] == '"old"'  # the app evaluates If-Range itself
    # A full response stored later answers a Range request with the whole 200 (RFC 9110 §14.2).
    inner.status, inner.body = 200, b"hello"
    await call_asgi(app)
    status, headers, body, _ = await call_asgi(app, headers=ranged)
    assert (status, body) == (200, b"hello") and headers["cache-status"].startswith("lagless; hit")


# -- WSGI ------------------------------------------------------------------------------------------
class ClosingBody:
    """A WSGI body that records close(), as PEP 3333 requires servers (and middlewares that
    replace it) to call."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.closed = True


def wsgi_call(app: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"], seen["headers"] = status, dict(headers)

    result = app(environ, start_response)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    return seen["status"], seen["headers"], body


def environ(**extra: Any) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/items/1",
        "QUERY_STRING": "",
        "SERVER_NAME": "a.example",
        "wsgi.url_scheme": "http",
        **extra,
    }


@pytest.mark.parametrize("middleware", [ConditionalWSGIMiddleware, ResponseCacheWSGIMiddleware])
def test_wsgi_pre_handler_304_has_vary(middleware: Any) -> None:
    calls: list[int] = []

    def inner(env: Any, start_response: Any) -> Any:
        calls.append(1)
        start_response("200 OK", [("Vary", "Accept")])
        return [b"x"]

    app = middleware(inner, policies=CachePolicies({"GET /items/{iid}": VERSIONED}))
    status, headers, body = wsgi_call(app, environ(HTTP_IF_NONE_MATCH='"v1"'))
    assert (status, body, calls) == ("304 Not Modified", b"", [])
    assert headers["vary"] == "accept" and headers["cache-control"] == "public, max-age=60"


def test_wsgi_buffered_body_is_closed_and_route_named() -> None:
    from lagless._trace import Trace, _current_trace

    bodies: list[ClosingBody] = []

    def inner(env: Any, start_response: Any) -> Any:
        env["lagless.route"] = "/items/{iid}"
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        bodies.append(ClosingBody([b"ok"]))
        return bodies[-1]

    app = ResponseCacheWSGIMiddleware(
        inner, policies=CachePolicies({"GET /items/{iid}": CachePolicy(max_age=60)})
    )
    outer = environ()
    wsgi_call(app, outer)
    assert bodies[0].closed and outer["lagless.route"] == "/items/{iid}"
    trace = Trace("GET", "/items/1")
    token = _current_trace.set(trace)
    try:
        _, headers, body = wsgi_call(app, environ())
    finally:
        _current_trace.reset(token)
    assert body == b"ok" and headers["cache-status"].startswith("lagless; hit")
    assert trace.route == "/items/{iid}" and len(bodies) == 1


def test_wsgi_single_chunk_generator_over_max_body_streams_unstored() -> None:
    calls: list[int] = []

    def inner(env: Any, start_response: Any) -> Any:
        calls.append(1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"x" * 100

    app = ResponseCacheWSGIMiddleware(
        inner, policies=CachePolicies({"GET /items/{iid}": CachePolicy(max_age=60)}), max_body=50
    )
    for _ in range(2):
        _, headers, body = wsgi_call(app, environ())
        assert body == b"x" * 100 and "etag" not in headers
    assert len(calls) == 2


def test_wsgi_scheme_separates_entries() -> None:
    calls: list[int] = []

    def inner(env: Any, start_response: Any) -> Any:
        calls.append(1)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [env["wsgi.url_scheme"].encode()]

    app = ResponseCacheWSGIMiddleware(
        inner, policies=CachePolicies({"GET /items/{iid}": CachePolicy(max_age=60)})
    )
    assert wsgi_call(app, environ())[2] == b"http"
    assert wsgi_call(app, environ(**{"wsgi.url_scheme": "https"}))[2] == b"https"
    assert len(calls) == 2
