"""ASGI adapters (FastAPI, Starlette, Litestar, any ASGI app): conditional requests and the
response cache. Pure ASGI classes wrapping ``send`` (the shape of Starlette's GZipMiddleware);
never ``BaseHTTPMiddleware``. All rules live in the sans-IO modules; this file moves messages.

::

    policies = CachePolicies({"GET /products/{pid}": CachePolicy(max_age=60, s_maxage=300)})
    app = ResponseCacheMiddleware(app, policies=policies, backend=RedisBackend(url=REDIS_URL))
    app = ConditionalMiddleware(app)   # ETag/304 for every other GET too
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from lagless._guard import report_internal_error
from lagless.cache._backend import CacheBackend
from lagless.cache._conditional import GET_HEAD, ensure_date
from lagless.cache._flow import (
    bypass_status,
    conclude,
    current_route,
    finish_headers,
    miss_bypass,
    name_route,
    pattern_route,
    plan_store,
    store_status,
    stream_headers,
)
from lagless.cache._invalidate import SAFE_METHODS, invalidation_tags, path_tag
from lagless.cache._memory import MemoryBackend
from lagless.cache._policy import CachePolicies, CachePolicy, RequestInfo, RouteMatch
from lagless.cache._response import (
    CONDITIONAL_REQUEST_HEADERS,
    Headers,
    bypass_reason,
    cache_status,
    header_dict,
    hit_response,
    precheck,
    primary_key,
)
from lagless.cache._store import ResponseStore
from lagless.integrations.asgi import default_route

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
OnComplete = Callable[[int, Headers, bytes], Awaitable[Headers]]

DEFAULT_MAX_BODY = 1024 * 1024


def _encode(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers]


def _decode(raw: Any) -> Headers:
    return [
        (
            n.decode("latin-1") if isinstance(n, bytes) else str(n),
            v.decode("latin-1") if isinstance(v, bytes) else str(v),
        )
        for n, v in raw or ()
    ]


async def _send_whole(
    send: Send, status: int, headers: Headers, body: bytes, date: float | None
) -> None:
    if date is not None:
        headers = ensure_date(headers, date)
    await send({"type": "http.response.start", "status": status, "headers": _encode(headers)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


async def run_validators(
    match: RouteMatch, scope: Scope, method: str, headers: dict[str, str], now: float
) -> tuple[tuple[int, Headers] | None, Headers]:
    """Call the route's validator callables (sync or async) and evaluate the conditions."""
    policy = match.policy
    info = RequestInfo(
        method,
        scope["path"],
        match.params,
        scope.get("query_string", b"").decode("latin-1"),
        headers,
    )
    etag = await _resolve(policy.etag(info)) if policy.etag is not None else None
    modified = (
        await _resolve(policy.last_modified(info)) if policy.last_modified is not None else None
    )
    return precheck(method, headers, policy, etag, modified)


async def run_finishing(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    method: str,
    request_headers: dict[str, str],
    policy: CachePolicy | None,
    extra: Headers,
    max_body: int,
    now: float,
    on_complete: OnComplete | None = None,
    status_header: str | None = None,
    add_date: bool = False,
    buffer_streams: bool = False,
) -> None:
    """Run the app, buffering a complete response so it can get its ETag, policy headers and
    conditional evaluation. A streamed response (a first body message with ``more_body``) is
    passed through as it comes with only its headers touched, unless ``buffer_streams`` (the
    response cache, on a route whose policy asked for caching) lets it collect up to
    ``max_body`` bytes; Server-Sent Events always pass through."""
    start: Message | None = None
    chunks: list[bytes] = []
    size = 0
    streaming = False
    date = now if add_date else None

    async def begin_stream() -> None:
        nonlocal streaming
        streaming = True
        assert start is not None
        headers = stream_headers(
            method,
            request_headers,
            start["status"],
            _decode(start.get("headers")),
            policy=policy,
            extra=extra,
            status_header=status_header,
            date=date,
        )
        await send({**start, "headers": _encode(headers)})

    async def wrapped(message: Message) -> None:
        nonlocal start, size
        if streaming:
            await send(message)
            return
        mtype = message["type"]
        if mtype == "http.response.start":
            start = message
            if message.get("trailers"):
                await begin_stream()
            return
        if mtype != "http.response.body" or start is None:
            if start is not None:
                await begin_stream()
            await send(message)
            return
        body = message.get("body", b"")
        chunks.append(body)
        size += len(body)
        if message.get("more_body", False):
            if not buffer_streams or size > max_body or _event_stream(start):
                await begin_stream()
                await send(
                    {"type": "http.response.body", "body": b"".join(chunks), "more_body": True}
                )
                chunks.clear()
            return
        status = start["status"]
        whole = b"".join(chunks)
        headers = finish_headers(
            method,
            request_headers,
            status,
            _decode(start.get("headers")),
            whole,
            policy=policy,
            extra=extra,
        )
        if on_complete is not None:
            headers += await on_complete(status, headers, whole)
        elif status_header:
            headers.append(("cache-status", status_header))
        status, headers, whole = conclude(method, request_headers, status, headers, whole, date)
        await send({**start, "status": status, "headers": _encode(headers)})
        await send({"type": "http.response.body", "body": whole, "more_body": False})

    await app(scope, receive, wrapped)


def _event_stream(start: Message) -> bool:
    for name, value in start.get("headers") or ():
        if name.lower() == b"content-type" and value.lower().startswith(b"text/event-stream"):
            return True
    return False


class ConditionalMiddleware:
    """Conditional requests (RFC 9110 §13) for every response of an ASGI app.

    A complete GET 200 response gets a strong ETag hashed from its body (unless it has one) and
    is answered 304 when the request's If-None-Match / If-Modified-Since match. Routes whose
    policy (in ``policies``) has ``etag=`` / ``last_modified=`` callables are answered 304 or
    412 *before* the app runs, which is where the savings are: no query, no serialization.
    Unsafe methods with If-Match / If-Unmodified-Since get 412 when the validators say the
    resource changed, so concurrent writers cannot overwrite each other.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: CachePolicies | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        clock: Callable[[], float] = time.time,
        add_date: bool = False,
    ) -> None:
        self.add_date = add_date
        self.app = app
        self.policies = policies
        self.max_body = max_body
        self.clock = clock

    async def _early(
        self, match: RouteMatch, scope: Scope, send: Send, headers: dict[str, str], now: float
    ) -> Headers | None:
        """Run the route's validators; None when a 304/412 was sent, else the validator
        headers for the full response."""
        early, extra = await run_validators(match, scope, scope["method"], headers, now)
        if early is None:
            return extra
        name_route(pattern_route(match))  # the router never runs for this request
        await _send_whole(send, early[0], early[1], b"", now if self.add_date else None)
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        match = self.policies.match(method, scope["path"]) if self.policies else None
        if match is None and method not in GET_HEAD:
            await self.app(scope, receive, send)
            return
        headers = header_dict(scope.get("headers") or ())
        now = self.clock()
        extra: Headers = []
        if match is not None and match.policy.has_validators:
            checked = await self._early(match, scope, send, headers, now)
            if checked is None:
                return
            extra = checked
        await run_finishing(
            self.app,
            scope,
            receive,
            send,
            method=method,
            request_headers=headers,
            policy=match.policy if match else None,
            extra=extra,
            max_body=self.max_body,
            now=now,
            add_date=self.add_date,
        )


class ResponseCacheMiddleware(ConditionalMiddleware):
    """A shared response cache for an ASGI app, per-route policy, safe by default.

    Only routes with a policy in ``policies`` are touched. Responses are stored in ``backend``
    (memory by default; a :class:`RedisBackend` shares them across processes), keyed by method,
    scheme, host, path, normalized query and the request headers the response's ``Vary`` names.
    Hits carry ``Age`` and ``Cache-Status`` (RFC 9211), answer conditional requests themselves,
    and are filed under the route template stored with the entry. Backend failures are misses
    (fail open). Concurrent misses for one URL in one process wait for the first one's response
    instead of all reaching the app. A 2xx/3xx answer to an unsafe request (POST, PUT, PATCH,
    DELETE) drops every stored variant of its path and of same-host ``Location`` /
    ``Content-Location`` before it is sent (RFC 9111 §4.4).
    """

    policies: CachePolicies

    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: CachePolicies,
        backend: CacheBackend | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        clock: Callable[[], float] = time.time,
        add_date: bool = False,
    ) -> None:
        super().__init__(app, policies=policies, max_body=max_body, clock=clock, add_date=add_date)
        self.store = ResponseStore(backend if backend is not None else MemoryBackend(), clock)
        self._inflight: dict[str, asyncio.Event] = {}

    def _invalidating(self, scope: Scope, send: Send) -> Send:
        """``send`` that, before a successful answer to an unsafe request leaves, drops what
        the cache holds for its target URI and same-host Location/Content-Location (RFC 9111
        §4.4), so the client's next GET cannot be answered with the old representation."""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                try:
                    tags = invalidation_tags(
                        scope["method"],
                        message["status"],
                        scheme=scope.get("scheme", "http"),
                        host=header_dict(scope.get("headers") or ()).get("host", ""),
                        path=scope["path"],
                        response_headers=header_dict(message.get("headers") or ()),
                        policies=self.policies,
                    )
                except Exception as exc:
                    report_internal_error("cache.invalidate", exc)
                else:
                    await self.store.ainvalidate(tags)
            await send(message)

        return wrapped

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method not in SAFE_METHODS:
            send = self._invalidating(scope, send)
        match = self.policies.match(method, scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        policy = match.policy
        headers = header_dict(scope.get("headers") or ())
        now = self.clock()
        extra: Headers = []
        if policy.has_validators:
            checked = await self._early(match, scope, send, headers, now)
            if checked is None:
                return
            extra = checked
        finishing: dict[str, Any] = {
            "method": method,
            "request_headers": headers,
            "policy": policy,
            "extra": extra,
            "max_body": self.max_body,
            "now": now,
            "add_date": self.add_date,
        }
        reason = bypass_reason(method, headers, policy)
        if reason is not None:
            await run_finishing(
                self.app, scope, receive, send, status_header=bypass_status(reason), **finishing
            )
            return

        shape = "resp:" + match.pattern
        path = scope["path"]
        primary = primary_key(
            method,
            path,
            scope.get("query_string", b"").decode("latin-1"),
            headers.get("host", ""),
            scope.get("scheme", "http"),
        )
        entry, fwd = await self.store.alookup(primary, headers, shape)
        if entry is None and method == "GET":
            waiting = self._inflight.get(primary)
            if waiting is not None:  # single-flight: let the first miss fill the entry
                await waiting.wait()
                entry, fwd = await self.store.alookup(primary, headers, shape)
        if entry is not None:
            name_route(entry.route or pattern_route(match))
            status, out, body = hit_response(method, headers, entry, now=self.clock())
            await _send_whole(send, status, out, body, now if self.add_date else None)
            return
        reason = miss_bypass(headers)
        if reason is not None:
            await run_finishing(
                self.app, scope, receive, send, status_header=bypass_status(reason), **finishing
            )
            return

        leader = method == "GET" and primary not in self._inflight
        done = asyncio.Event()
        if leader:
            self._inflight[primary] = done
        # The app sees the request without its conditions; the cache evaluates them against
        # the full response it stores (RFC 9111 §4.3.2).
        forward = dict(scope)
        forward["headers"] = [
            (n, v)
            for n, v in scope.get("headers") or ()
            if n.decode("latin-1").lower() not in CONDITIONAL_REQUEST_HEADERS
        ]

        async def on_complete(status: int, out: Headers, body: bytes) -> Headers:
            stored, refusal = plan_store(
                method,
                status,
                out,
                body,
                policy=policy,
                max_body=self.max_body,
                stored_at=self.clock(),
                route=current_route() or default_route(forward) or pattern_route(match),
            )
            ok = stored is not None and await self.store.astore(
                primary, headers, stored, policy, shape, path_tag(headers.get("host", ""), path)
            )
            return store_status(fwd, refusal, ok)

        try:
            await run_finishing(
                self.app,
                forward,
                receive,
                send,
                on_complete=on_complete,
                status_header=cache_status(hit=False, fwd=fwd, detail="streamed"),
                buffer_streams=True,
                **finishing,
            )
        finally:
            # What the router left in the copy (route, endpoint, path params) is what the
            # tracing middleware outside reads to name the request's route.
            for key, value in forward.items():
                if key != "headers":
                    scope[key] = value
            if leader:
                del self._inflight[primary]
                done.set()
