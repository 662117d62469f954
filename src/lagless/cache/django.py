"""Django adapters: middlewares for conditional requests and the response cache, and a
``condition`` view decorator answering 304/412 from cheap validators before the view runs.

Configure once in settings::

    MIDDLEWARE = [
        "lagless.cache.django.ConditionalMiddleware",
        "lagless.cache.django.ResponseCacheMiddleware",
        ...
    ]
    LAGLESS_CACHE = {
        "policies": "myproject.caching.POLICIES",   # a CachePolicies, or its dotted path
        "backend": "myproject.caching.BACKEND",     # a backend instance, or its dotted path
    }

Unlike ``django.middleware.http.ConditionalGetMiddleware`` (which runs the view and hashes its
body), a route with ``etag=`` / ``last_modified=`` validators is answered without running the
view at all.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.module_loading import import_string

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
)
from lagless.cache._invalidate import SAFE_METHODS, invalidation_tags, path_tag
from lagless.cache._memory import MemoryBackend
from lagless.cache._policy import CachePolicies, CachePolicy, RouteMatch
from lagless.cache._response import (
    Headers,
    bypass_reason,
    cache_status,
    header_dict,
    hit_response,
    precheck,
    primary_key,
)
from lagless.cache._store import ResponseStore
from lagless.cache.wsgi import DEFAULT_MAX_BODY, SingleFlight, environ_headers, validate
from lagless.integrations.django._routes import django_route_template

__all__ = ["ConditionalMiddleware", "ResponseCacheMiddleware", "condition"]


def _setting(name: str) -> Any:
    value = getattr(settings, "LAGLESS_CACHE", {}).get(name)
    if isinstance(value, str):
        value = import_string(value)
    return value


def _policies() -> CachePolicies | None:
    policies = _setting("policies")
    if policies is not None and not isinstance(policies, CachePolicies):
        raise TypeError("LAGLESS_CACHE['policies'] must be a CachePolicies (or its dotted path)")
    return policies


def build(status: int, headers: Headers, body: bytes) -> HttpResponse:
    """A Django response from plain parts (no default Content-Type on bodiless answers). Adds
    a Date when ``LAGLESS_CACHE["add_date"]`` is on (servers such as gunicorn add their own)."""
    if _setting("add_date"):
        headers = ensure_date(headers, time.time())
    response = HttpResponse(body, status=status)
    if status == 304 or not any(n.lower() == "content-type" for n, _ in headers):
        del response["Content-Type"]
    for name, value in headers:
        if name.lower() != "set-cookie":
            response[name] = value
    return response


def _logic_headers(response: HttpResponseBase) -> Headers:
    headers = list(response.items())
    if response.cookies:
        # Django keeps cookies apart from items(); the rules must still see that there are some.
        headers.append(("set-cookie", "(django cookies)"))
    return headers


def _finish(
    response: HttpResponseBase,
    method: str,
    request_headers: dict[str, str],
    policy: CachePolicy | None,
    extra: Headers,
    now: float,
    on_complete: Callable[[int, Headers, bytes], Headers] | None = None,
    status_header: str | None = None,
) -> HttpResponseBase:
    status = response.status_code
    body = None if response.streaming else response.content
    headers = finish_headers(
        method, request_headers, status, _logic_headers(response), body, policy=policy, extra=extra
    )
    if on_complete is not None and body is not None:
        headers += on_complete(status, headers, body)
    elif status_header:
        headers.append(("cache-status", status_header))
    if body is None:
        _apply(response, headers)
        return response
    new_status, headers, new_body = conclude(
        method, request_headers, status, headers, body, now if _setting("add_date") else None
    )
    if new_status == status:
        _apply(response, headers)
        return response
    replacement = build(new_status, headers, new_body)
    if new_status == 304:
        replacement.cookies = response.cookies
    return replacement


def _apply(response: HttpResponseBase, headers: Headers) -> None:
    for name, value in headers:
        if name.lower() != "set-cookie" and response.get(name) != value:
            response[name] = value


class ConditionalMiddleware:
    """Conditional requests (RFC 9110 §13) for every Django response; see
    :class:`lagless.cache.asgi.ConditionalMiddleware`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        self.policies = _policies()

    def _early(
        self, match: RouteMatch, request: HttpRequest, headers: dict[str, str], now: float
    ) -> HttpResponse | Headers:
        """Run the route's validators: a 304/412 response, or the validator headers for the
        full response."""
        early, extra = validate(match, request.META, request.method or "GET", headers, now)
        if early is None:
            return extra
        name_route(pattern_route(match))  # the view never runs for this request
        return build(early[0], early[1], b"")

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        method = request.method or "GET"
        match = self.policies.match(method, request.path_info) if self.policies else None
        if match is None and method not in GET_HEAD:
            return self.get_response(request)
        headers = environ_headers(request.META)
        now = time.time()
        extra: Headers = []
        if match is not None and match.policy.has_validators:
            checked = self._early(match, request, headers, now)
            if isinstance(checked, HttpResponse):
                return checked
            extra = checked
        response = self.get_response(request)
        return _finish(response, method, headers, match.policy if match else None, extra, now)


class ResponseCacheMiddleware(ConditionalMiddleware):
    """A shared response cache for Django views, per-route policy, safe by default; see
    :class:`lagless.cache.asgi.ResponseCacheMiddleware` for the rules. Cookies set through
    ``response.set_cookie`` count as ``Set-Cookie``: such responses are never stored."""

    policies: CachePolicies

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        super().__init__(get_response)
        if self.policies is None:
            raise TypeError("ResponseCacheMiddleware needs LAGLESS_CACHE['policies']")
        backend: CacheBackend | None = _setting("backend")
        self.store = ResponseStore(backend if backend is not None else MemoryBackend(), time.time)
        self.max_body: int = _setting("max_body") or DEFAULT_MAX_BODY
        self.flight = SingleFlight()

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self._respond(request)
        if (request.method or "GET") not in SAFE_METHODS:
            self._invalidate(request, response)
        return response

    def _invalidate(self, request: HttpRequest, response: HttpResponseBase) -> None:
        """After a successful answer to an unsafe request, drop what the cache holds for its
        target URI and same-host Location/Content-Location (RFC 9111 §4.4)."""
        try:
            path = request.path
            tags = invalidation_tags(
                request.method or "POST",
                response.status_code,
                scheme=request.scheme or "http",
                host=str(request.META.get("HTTP_HOST", "")),  # as in the key (``_respond``)
                path=path,
                response_headers=header_dict(response.items()),
                policies=self.policies,
                script_name=path[: len(path) - len(request.path_info)],
                authority=request._get_raw_host(),
            )
        except Exception as exc:
            report_internal_error("cache.invalidate", exc)
            return
        self.store.invalidate(tags)

    def _respond(self, request: HttpRequest) -> HttpResponseBase:
        method = request.method or "GET"
        match = self.policies.match(method, request.path_info)
        if match is None:
            return self.get_response(request)
        policy = match.policy
        headers = environ_headers(request.META)
        now = time.time()
        extra: Headers = []
        if policy.has_validators:
            checked = self._early(match, request, headers, now)
            if isinstance(checked, HttpResponse):
                return checked
            extra = checked
        reason = bypass_reason(method, headers, policy)
        if reason is not None:
            response = self.get_response(request)
            return _finish(
                response, method, headers, policy, extra, now, None, bypass_status(reason)
            )

        shape = "resp:" + match.pattern
        primary = primary_key(
            method,
            request.path,
            request.META.get("QUERY_STRING", ""),
            headers.get("host", ""),
            request.scheme or "http",
        )
        entry, fwd = self.store.lookup(primary, headers, shape)
        if entry is None and method == "GET" and self.flight.wait(primary):
            entry, fwd = self.store.lookup(primary, headers, shape)
        if entry is not None:
            name_route(entry.route or pattern_route(match))
            return build(*hit_response(method, headers, entry, now=time.time()))
        reason = miss_bypass(headers)
        if reason is not None:
            response = self.get_response(request)
            return _finish(
                response, method, headers, policy, extra, now, None, bypass_status(reason)
            )

        def on_complete(status: int, out: Headers, body: bytes) -> Headers:
            resolved = getattr(request, "resolver_match", None)
            stored, refusal = plan_store(
                method,
                status,
                out,
                body,
                policy=policy,
                max_body=self.max_body,
                stored_at=time.time(),
                route=current_route()
                or (django_route_template(resolved.route) if resolved is not None else None)
                or pattern_route(match),
            )
            ok = stored is not None and self.store.store(
                primary,
                headers,
                stored,
                policy,
                shape,
                path_tag(headers.get("host", ""), request.path),
            )
            return store_status(fwd, refusal, ok)

        # The view sees the request without its conditions; the cache evaluates them against
        # the full response it stores (RFC 9111 §4.3.2).
        saved = {k: request.META.pop(k) for k in list(request.META) if k in _COND_META}
        leader = method == "GET" and self.flight.lead(primary)
        try:
            response = self.get_response(request)
        finally:
            request.META.update(saved)
            if leader:
                self.flight.done(primary)
        streamed = cache_status(hit=False, fwd=fwd, detail="streamed")
        return _finish(response, method, headers, policy, extra, now, on_complete, streamed)


_COND_META = {
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_MATCH",
    "HTTP_IF_UNMODIFIED_SINCE",
    "HTTP_IF_RANGE",
}


def condition(
    *,
    etag: Callable[..., Any] | None = None,
    last_modified: Callable[..., Any] | None = None,
    policy: CachePolicy | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Answer conditional requests from cheap validators before the view runs.

    ``etag(request, *args, **kwargs)`` returns the current ETag (e.g. a row's version, quoted
    or not) and ``last_modified(...)`` a datetime/Unix time, or None when unknown; the same
    call shape as Django's ``@condition``. A match costs the validator, not the view::

        @condition(etag=lambda request, pk: Article.objects.values_list("version").get(pk=pk)[0])
        def article(request, pk): ...

    Unsafe methods (PUT, PATCH, DELETE) with a stale If-Match get 412.
    """

    def decorate_view(view: Callable[..., Any]) -> Callable[..., Any]:
        def check(
            request: HttpRequest, args: Any, kwargs: Any
        ) -> tuple[HttpResponse | None, Headers, dict[str, str], float]:
            headers = environ_headers(request.META)
            now = time.time()
            tag = etag(request, *args, **kwargs) if etag is not None else None
            modified = last_modified(request, *args, **kwargs) if last_modified else None
            method = request.method or "GET"
            early, extra = precheck(method, headers, policy or CachePolicy(), tag, modified)
            if early is not None:
                return build(early[0], early[1], b""), extra, headers, now
            return None, extra, headers, now

        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                early, extra, headers, now = check(request, args, kwargs)
                if early is not None:
                    return early
                response = await view(request, *args, **kwargs)
                return _finish(response, request.method or "GET", headers, policy, extra, now)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            early, extra, headers, now = check(request, args, kwargs)
            if early is not None:
                return early
            response = view(request, *args, **kwargs)
            return _finish(response, request.method or "GET", headers, policy, extra, now)

        return wrapper

    return decorate_view
