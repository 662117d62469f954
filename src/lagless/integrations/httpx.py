"""Capture of outgoing HTTP calls made with httpx (``Client`` and ``AsyncClient``).

httpx's event hooks are configured per client, so they cannot see clients the application
creates on its own; every request of every client goes through ``Client.send`` /
``AsyncClient.send``, which this integration wraps. Redirects are followed inside ``send``, so
one call is one ``http`` span, whatever the number of hops.

The span is named ``"GET https://api.example.com/users/{}"``: the query string is dropped and
the path folded, because both carry ids and tokens (the raw path is kept under
``record_params``). Attributes: ``method``, ``host``, ``status``, ``bytes`` (the body read, or
the ``Content-Length`` of a streamed response), ``url_hash`` (a process-local hash of the full
URL, so detectors can tell one URL fetched twice from two URLs), ``driver="httpx"``, ``on_loop``
when the sync client blocked a running event loop, and ``error`` for transport errors, which
are re-raised unchanged. A streamed response's span ends when its headers arrive.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import Any

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
    on_loop: bool,
) -> None:
    end = _now()
    try:
        url = request.url
        host = netloc(url.host, url.port)
        method = str(request.method)
        status: int | None = None
        size: int | None = None
        if response is not None:
            status = response.status_code
            if not stream and response.is_stream_consumed:
                size = len(response.content)
            else:
                size = content_length(response.headers)
        record_http(
            trace,
            driver="httpx",
            method=method,
            scheme=url.scheme,
            host=host,
            path=url.path,
            url=str(url),
            start=start,
            end=end,
            status=status,
            size=size,
            error=error,
            on_loop=on_loop,
        )
    except Exception as exc:
        report_internal_error("httpx:send", exc)


def _wrap_sync_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _in_http.get():
            return original(self, request, *args, **kwargs)
        token = _in_http.set(True)
        start = _now()
        try:
            response = original(self, request, *args, **kwargs)
        except BaseException as exc:
            _record(trace, request, start, None, False, exc, on_event_loop())
            raise
        finally:
            _in_http.reset(token)
        _record(trace, request, start, response, kwargs.get("stream", False), None, on_event_loop())
        return response

    return send


def _wrap_async_send(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or _in_http.get():
            return await original(self, request, *args, **kwargs)
        token = _in_http.set(True)
        start = _now()
        try:
            response = await original(self, request, *args, **kwargs)
        except BaseException as exc:
            _record(trace, request, start, None, False, exc, False)
            raise
        finally:
            _in_http.reset(token)
        _record(trace, request, start, response, kwargs.get("stream", False), None, False)
        return response

    return send


class HttpxIntegration(Integration):
    """Record every request sent by any httpx client as an ``http`` span."""

    name = "httpx"
    module = "httpx"
    distribution = "httpx"

    def __init__(self) -> None:
        super().__init__()
        self._patches = Patches()

    def _install(self) -> None:
        import httpx

        try:
            self._patches.wrap(httpx.Client, "send", _wrap_sync_send)
            self._patches.wrap(httpx.AsyncClient, "send", _wrap_async_send)
        except BaseException:
            self._patches.restore()
            raise

    def _uninstall(self) -> None:
        self._patches.restore()
