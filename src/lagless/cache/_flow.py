"""The steps every response-cache adapter takes, as plain functions of plain values (sans-IO).

The ASGI, WSGI and Django adapters differ only in how they read a request and send a response;
what they decide is the same and lives here: how a complete response is finished (policy
headers, ETag, Cache-Status, conditions, Date), how a streamed one is started, whether a
response is stored and as what, and which route template a request answered by the cache is
filed under. Each function is a few dictionary and list operations: the per-request hot path.
"""

from __future__ import annotations

from collections.abc import Mapping

from lagless._trace import current_trace
from lagless.cache._conditional import ensure_date
from lagless.cache._policy import CachePolicy, RouteMatch
from lagless.cache._response import (
    Headers,
    StoredResponse,
    apply_conditions,
    cache_status,
    decorate,
    freshness_lifetime,
    header_dict,
    refusal_reason,
    storable_headers,
)

#: Request headers that make a miss go to the origin untouched and unstored. RFC 9110 §14.2:
#: a Range request may be answered with the full 200 (what a hit does), but on a miss the
#: app's 206 must keep its If-Range evaluation, which the cache's stripped request would lose.
MISS_BYPASS = ("range",)


def merge_extra(headers: Headers, extra: Headers) -> Headers:
    """``headers`` plus the validator headers in ``extra`` the app did not set itself."""
    if not extra:
        return list(headers)
    have = {n.lower() for n, _ in headers}
    return [*headers, *((n, v) for n, v in extra if n not in have)]


def bypass_status(reason: str) -> str:
    """The Cache-Status of a request the cache let through (RFC 9211 ``fwd``)."""
    if reason == "method":
        return cache_status(hit=False, fwd="method")
    return cache_status(hit=False, fwd="bypass", detail=reason)


def miss_bypass(request_headers: Mapping[str, str]) -> str | None:
    """Why a miss must reach the app with its request unchanged and not be stored."""
    for name in MISS_BYPASS:
        if name in request_headers:
            return name
    return None


def finish_headers(
    method: str,
    request_headers: Mapping[str, str],
    status: int,
    headers: Headers,
    body: bytes | None,
    *,
    policy: CachePolicy | None,
    extra: Headers,
) -> Headers:
    """A response's headers with the policy's, the validators' and (``body`` known) the ETag."""
    return decorate(
        method, request_headers, status, merge_extra(headers, extra), body, policy=policy
    )


def stream_headers(
    method: str,
    request_headers: Mapping[str, str],
    status: int,
    headers: Headers,
    *,
    policy: CachePolicy | None,
    extra: Headers,
    status_header: str | None,
    date: float | None,
) -> Headers:
    """The headers a streamed response starts with: only its headers touched, no ETag."""
    out = finish_headers(method, request_headers, status, headers, None, policy=policy, extra=extra)
    if status_header:
        out.append(("cache-status", status_header))
    return out if date is None else ensure_date(out, date)


def conclude(
    method: str,
    request_headers: Mapping[str, str],
    status: int,
    headers: Headers,
    body: bytes,
    date: float | None,
) -> tuple[int, Headers, bytes]:
    """The last step of a complete response: conditions evaluated (304/412), Date if asked."""
    status, headers, body = apply_conditions(method, request_headers, status, headers, body)
    return status, headers if date is None else ensure_date(headers, date), body


def plan_store(
    method: str,
    status: int,
    headers: Headers,
    body: bytes,
    *,
    policy: CachePolicy,
    max_body: int,
    stored_at: float,
    route: str | None,
) -> tuple[StoredResponse | None, str | None]:
    """(entry to store, None) or (None, why not). Bodies over ``max_body`` are never stored,
    even when the app built them in one piece: one huge entry would evict everything else."""
    lower = header_dict(headers)
    refusal = refusal_reason(status, lower, stored_at)
    if refusal is None and method != "GET":
        refusal = "method"
    if refusal is None and len(body) > max_body:
        refusal = "size"
    ttl = policy.server_ttl
    if refusal is not None or ttl is None:
        return None, refusal
    if policy.ttl is None:
        # The response's own lifetime (RFC 9111 §4.2.1: s-maxage, max-age, then Expires) when
        # it states one: what the app says about this response beats the route's default.
        lifetime = freshness_lifetime(lower, stored_at)
        if lifetime is not None:
            ttl = lifetime
    entry = StoredResponse(
        status, storable_headers(headers, len(body)), body, stored_at, ttl, route
    )
    return entry, None


def store_status(fwd: str, refusal: str | None, stored: bool) -> Headers:
    """The Cache-Status header of a miss, after the store was tried (or refused)."""
    if refusal is not None or not stored:
        return [("cache-status", cache_status(hit=False, fwd=fwd, detail=refusal))]
    return [("cache-status", cache_status(hit=False, fwd=fwd, stored=True))]


def pattern_route(match: RouteMatch) -> str | None:
    """The route template a policy pattern spells (``GET /items/{id}`` -> ``/items/{id}``);
    None for the default policy and for ``*`` patterns, which name no single route."""
    path = match.pattern.partition(" ")[2]
    if not path.startswith("/") or path.endswith("*"):
        return None
    return path


def current_route() -> str | None:
    """The route the framework's router gave the current trace so far, if any."""
    trace = current_trace()
    return None if trace is None else trace.route


def name_route(route: str | None) -> None:
    """File the current trace under ``route`` when the router never ran (a cache hit, a 304
    from validators), so reports do not count it as ``<unmatched>``."""
    if route is None:
        return
    trace = current_trace()
    if trace is not None and trace.route is None:
        trace.route = route
