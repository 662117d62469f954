"""``LaglessMiddleware`` for Django: one trace per request, sync or async.

Listed first in ``MIDDLEWARE`` (as ``"lagless.django.LaglessMiddleware"``), it is the outermost
layer, so its trace covers every other middleware and the view.

Middleware audit. Django builds the middleware chain before it builds this middleware (the list
is instantiated from the inside out), so at ``__init__`` the whole chain is there to read: each
middleware's ``get_response`` leads, through Django's ``convert_exception_to_response`` wrapper
(``__wrapped__``) and asgiref's sync/async adapters, to the next middleware instance and finally
to the handler's ``_get_response``. A timing probe replaces each middleware's ``get_response``
attribute (instance attribute only; classes are untouched). Per request each probe writes the
start and end of "everything inside this layer" into a small list on the request; the layer's own
time is its total minus its inside. That costs two clock reads per layer, so it stays on; the
``middleware_timing`` setting only decides whether the layers become spans. A layer whose next
step cannot be found is timed inclusively (``inclusive`` attribute), and the walk stops there;
function-based middleware is followed through its ``get_response`` closure variable.

The ``handler`` span is the call into Django's ``_get_response`` (URL resolution, the
``process_view`` hooks and the view), named after the view's dotted path.
"""

from __future__ import annotations

import inspect
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from time import perf_counter_ns as _now
from time import time as _wall
from typing import Any

from asgiref.sync import AsyncToSync, SyncToAsync, iscoroutinefunction, markcoroutinefunction

from lagless._guard import report_internal_error
from lagless._runtime import Runtime, get_runtime
from lagless._server_timing import server_timing
from lagless._spans import error_text
from lagless._trace import Span, Trace, _current_trace
from lagless.integrations._base import install_integrations
from lagless.integrations.django._routes import django_route_template
from lagless.integrations.wsgi import environ_headers

__all__ = ["LaglessMiddleware"]

_get = _current_trace.get
_set = _current_trace.set
_reset = _current_trace.reset

#: Where the per-request probe timings live on the ``HttpRequest``.
_SLOTS = "_lagless_mw"
_signal_lock = threading.Lock()
_signal_connected = False


def _layer_name(obj: Any) -> str:
    """The dotted path a user would write in ``MIDDLEWARE`` for this layer."""
    if inspect.isfunction(obj) or inspect.ismethod(obj):
        qual = obj.__qualname__.split(".<locals>", 1)[0]
        return f"{obj.__module__}.{qual}"
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _next_layer(get_response: Any) -> Any:
    """Follow Django's and asgiref's wrappers to the next middleware (or handler method)."""
    seen: set[int] = set()
    obj = get_response
    while id(obj) not in seen:
        seen.add(id(obj))
        if isinstance(obj, SyncToAsync):
            obj = obj.func
        elif isinstance(obj, AsyncToSync):
            obj = obj.awaitable
        elif inspect.isfunction(obj) and getattr(obj, "__wrapped__", None) is not None:
            obj = obj.__wrapped__  # type: ignore[attr-defined]  # convert_exception_to_response
        else:
            return obj
    return obj


def _is_handler(obj: Any) -> bool:
    """Django's ``BaseHandler._get_response`` / ``_get_response_async`` bound method."""
    return inspect.ismethod(obj) and obj.__name__ in ("_get_response", "_get_response_async")


def _probe(inner: Callable[[Any], Any], index: int) -> Callable[[Any], Any]:
    """A stand-in for a middleware's ``get_response`` timing the call at slot ``index``."""
    lo = 2 * index
    hi = lo + 1
    if iscoroutinefunction(inner):

        async def async_probe(request: Any) -> Any:
            slots = request.__dict__.get(_SLOTS)
            if slots is None:
                return await inner(request)
            slots[lo] = _now()
            try:
                return await inner(request)
            finally:
                slots[hi] = _now()

        async_probe.__lagless_probe__ = inner  # type: ignore[attr-defined]
        return async_probe

    def probe(request: Any) -> Any:
        slots = request.__dict__.get(_SLOTS)
        if slots is None:
            return inner(request)
        slots[lo] = _now()
        try:
            return inner(request)
        finally:
            slots[hi] = _now()

    probe.__lagless_probe__ = inner  # type: ignore[attr-defined]
    return probe


def _install_probe(layer: Any, index: int) -> Any:
    """Put a probe in front of ``layer``'s next step; return that next step, or ``None`` when
    it cannot be found.

    Class-based middleware keeps it in ``self.get_response``; function-based middleware (the
    factory style in Django's documentation) in a closure variable named ``get_response``, whose
    cell is replaced for this one closure (cells are writable since Python 3.7).
    """
    if inspect.isfunction(layer):
        code = layer.__code__
        if "get_response" not in code.co_freevars or layer.__closure__ is None:
            return None
        cell = layer.__closure__[code.co_freevars.index("get_response")]
        inner = cell.cell_contents
        original = getattr(inner, "__lagless_probe__", inner)
        if not callable(original):
            return None
        if original is inner:
            cell.cell_contents = _probe(inner, index)
        return original
    inner = vars(layer).get("get_response") if hasattr(layer, "__dict__") else None
    if inner is None or not callable(inner):
        return None
    original = getattr(inner, "__lagless_probe__", inner)
    if original is inner:
        layer.get_response = _probe(inner, index)
    return original


class _Chain:
    """The middleware layers inside ours, found once per handler at start-up.

    Slot ``j`` holds the call into layer ``j + 1`` (slot 0 is timed by ``LaglessMiddleware``
    itself); when ``complete``, slot ``len(names)`` is the call into the handler.
    """

    def __init__(self, get_response: Any) -> None:
        self.names: list[str] = []
        self.complete = False
        obj = _next_layer(get_response)
        while True:
            if _is_handler(obj):
                self.complete = True
                break
            self.names.append(_layer_name(obj))
            inner = _install_probe(obj, len(self.names))
            if inner is None:
                break  # opaque: timed inclusively
            obj = _next_layer(inner)
        self.n_slots = 2 * (len(self.names) + 1)

    def record(
        self, trace: Trace, slots: Sequence[int], handler: str | None, *, layers: bool = True
    ) -> None:
        """Turn one request's probe timings into ``middleware`` spans (each layer's own time:
        its total minus the layer inside it) and the ``handler`` span. With no layer inside
        ours, ``slots`` is just our own ``(start, end)``."""
        names = self.names
        last = len(names)
        if not last:
            # No middleware inside ours (or only ours): the handler span alone, appended
            # directly (``add_span`` and the loop set-up are ~0.3 µs; finish_trace still
            # applies the ``max_spans`` cap).
            if self.complete and handler is not None and slots[0]:
                trace.spans.append(Span("handler", handler, slots[0], slots[1] - slots[0]))
            return
        for j in range(1, last + 1 if layers else 1):
            start, end = slots[2 * j - 2], slots[2 * j - 1]
            if not start:
                break  # an outer layer answered without calling this one
            inner = 0
            inclusive = j == last and not self.complete
            if not inclusive and slots[2 * j]:
                inner = slots[2 * j + 1] - slots[2 * j]
            own = max(end - start - inner, 0)
            trace.add_span(
                "middleware",
                names[j - 1],
                start,
                start + own,
                {"inclusive": True} if inclusive else None,
            )
        if self.complete and handler is not None:
            start = slots[2 * last]
            if start:
                trace.add_span("handler", handler, start, slots[2 * last + 1])


def _on_request_exception(sender: Any, request: Any = None, **kwargs: Any) -> None:
    """``got_request_exception``: note the error on the trace (Django turns it into a 500
    response before it reaches us, so the exception itself never does)."""
    trace = _current_trace.get()
    if trace is None:
        return
    try:
        exc = sys.exc_info()[1]
        if exc is not None:
            trace.attrs["error"] = error_text(exc)
    except Exception as err:
        report_internal_error("django:exception-signal", err)


def _connect_signals() -> None:
    global _signal_connected
    with _signal_lock:
        if _signal_connected:
            return
        from django.core.signals import got_request_exception

        got_request_exception.connect(
            _on_request_exception, weak=False, dispatch_uid="lagless-request-exception"
        )
        _signal_connected = True


class _Stream:
    """A streaming response's body, traced: the trace is current around each chunk, bytes are
    counted, and the trace finishes at the end of the body or when Django closes the response
    (its ``close()`` calls every registered closer, ours included)."""

    __slots__ = ("_finish", "_inner", "_trace")

    def __init__(self, inner: Any, trace: Trace, finish: Callable[[], None]) -> None:
        self._inner = inner
        self._trace = trace
        self._finish = finish

    def close(self) -> None:
        self._finish()


class _SyncStream(_Stream):
    __slots__ = ()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        token = _set(self._trace)
        try:
            chunk: bytes = next(self._inner)
        except StopIteration:
            _reset(token)
            self._finish()
            raise
        except BaseException as exc:
            _reset(token)
            self._trace.attrs["error"] = error_text(exc)
            self._finish()
            raise
        _reset(token)
        self._trace.response_bytes += len(chunk)
        return chunk


class _AsyncStream(_Stream):
    __slots__ = ()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        token = _set(self._trace)
        try:
            chunk: bytes = await self._inner.__anext__()
        except StopAsyncIteration:
            _reset(token)
            self._finish()
            raise
        except BaseException as exc:
            _reset(token)
            self._trace.attrs["error"] = error_text(exc)
            self._finish()
            raise
        _reset(token)
        self._trace.response_bytes += len(chunk)
        return chunk


class LaglessMiddleware:
    """Trace every Django request. Put it first in ``MIDDLEWARE``::

        MIDDLEWARE = ["lagless.django.LaglessMiddleware", ...]

    Works in both of Django's modes: under WSGI it runs synchronously, under ASGI it runs as a
    coroutine, so it never adds a thread hop. Creating it installs the driver integrations
    (the ORM, sqlite3, psycopg, redis...) the ``integrations`` setting asks for.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.runtime: Runtime = get_runtime()
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        cfg = self.runtime.config
        install_integrations(cfg.integrations, exclude=cfg.disabled_integrations)
        self.chain: _Chain | None = None
        try:
            _connect_signals()
            self.chain = _Chain(get_response)
        except Exception as exc:
            report_internal_error("django:middleware-chain", exc)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        rt = self.runtime
        if not rt.enabled:
            return self.get_response(request)
        outer = _get()
        if outer is not None:
            return self._join(request, outer)
        try:
            # ``_begin`` and ``_slots`` inlined in this, the WSGI path (two calls fewer a
            # request, ~0.25 µs); ``__acall__`` keeps the methods.
            meta = request.META
            trace = Trace(
                request.method or "GET",
                request.path_info or "/",
                _wall(),
                (environ_headers, meta),
                meta.get("QUERY_STRING", ""),
            )
            trace.attrs["framework"] = "django"
            chain = self.chain
            slots = None
            if chain is not None and chain.names:
                # Probe slots only when there are layers to time: with none inside ours the
                # handler span is our own start and end (no list, no request attribute).
                slots = request.__dict__[_SLOTS] = [0] * chain.n_slots
        except Exception as exc:  # lagless cannot trace this request; serve it untraced
            report_internal_error("django:begin", exc)
            return self.get_response(request)
        token = _set(trace)
        start = _now()
        try:
            response = self.get_response(request)
        except BaseException as exc:
            _reset(token)
            self._fail(trace, exc)
            raise
        end = _now()
        _reset(token)
        return self._end(request, response, trace, slots, start, end)

    async def __acall__(self, request: Any) -> Any:
        rt = self.runtime
        if not rt.enabled:
            return await self.get_response(request)
        outer = _get()
        if outer is not None:
            return await self._ajoin(request, outer)
        try:
            trace = self._begin(request)
            slots = self._slots(request)
        except Exception as exc:  # lagless cannot trace this request; serve it untraced
            report_internal_error("django:begin", exc)
            return await self.get_response(request)
        token = _set(trace)
        start = _now()
        try:
            response = await self.get_response(request)
        except BaseException as exc:
            _reset(token)
            self._fail(trace, exc)
            raise
        end = _now()
        _reset(token)
        return self._end(request, response, trace, slots, start, end)

    # -- inside an outer trace ------------------------------------------------------------------

    def _join(self, request: Any, outer: Trace) -> Any:
        """The request is already traced by an outer lagless middleware (the Django app was
        also wrapped by ``lagless.instrument`` or ``LaglessWSGIMiddleware``/``LaglessMiddleware``):
        add the route, layers and handler to that trace, and leave the status, Server-Timing
        and finishing to its owner, so a request is one trace with one header."""
        slots = self._join_slots(request)
        start = _now()
        response = self.get_response(request)
        self._joined(request, outer, slots, start, _now())
        return response

    async def _ajoin(self, request: Any, outer: Trace) -> Any:
        slots = self._join_slots(request)
        start = _now()
        response = await self.get_response(request)
        self._joined(request, outer, slots, start, _now())
        return response

    def _join_slots(self, request: Any) -> list[int] | None:
        try:
            return self._slots(request)
        except Exception as exc:
            report_internal_error("django:begin", exc)
            return None

    def _joined(
        self, request: Any, trace: Trace, slots: list[int] | None, start: int, end: int
    ) -> None:
        try:
            trace.attrs["framework"] = "django"
            self._route_and_layers(request, trace, slots, start, end)
        except Exception as exc:
            report_internal_error("django:response", exc)

    # -- per request ---------------------------------------------------------------------------

    def _begin(self, request: Any) -> Trace:
        meta = request.META
        trace = Trace(
            request.method or "GET",
            request.path_info or "/",
            _wall(),
            (environ_headers, meta),
            meta.get("QUERY_STRING", ""),
        )
        trace.attrs["framework"] = "django"
        return trace

    def _slots(self, request: Any) -> list[int] | None:
        chain = self.chain
        if chain is None or not chain.names:
            return None  # nothing to probe: the handler span is our own start and end
        slots = [0] * chain.n_slots
        request.__dict__[_SLOTS] = slots
        return slots

    def _fail(self, trace: Trace, exc: BaseException) -> None:
        try:
            trace.attrs["error"] = error_text(exc)
            if not trace.status:
                trace.status = 500
            trace.finish()
            self.runtime.finish_trace(trace)
        except Exception as err:
            report_internal_error("django:fail", err)

    def _end(
        self,
        request: Any,
        response: Any,
        trace: Trace,
        slots: list[int] | None,
        start: int,
        end: int,
    ) -> Any:
        """Record the layers, route and status, set Server-Timing, and finish the trace (or
        hand that to the streamed body). The response goes back unchanged whatever happens."""
        streamed = False
        try:
            self._route_and_layers(request, trace, slots, start, end)
            trace.status = response.status_code
            headers = response.headers
            if self.runtime.server_timing:
                value = server_timing(trace, _now())
                # Django's ``ResponseHeaders`` keeps ``lower-case name -> (name, value)`` in
                # ``_store``. Read there, a missing header is a dict miss, where
                # ``response.get`` raises and catches a KeyError (~0.35 µs); and our value,
                # ASCII we formatted, needs none of ``__setitem__``'s charset and newline
                # checks (~0.4 µs). A user's own Server-Timing, or a Django without
                # ``_store``, goes through the public API.
                store = getattr(headers, "_store", None)
                if type(store) is dict and "server-timing" not in store:
                    store["server-timing"] = ("Server-Timing", value)
                else:
                    existing = response.get("Server-Timing")
                    response["Server-Timing"] = f"{existing}, {value}" if existing else value
            # ``Trace.set_response_headers`` inlined (a method call a request).
            trace._raw_response_headers = headers
            trace._response_headers = None
            if response.streaming:
                if getattr(response, "file_to_stream", None) is None:
                    # Finished by the body (its end or close). FileResponse is left alone:
                    # its file may go to the server's sendfile, not through Python.
                    self._stream(response, trace)
                    streamed = True
                else:
                    length = response.get("Content-Length")
                    if length and length.isdigit():
                        trace.response_bytes = int(length)
            else:
                trace.response_bytes = len(response.content)
        except Exception as exc:
            report_internal_error("django:response", exc)
        if not streamed:
            # ``_finish`` and ``Trace.finish`` inlined: every non-streamed response ends here.
            try:
                trace.duration_ns = _now() - trace.start_ns
                self.runtime.finish_trace(trace)
            except Exception as exc:
                report_internal_error("django:finish", exc)
        return response

    def _route_and_layers(
        self, request: Any, trace: Trace, slots: list[int] | None, start: int, end: int
    ) -> None:
        match = getattr(request, "resolver_match", None)
        handler = None
        if match is not None:
            trace.route = django_route_template(match.route)
            handler = getattr(match, "_func_path", None) or match.view_name
        chain = self.chain
        if chain is None:
            return
        timings: Sequence[int]
        if slots is None:
            timings = (start, end)  # no layer inside ours was probed: our timings are all
        else:
            slots[0], slots[1] = start, end
            timings = slots
        chain.record(trace, timings, handler, layers=self.runtime.middleware_timing)

    def _stream(self, response: Any, trace: Trace) -> None:
        done = False

        def finish() -> None:
            nonlocal done
            if not done:
                done = True
                self._finish(trace)

        body = response.streaming_content
        if response.is_async:
            response.streaming_content = _AsyncStream(body, trace, finish)
        else:
            response.streaming_content = _SyncStream(iter(body), trace, finish)

    def _finish(self, trace: Trace) -> None:
        try:
            trace.finish()
            self.runtime.finish_trace(trace)
        except Exception as exc:
            report_internal_error("django:finish", exc)
