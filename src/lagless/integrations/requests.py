"""Capture of outgoing HTTP calls made with requests.

Every request, whether through ``requests.get`` or a long-lived ``Session``, goes through
``Session.send``, which this integration wraps (requests has response hooks, but only per
request or per session). requests follows redirects by calling ``send`` again from inside the
first call; those inner hops are not recorded again, so one call is one ``http`` span covering
every hop, with the final status. Likewise nothing is recorded twice when requests runs on top
of another instrumented client.

Span name and attributes as for httpx (see :mod:`lagless.integrations.httpx`), with
``driver="requests"``. Calls are synchronous, so ``on_loop`` marks one made on a running event
loop's thread, where it stalled every other request.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import Any
from urllib.parse import urlsplit

from lagless._guard import report_internal_error
from lagless._spans import on_event_loop
from lagless._trace import Trace, _current_trace
from lagless.integrations._base import Integration
from lagless.integrations._clients import Patches, _in_http, content_length, netloc, record_http


def _record(
    trace: Trace,
    request: Any,
    start: int,
    response: Any,
    stream: bool,
    error: BaseException | None,
) -> None:
    end = _now()
    try:
        url = str(request.url)
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            port = None
        where = netloc(host, port)
        method = str(request.method or "GET")
        status: int | None = None
        size: int | None = None
        if response is not None:
            status = response.status_code
            # ``send`` has read the body already when not streaming; ``.content`` is the
            # cached bytes then (on a streamed response it would read the body itself).
            size = content_length(response.headers) if stream else len(response.content or b"")
        record_http(
            trace,
            driver="requests",
            method=method,
            scheme=parts.scheme,
            host=where,
            path=parts.path or "/",
            url=url,
            start=start,
            end=end,
            status=status,
            size=size,
            error=error,
            on_loop=on_event_loop(),
        )
    except Exception as exc:
        report_internal_error("requests:send", exc)


def _wrap_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _in_http.get():
            return original(self, request, **kwargs)
        token = _in_http.set(True)
        start = _now()
        try:
            response = original(self, request, **kwargs)
        except BaseException as exc:
            _record(trace, request, start, None, False, exc)
            raise
        finally:
            _in_http.reset(token)
        _record(trace, request, start, response, bool(kwargs.get("stream", self.stream)), None)
        return response

    return send


class RequestsIntegration(Integration):
    """Record every request sent by requests as an ``http`` span."""

    name = "requests"
    module = "requests"
    distribution = "requests"

    def __init__(self) -> None:
        super().__init__()
        self._patches = Patches()

    def _install(self) -> None:
        import requests.sessions

        self._patches.wrap(requests.sessions.Session, "send", _wrap_send)

    def _uninstall(self) -> None:
        self._patches.restore()
