"""Django views for the monitor: ``/metrics``, the dashboard and the browser beacon.

Add them to the root URLconf::

    from lagless.monitor.django import monitor_urls
    urlpatterns = [..., *monitor_urls()]

with ``lagless.django.LaglessMiddleware`` first in ``MIDDLEWARE`` and ``LAGLESS_METRICS=1``
(or ``[tool.lagless] metrics = true``). The views call the same sans-IO endpoints as the ASGI
and WSGI adapters, so the access rules are the same. On-demand profiling wraps the WSGI handler
instead: ``application = MonitorWSGIMiddleware(get_wsgi_application())`` in ``wsgi.py``.
"""

from __future__ import annotations

import re
from typing import Any

from lagless.monitor._browser import MAX_BODY
from lagless.monitor._http import Request, Response, text
from lagless.monitor._monitor import INTERNAL, Monitor, get_monitor, start


def _monitor() -> Monitor:
    return get_monitor() or start()


def _to_request(request: Any, body: bytes) -> Request:
    meta = request.META
    return Request(
        method=request.method or "GET",
        path=request.path,
        query=meta.get("QUERY_STRING", ""),
        headers={k.lower(): v for k, v in request.headers.items()},
        client=meta.get("REMOTE_ADDR"),
        body=body,
        scheme=request.scheme or "http",
    )


def _to_django(response: Response, head: bool = False) -> Any:
    from django.http import HttpResponse

    out = HttpResponse(
        b"" if head else response.body, status=response.status, content_type=response.content_type
    )
    for name, value in response.headers:
        if name == "set-cookie":
            out.cookies.load(value)  # Django writes cookies from here, not from headers
        else:
            out[name] = value
    return out


def _mark_internal(request: Any) -> None:
    from lagless._trace import _current_trace

    trace = _current_trace.get()
    if trace is not None:
        trace.attrs[INTERNAL] = True


def metrics_view(request: Any) -> Any:
    """``/metrics`` for Prometheus (content negotiated from ``Accept``)."""
    _mark_internal(request)
    response = _monitor().metrics(request.headers.get("Accept", ""))
    return _to_django(response, request.method == "HEAD")


def monitor_view(request: Any) -> Any:
    """The dashboard, its data, the browser snippet and the beacon collector."""
    _mark_internal(request)
    mon = _monitor()
    body = b""
    if request.method == "POST":
        length = request.META.get("CONTENT_LENGTH") or "0"
        valid = length.isascii() and length.isdigit() and len(length) <= 20
        if not valid or int(length) > MAX_BODY:
            return _to_django(text(413, f"lagless: body larger than {MAX_BODY} bytes"))
        body = request.body
    if not mon.owns(request.path):
        return _to_django(text(404, "lagless: not found"))
    return _to_django(mon.handle(_to_request(request, body)), request.method == "HEAD")


# The beacon is an anonymous, stateless POST from sendBeacon (no CSRF token to send) and the
# dashboard is read-only: neither changes anything a CSRF attack could use. (This attribute is
# what django.views.decorators.csrf.csrf_exempt sets.)
monitor_view.csrf_exempt = True  # type: ignore[attr-defined]


def monitor_urls() -> list[Any]:
    """URL patterns for every monitor endpoint the settings turn on."""
    from django.urls import path, re_path

    mon = _monitor()
    view = monitor_view
    patterns: list[Any] = []
    if mon.metrics_path:
        patterns.append(path(mon.metrics_path.lstrip("/"), metrics_view, name="lagless-metrics"))
    if mon.beacon_path:
        beacon = re.escape(mon.beacon_path.lstrip("/"))
        patterns.append(re_path(rf"^{beacon}(?:\.js)?$", view, name="lagless-beacon"))
    if mon.dashboard_on:
        base = re.escape(mon.dashboard_base.strip("/"))
        patterns.append(re_path(rf"^{base}(?:/.*)?$", view, name="lagless-dashboard"))
    return patterns
