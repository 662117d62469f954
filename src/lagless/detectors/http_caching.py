"""HTTP caching missing: GET responses that repeat byte for byte but tell no cache so, and
conditional requests that could be answered 304 but never are.

- ``no validators``: at least ``http_caching_min_identical`` successful GET responses of a
  route with the same body digest (``trace.attrs["body_digest"]``, recorded when the
  ``body_digest`` setting is on, as ``lagless doctor`` does) and none of ``Cache-Control``,
  ``ETag`` or ``Last-Modified`` (RFC 9111 §4.2.2: without them a cache may only guess a
  freshness lifetime heuristically, and a client has nothing to revalidate with). Responses
  that set a cookie are skipped: they are personal.
- ``never 304``: a request carried ``If-None-Match`` naming the response's own ETag (RFC 9110
  §13.1.2, weak comparison) and still got a full 200, and no request of the route ever got
  a 304: the validator is sent but never evaluated.
"""

from __future__ import annotations

from collections.abc import Iterator

from lagless._trace import Trace
from lagless.detectors._base import Context, Finding, register

_VALIDATORS = ("cache-control", "etag", "last-modified")


def _personal(trace: Trace) -> bool:
    return bool(trace.attrs.get("has_set_cookie")) or "set-cookie" in trace.response_headers


def _fix(framework: str, personal: bool) -> str:
    scope = "private" if personal else "public"
    tools = {
        "django": "@cache_control(max_age=60, public=True) and @condition(etag_func=...) "
        "(or ConditionalGetMiddleware, which adds an ETag and answers 304)",
        "flask": "response.cache_control.max_age = 60 and response.add_etag(); "
        "return response.make_conditional(request)",
        "fastapi": "a Cache-Control header on the Response and an ETag compared with "
        "If-None-Match (lagless's conditional/cache middleware does both)",
        "starlette": "a Cache-Control header on the Response and an ETag compared with "
        "If-None-Match (lagless's conditional/cache middleware does both)",
        "litestar": "cache_control=CacheControlHeader(max_age=60) on the route and an ETag "
        "(ETag header + If-None-Match check), or Litestar's response caching (cache=60)",
    }
    tool = tools.get(
        framework, "Cache-Control: max-age=N plus an ETag checked against If-None-Match"
    )
    return (
        f"Declare how long the response stays fresh and give it a validator: {tool}. Use "
        f"Cache-Control: {scope} so shared caches behave."
    )


def _weak_equal(etag: str, candidates: str) -> bool:
    """RFC 9110 §13.1.2: If-None-Match uses the weak comparison (``W/`` is ignored)."""
    own = etag.strip().removeprefix("W/")
    tags = [c.strip().removeprefix("W/") for c in candidates.split(",")]
    return "*" in tags or own in tags


def _http_caching(traces: list[Trace], ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    gets = [t for t in traces if t.method.upper() in ("GET", "HEAD")]
    if not gets:
        return
    first = gets[0]
    framework = str(first.attrs.get("framework") or "")
    route, method = first.route_or_path, first.method.upper()

    bare: dict[str, list[Trace]] = {}
    for t in gets:
        digest = t.attrs.get("body_digest")
        if t.status != 200 or digest is None or _personal(t):
            continue
        if any(h in t.response_headers for h in _VALIDATORS):
            continue
        bare.setdefault(str(digest), []).append(t)
    same = max(bare.values(), key=len, default=[])
    if len(same) >= s.http_caching_min_identical:
        mean = sum(t.duration_ms for t in same) / len(same)
        if ctx.doctor or mean >= s.http_caching_min_ms:
            yield Finding(
                code="no-http-caching",
                title=f"No HTTP caching: {len(same)} identical responses without "
                "Cache-Control, ETag or Last-Modified",
                severity="medium",
                route=route,
                method=method,
                evidence=(
                    {
                        "call": f"{method} {route}",
                        "count": len(same),
                        "total_ms": round(sum(t.duration_ms for t in same), 3),
                        "response_bytes": same[0].response_bytes,
                        "identical_bodies": True,
                    },
                ),
                cost_ms=mean,
                fix=_fix(framework, any("authorization" in t.request_headers for t in same)),
                requests=len(same),
                details={"key": "no-validators"},
            )

    if any(t.status == 304 for t in gets):
        return
    missed = [
        t
        for t in gets
        if t.status == 200
        and "etag" in t.response_headers
        and "if-none-match" in t.request_headers
        and _weak_equal(t.response_headers["etag"], t.request_headers["if-none-match"])
    ]
    if missed:
        bytes_sent = sum(t.response_bytes for t in missed)
        transfer_ms = bytes_sent * 8 / (s.client_mbps * 1000) / len(missed)
        yield Finding(
            code="no-http-caching",
            title=f"ETag never answered with 304: {len(missed)} conditional requests got a "
            "full 200",
            severity="medium",
            route=route,
            method=method,
            evidence=(
                {
                    "call": f"{method} {route}",
                    "count": len(missed),
                    "total_ms": round(sum(t.duration_ms for t in missed), 3),
                    "response_bytes": bytes_sent,
                    "etag": missed[0].response_headers["etag"],
                },
            ),
            cost_ms=transfer_ms,
            fix="Compare If-None-Match with the current ETag before building the body and "
            "answer 304 Not Modified with no body when it matches (RFC 9110 §13.2.2): "
            + {
                "django": "django.views.decorators.http.condition(etag_func=...) or "
                "ConditionalGetMiddleware.",
                "flask": "response.make_conditional(request).",
            }.get(framework, "lagless's conditional-request middleware does it for any ASGI app."),
            requests=len(missed),
            details={"key": "never-304"},
        )


register(
    "no-http-caching",
    "Identical GET responses without Cache-Control/ETag/Last-Modified, or ETags never 304",
    per_route=_http_caching,
)
