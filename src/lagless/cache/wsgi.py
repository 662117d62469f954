"""WSGI adapters (Flask, Django's WSGI handler, any WSGI app): conditional requests and the
response cache, the synchronous twins of :mod:`lagless.cache.asgi`. All rules live in the
sans-IO modules; this file moves bytes and ``start_response`` calls.

::

    app.wsgi_app = ResponseCacheWSGIMiddleware(app.wsgi_app, policies=POLICIES, backend=backend)
    app.wsgi_app = ConditionalWSGIMiddleware(app.wsgi_app, policies=POLICIES)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from http import HTTPStatus
from typing import Any

from lagless.cache._backend import CacheBackend
from lagless.cache._conditional import GET_HEAD, ensure_date
from lagless.cache._memory import MemoryBackend
from lagless.cache._policy import CachePolicies, CachePolicy, RequestInfo, RouteMatch
from lagless.cache._response import (
    CONDITIONAL_REQUEST_HEADERS,
    Headers,
    StoredResponse,
    apply_conditions,
    bypass_reason,
    cache_status,
    decorate,
    header_dict,
    hit_response,
    precheck,
    primary_key,
    refusal_reason,
    storable_headers,
)
from lagless.cache._store import ResponseStore

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
OnComplete = Callable[[int, Headers, bytes], Headers]

DEFAULT_MAX_BODY = 1024 * 1024
_COND_ENVIRON = {"HTTP_" + h.upper().replace("-", "_") for h in CONDITIONAL_REQUEST_HEADERS}


def environ_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    """Request headers from a WSGI environ (or Django's ``request.META``), lower-case names."""
    out: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            out[key[5:].replace("_", "-").lower()] = str(value)
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            out[key.replace("_", "-").lower()] = str(value)
    return out


def status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Unknown"


def validate(
    match: RouteMatch, environ: Mapping[str, Any], method: str, headers: dict[str, str], now: float
) -> tuple[tuple[int, Headers] | None, Headers]:
    """Call the route's (sync) validator callables and evaluate the conditions."""
    policy = match.policy
    info = RequestInfo(
        method,
        environ.get("PATH_INFO", "/"),
        match.params,
        environ.get("QUERY_STRING", ""),
        headers,
    )
    etag = policy.etag(info) if policy.etag is not None else None
    modified = policy.last_modified(info) if policy.last_modified is not None else None
    return precheck(method, headers, policy, etag, modified)


def run_finishing(
    app: WSGIApp,
    environ: Environ,
    start_response: StartResponse,
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
) -> Iterable[bytes]:
    """Run the app, buffering its response up to ``max_body`` bytes for ETag, policy headers
    and conditional evaluation. A larger response, or a generator body of undeclared length
    (a stream) unless ``buffer_streams``, passes through with only its headers touched."""
    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = headers
        return chunks.append  # the legacy write() callable, buffered like the iterable

    def with_extra(headers: Headers) -> Headers:
        have = {n.lower() for n, _ in headers}
        return list(headers) + [(n, v) for n, v in extra if n not in have]

    result = app(environ, capture)
    iterator = iter(result)
    exhausted = False
    if "status" not in captured:  # a generator app calls start_response on its first step
        try:
            chunks.append(next(iterator))
        except StopIteration:
            exhausted = True
        except BaseException:
            _close(result)
            raise
    size = sum(len(c) for c in chunks)
    # A body of unknown length from a generator is a stream (server-sent events, a large
    # export): pass it through rather than hold it back. Lists and declared lengths buffer.
    declared = any(n.lower() == "content-length" for n, _ in captured.get("headers", ()))
    if not (declared or exhausted or buffer_streams or isinstance(result, list | tuple)):
        return _pass_through(
            captured,
            chunks,
            iterator,
            result,
            start_response,
            method=method,
            request_headers=request_headers,
            policy=policy,
            extra=extra,
            now=now,
            status_header=status_header,
            add_date=add_date,
        )
    try:
        for chunk in iterator:
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body:
                break
        else:
            status = int(captured["status"][:3])
            whole = b"".join(chunks)
            headers = decorate(
                method,
                request_headers,
                status,
                with_extra(captured["headers"]),
                whole,
                policy=policy,
            )
            if on_complete is not None:
                headers = headers + on_complete(status, headers, whole)
            elif status_header:
                headers.append(("cache-status", status_header))
            new_status, headers, whole = apply_conditions(
                method, request_headers, status, headers, whole
            )
            if add_date:
                headers = ensure_date(headers, now)
            line = captured["status"] if new_status == status else status_line(new_status)
            start_response(line, headers)
            return [whole]
    except BaseException:
        _close(result)
        raise
    # Too large to buffer: stream it.
    return _pass_through(
        captured,
        chunks,
        iterator,
        result,
        start_response,
        method=method,
        request_headers=request_headers,
        policy=policy,
        extra=extra,
        now=now,
        status_header=status_header,
        add_date=add_date,
    )


def _pass_through(
    captured: dict[str, Any],
    chunks: list[bytes],
    iterator: Iterator[bytes],
    result: Any,
    start_response: StartResponse,
    *,
    method: str,
    request_headers: dict[str, str],
    policy: CachePolicy | None,
    extra: Headers,
    now: float,
    status_header: str | None,
    add_date: bool,
) -> Iterable[bytes]:
    """Start the response with only its headers touched and stream the body as it comes."""
    have = {n.lower() for n, _ in captured["headers"]}
    headers = decorate(
        method,
        request_headers,
        int(captured["status"][:3]),
        list(captured["headers"]) + [(n, v) for n, v in extra if n not in have],
        None,
        policy=policy,
    )
    if status_header:
        headers.append(("cache-status", status_header))
    if add_date:
        headers = ensure_date(headers, now)
    start_response(captured["status"], headers)
    return _stream(list(chunks), iterator, result)


def _close(result: Any) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()


def _stream(first: list[bytes], rest: Iterator[bytes], result: Any) -> Iterator[bytes]:
    try:
        yield from first
        yield from rest
    finally:
        _close(result)


class ConditionalWSGIMiddleware:
    """Conditional requests (RFC 9110 §13) for every response of a WSGI app; see
    :class:`lagless.cache.asgi.ConditionalMiddleware` for what it does."""

    def __init__(
        self,
        app: WSGIApp,
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

    def _dated(self, headers: Headers, now: float) -> Headers:
        return ensure_date(headers, now) if self.add_date else headers

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        match = self.policies.match(method, path) if self.policies else None
        if match is None and method not in GET_HEAD:
            return self.app(environ, start_response)
        headers = environ_headers(environ)
        now = self.clock()
        extra: Headers = []
        if match is not None and match.policy.has_validators:
            early, extra = validate(match, environ, method, headers, now)
            if early is not None:
                start_response(status_line(early[0]), self._dated(early[1], now))
                return [b""]
        return run_finishing(
            self.app,
            environ,
            start_response,
            method=method,
            request_headers=headers,
            policy=match.policy if match else None,
            extra=extra,
            max_body=self.max_body,
            now=now,
            add_date=self.add_date,
        )


class ResponseCacheWSGIMiddleware:
    """A shared response cache for a WSGI app, per-route policy, safe by default; see
    :class:`lagless.cache.asgi.ResponseCacheMiddleware` for the rules."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        policies: CachePolicies,
        backend: CacheBackend | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        clock: Callable[[], float] = time.time,
        add_date: bool = False,
    ) -> None:
        self.add_date = add_date
        self.app = app
        self.policies = policies
        self.store = ResponseStore(backend if backend is not None else MemoryBackend(), clock)
        self.max_body = max_body
        self.clock = clock
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _dated(self, headers: Headers, now: float) -> Headers:
        return ensure_date(headers, now) if self.add_date else headers

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        match = self.policies.match(method, path)
        if match is None:
            return self.app(environ, start_response)
        policy = match.policy
        headers = environ_headers(environ)
        now = self.clock()
        extra: Headers = []
        if policy.has_validators:
            early, extra = validate(match, environ, method, headers, now)
            if early is not None:
                start_response(status_line(early[0]), self._dated(early[1], now))
                return [b""]
        reason = bypass_reason(method, headers, policy)
        if reason is not None:
            status_header = (
                cache_status(hit=False, fwd="method")
                if reason == "method"
                else cache_status(hit=False, fwd="bypass", detail=reason)
            )
            return run_finishing(
                self.app,
                environ,
                start_response,
                method=method,
                request_headers=headers,
                policy=policy,
                extra=extra,
                max_body=self.max_body,
                now=now,
                add_date=self.add_date,
                status_header=status_header,
            )

        shape = "resp:" + match.pattern
        full_path = environ.get("SCRIPT_NAME", "") + path
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        primary = primary_key(method, full_path, environ.get("QUERY_STRING", ""), host)
        entry, fwd = self.store.lookup(primary, headers, shape)
        if entry is None and method == "GET":
            with self._lock:
                waiting = self._inflight.get(primary)
            if waiting is not None:  # single-flight within the process
                waiting.wait(timeout=30)
                entry, fwd = self.store.lookup(primary, headers, shape)
        if entry is not None:
            status, out, body = hit_response(method, headers, entry, now=self.clock())
            start_response(status_line(status), self._dated(out, now))
            return [body]

        done = threading.Event()
        with self._lock:
            leader = method == "GET" and primary not in self._inflight
            if leader:
                self._inflight[primary] = done

        def on_complete(status: int, out: Headers, body: bytes) -> Headers:
            refusal = refusal_reason(status, header_dict(out))
            if method != "GET":
                refusal = refusal or "method"
            ttl = policy.server_ttl
            if refusal is not None or ttl is None:
                return [("cache-status", cache_status(hit=False, fwd=fwd, detail=refusal))]
            stored_at = self.clock()
            stored = StoredResponse(status, storable_headers(out, len(body)), body, stored_at, ttl)
            ok = self.store.store(primary, headers, stored, policy, shape)
            return [("cache-status", cache_status(hit=False, fwd=fwd, stored=ok))]

        forward = {k: v for k, v in environ.items() if k not in _COND_ENVIRON}
        try:
            return run_finishing(
                self.app,
                forward,
                start_response,
                method=method,
                request_headers=headers,
                policy=policy,
                extra=extra,
                max_body=self.max_body,
                now=now,
                add_date=self.add_date,
                on_complete=on_complete,
                status_header=cache_status(hit=False, fwd=fwd, detail="streamed"),
                buffer_streams=True,
            )
        finally:
            if leader:
                with self._lock:
                    del self._inflight[primary]
                done.set()
