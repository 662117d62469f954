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


def wsgi_text(value: str) -> str:
    """A WSGI "native string" (bytes as latin-1, PEP 3333) as the text the bytes spell in
    UTF-8, the form ASGI and Django give paths in."""
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")


def wsgi_host(environ: Mapping[str, Any]) -> str:
    """The request's Host (``SERVER_NAME`` when the client sent none)."""
    return str(environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""))


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
    date = now if add_date else None

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = status
        captured["headers"] = headers
        return chunks.append  # the legacy write() callable, buffered like the iterable

    def pass_through() -> Iterable[bytes]:
        """Start the response with only its headers touched; stream the body as it comes."""
        headers = stream_headers(
            method,
            request_headers,
            int(captured["status"][:3]),
            captured["headers"],
            policy=policy,
            extra=extra,
            status_header=status_header,
            date=date,
        )
        start_response(captured["status"], headers)
        return _stream(list(chunks), iterator, result)

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
        return pass_through()
    try:
        if size > max_body:  # a first chunk (or write() calls) already over the cap
            return pass_through()
        for chunk in iterator:
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body:
                return pass_through()  # too large to buffer: stream it
        status = int(captured["status"][:3])
        whole = b"".join(chunks)
        headers = finish_headers(
            method, request_headers, status, captured["headers"], whole, policy=policy, extra=extra
        )
        if on_complete is not None:
            headers += on_complete(status, headers, whole)
        elif status_header:
            headers.append(("cache-status", status_header))
        new_status, headers, whole = conclude(method, request_headers, status, headers, whole, date)
        line = captured["status"] if new_status == status else status_line(new_status)
        start_response(line, headers)
        _close(result)
        return [whole]
    except BaseException:
        _close(result)
        raise


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

    def _early(
        self,
        match: RouteMatch,
        environ: Environ,
        start_response: StartResponse,
        headers: dict[str, str],
        now: float,
    ) -> Headers | None:
        """Run the route's validators; None when a 304/412 was started, else the validator
        headers for the full response."""
        early, extra = validate(match, environ, environ.get("REQUEST_METHOD", "GET"), headers, now)
        if early is None:
            return extra
        name_route(pattern_route(match))  # the router never runs for this request
        start_response(status_line(early[0]), self._dated(early[1], now))
        return None

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
            checked = self._early(match, environ, start_response, headers, now)
            if checked is None:
                return [b""]
            extra = checked
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


class ResponseCacheWSGIMiddleware(ConditionalWSGIMiddleware):
    """A shared response cache for a WSGI app, per-route policy, safe by default; see
    :class:`lagless.cache.asgi.ResponseCacheMiddleware` for the rules."""

    policies: CachePolicies

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
        super().__init__(app, policies=policies, max_body=max_body, clock=clock, add_date=add_date)
        self.store = ResponseStore(backend if backend is not None else MemoryBackend(), clock)
        self.flight = SingleFlight()

    def _invalidating(self, environ: Environ, start_response: StartResponse) -> StartResponse:
        """``start_response`` that, before a successful answer to an unsafe request starts,
        drops what the cache holds for its target URI and same-host Location/Content-Location
        (RFC 9111 §4.4)."""

        def wrapped(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                script = wsgi_text(environ.get("SCRIPT_NAME", ""))
                tags = invalidation_tags(
                    environ.get("REQUEST_METHOD", "GET"),
                    int(status[:3]),
                    scheme=environ.get("wsgi.url_scheme", "http"),
                    host=wsgi_host(environ),
                    path=script + wsgi_text(environ.get("PATH_INFO", "/")),
                    response_headers=header_dict(headers),
                    policies=self.policies,
                    script_name=script,
                )
            except Exception as exc:
                report_internal_error("cache.invalidate", exc)
            else:
                self.store.invalidate(tags)
            return start_response(status, headers, exc_info)

        return wrapped

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if method not in SAFE_METHODS:
            start_response = self._invalidating(environ, start_response)
        match = self.policies.match(method, path)
        if match is None:
            return self.app(environ, start_response)
        policy = match.policy
        headers = environ_headers(environ)
        now = self.clock()
        extra: Headers = []
        if policy.has_validators:
            checked = self._early(match, environ, start_response, headers, now)
            if checked is None:
                return [b""]
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
            return run_finishing(
                self.app, environ, start_response, status_header=bypass_status(reason), **finishing
            )

        shape = "resp:" + match.pattern
        primary = primary_key(
            method,
            environ.get("SCRIPT_NAME", "") + path,
            environ.get("QUERY_STRING", ""),
            wsgi_host(environ),
            environ.get("wsgi.url_scheme", "http"),
        )
        tag = path_tag(
            wsgi_host(environ), wsgi_text(environ.get("SCRIPT_NAME", "")) + wsgi_text(path)
        )
        entry, fwd = self.store.lookup(primary, headers, shape)
        if entry is None and method == "GET" and self.flight.wait(primary):
            entry, fwd = self.store.lookup(primary, headers, shape)
        if entry is not None:
            name_route(entry.route or pattern_route(match))
            status, out, body = hit_response(method, headers, entry, now=self.clock())
            start_response(status_line(status), self._dated(out, now))
            return [body]
        reason = miss_bypass(headers)
        if reason is not None:
            return run_finishing(
                self.app, environ, start_response, status_header=bypass_status(reason), **finishing
            )

        # The app sees the request without its conditions (RFC 9111 §4.3.2).
        forward = {k: v for k, v in environ.items() if k not in _COND_ENVIRON}

        def on_complete(status: int, out: Headers, body: bytes) -> Headers:
            stored, refusal = plan_store(
                method,
                status,
                out,
                body,
                policy=policy,
                max_body=self.max_body,
                stored_at=self.clock(),
                route=current_route() or forward.get("lagless.route") or pattern_route(match),
            )
            ok = stored is not None and self.store.store(
                primary, headers, stored, policy, shape, tag
            )
            return store_status(fwd, refusal, ok)

        leader = method == "GET" and self.flight.lead(primary)
        try:
            return run_finishing(
                self.app,
                forward,
                start_response,
                on_complete=on_complete,
                status_header=cache_status(hit=False, fwd=fwd, detail="streamed"),
                buffer_streams=True,
                **finishing,
            )
        finally:
            if "lagless.route" in forward:  # read by the tracing middleware outside
                environ["lagless.route"] = forward["lagless.route"]
            if leader:
                self.flight.done(primary)


class SingleFlight:
    """Concurrent misses for one key in a process: the first (the leader) reaches the app, the
    others wait for it (bounded: a hung leader delays them 30 s at most) and read its entry."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._inflight: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def wait(self, key: str) -> bool:
        """Wait for a leader of ``key`` if there is one; True when there was."""
        with self._lock:
            waiting = self._inflight.get(key)
        if waiting is None:
            return False
        waiting.wait(timeout=self.timeout)
        return True

    def lead(self, key: str) -> bool:
        """Become the leader for ``key`` unless another request is; call :meth:`done` after."""
        with self._lock:
            if key in self._inflight:
                return False
            self._inflight[key] = threading.Event()
            return True

    def done(self, key: str) -> None:
        with self._lock:
            event = self._inflight.pop(key)
        event.set()
