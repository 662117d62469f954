"""The request trace and its spans: the one data model every part of lagless reads.

A :class:`Trace` is what one request spent its time on; a :class:`Span` is one timed piece of
it (a query, a cache call, an outgoing HTTP call, a middleware layer...). Both are plain
``__slots__`` classes rather than dataclasses because they are created on the per-request hot
path, where attribute-dict allocation would cost more than the measurement itself.

The current trace lives in a :class:`contextvars.ContextVar`. asyncio copies the context into
every task (so ``asyncio.gather`` in a handler records into the request's trace), anyio's and
Starlette's thread pools copy it into worker threads, and a WSGI server's thread carries its own
context, so two simultaneous requests never see each other's trace.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from time import perf_counter_ns as _now
from typing import Any, Final, Literal

#: What a span timed: the layer it is reported under (Server-Timing, detectors, exports).
SpanKind = Literal["db", "pool", "cache", "http", "serialize", "middleware", "handler", "custom"]

#: Every span kind, in the order they are reported.
SPAN_KINDS: Final[tuple[str, ...]] = (
    "db",
    "pool",
    "cache",
    "http",
    "serialize",
    "middleware",
    "handler",
    "custom",
)

#: Kinds that are I/O waits (time the request spent outside its own Python code).
IO_KINDS: Final[frozenset[str]] = frozenset({"db", "pool", "cache", "http"})

_current_trace: ContextVar[Trace | None] = ContextVar("lagless_trace", default=None)

# Trace ids: a process-unique prefix plus a counter. ``itertools.count`` is atomic under the GIL
# and costs ~40 ns, where uuid4 costs ~2 µs on the hot path.
_PREFIX: Final[str] = os.urandom(6).hex()
_counter = itertools.count(1)


class Span:
    """One timed piece of a request.

    ``start_ns`` is an absolute ``perf_counter_ns`` reading (use :meth:`Trace.offset_ms` for the
    offset from the request's start); ``duration_ns`` its length. ``name`` is the statement for
    ``db`` spans, the command for ``cache``, ``METHOD url`` for ``http``, the class or function
    name otherwise. ``attrs`` holds small extra facts, by convention:

    - ``rows``: rows returned or affected; ``bytes``: payload size;
    - ``params_hash``: a process-local fingerprint of the bound parameters, so detectors can tell
      "same query, different parameters" without lagless storing the values;
    - ``params``: the parameters themselves, only when ``record_params`` is on;
    - ``driver``, ``db.system``, ``new_connection``, ``pool_wait_ms``;
    - ``on_loop``: a synchronous call made on a running event loop's thread (it blocked it);
    - ``error``: ``"ExceptionType: message"`` when the call raised;
    - ``hit``: for cache spans, whether it was a hit.
    """

    __slots__ = ("attrs", "duration_ns", "kind", "name", "start_ns")

    def __init__(
        self,
        kind: str,
        name: str,
        start_ns: int,
        duration_ns: int,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.start_ns = start_ns
        self.duration_ns = duration_ns
        self.attrs = attrs

    @property
    def end_ns(self) -> int:
        return self.start_ns + self.duration_ns

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1_000_000

    def get(self, key: str, default: Any = None) -> Any:
        """An attribute, or ``default``: spans without attributes carry ``None``, not ``{}``."""
        attrs = self.attrs
        if attrs is None:
            return default
        return attrs.get(key, default)

    def __repr__(self) -> str:
        return (
            f"Span(kind={self.kind!r}, name={self.name[:60]!r}, "
            f"duration_ms={self.duration_ns / 1e6:.3f}, attrs={self.attrs!r})"
        )


def _decode_headers(raw: Any) -> dict[str, str]:
    """Headers as a lower-cased dict, from ASGI byte pairs, WSGI str pairs or a mapping.

    Repeated headers are joined with ``", "`` (RFC 9110 §5.3), except ``set-cookie``, whose
    values may contain commas; for that one only presence matters to lagless.

    ``raw`` may also be a lazy source, a ``(function, argument)`` tuple whose
    ``function(argument)`` gives the pairs: the WSGI and Django middlewares hand over
    ``(environ_headers, environ)``, a tuple (~50 ns a request) where a wrapper object cost
    ~0.2 µs, for headers most traces never read.
    """
    out: dict[str, str] = {}
    if raw is None:
        return out
    if type(raw) is tuple and len(raw) == 2 and callable(raw[0]):
        raw = raw[0](raw[1])
    items: Iterable[Any] = raw.items() if hasattr(raw, "items") else raw
    for name, value in items:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        key = name.lower()
        if key in out:
            out[key] = f"{out[key]}, {value}"
        else:
            out[key] = str(value)
    return out


class Trace:
    """What one request spent its time on.

    Created by the framework middleware at the start of a request and made current for the
    request's context; integrations append spans to it; finished when the response is complete.
    ``route`` is the route *template* (``/users/{id}``), filled in by the middleware from the
    framework's router; ``None`` when no route matched (a 404), reported as ``"<unmatched>"``.

    Headers are kept as the raw objects the server handed over and decoded only when a reader
    asks, because most traces are never read header by header.
    """

    __slots__ = (
        "_body_bytes",
        "_handler",
        "_id",
        "_raw_request_headers",
        "_raw_response_headers",
        "_request_headers",
        "_response_headers",
        "_seq",
        "attrs",
        "duration_ns",
        "method",
        "path",
        "query_string",
        "response_bytes",
        "route",
        "spans",
        "start_ns",
        "start_time",
        "status",
    )

    def __init__(
        self,
        method: str = "GET",
        path: str = "/",
        # Positional as well as by name, unlike the options after ``*``: the middlewares
        # pass these on every request, and binding keywords cost ~0.3 µs a trace.
        start_time: float = 0.0,
        request_headers: Any = None,
        query_string: str = "",
        *,
        route: str | None = None,
        start_ns: int | None = None,
        trace_id: str | None = None,
    ) -> None:
        # The id is formatted when first read (most traces never are): the f-string cost
        # ~0.2 µs a request; taking the counter now keeps ids in creation order.
        self._id = trace_id or None
        self._seq = next(_counter)
        self.method = method
        self.path = path
        self.query_string = query_string
        self.route = route
        self.status = 0
        self.response_bytes = 0
        self.start_ns = _now() if start_ns is None else start_ns
        self.start_time = start_time
        self.duration_ns = 0
        self.spans: list[Span] = []
        self.attrs: dict[str, Any] = {}
        self._raw_request_headers = request_headers
        self._raw_response_headers: Any = None
        self._request_headers: dict[str, str] | None = None
        self._response_headers: dict[str, str] | None = None
        # Scratch for the framework integration that owns the request, read by nothing else:
        # the handler's name once the router matched (so the handler span needs no second
        # router lookup), and the size of a body the framework built whole (-1: not known),
        # which lets the WSGI middleware end the trace as soon as the app returns.
        self._handler: str | None = None
        self._body_bytes = -1

    @property
    def id(self) -> str:
        """A process-unique id: a random per-process prefix and a counter, in hex."""
        value = self._id
        if value is None:
            value = self._id = f"{_PREFIX}{self._seq:x}"
        return value

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    # -- recording ---------------------------------------------------------------------------

    #: Spans a trace stores; past this they are only counted in ``attrs["dropped_spans"]``.
    #: Set process-wide from the ``max_spans`` setting by the runtime. Checked as spans are
    #: added, not when the trace finishes, so a runaway request (a loop of a million queries)
    #: cannot grow its trace without bound while it is still running. Costs ~20 ns a span.
    max_spans: int = 2000

    def add_span(
        self,
        kind: str,
        name: str,
        start_ns: int,
        end_ns: int,
        attrs: dict[str, Any] | None = None,
    ) -> Span:
        """Append a finished span (``list.append`` is atomic, so threads and tasks may share)
        and return it; past :attr:`max_spans` the span is returned but only counted."""
        span = Span(kind, name, start_ns, end_ns - start_ns, attrs)
        spans = self.spans
        if len(spans) < self.max_spans:
            spans.append(span)
        else:
            self.attrs["dropped_spans"] = self.attrs.get("dropped_spans", 0) + 1
        return span

    def set_response_headers(self, raw: Any) -> None:
        """Keep the response's headers (raw ASGI/WSGI pairs), decoded only if read."""
        self._raw_response_headers = raw
        self._response_headers = None

    def finish(self, end_ns: int | None = None) -> None:
        self.duration_ns = (_now() if end_ns is None else end_ns) - self.start_ns

    # -- reading -----------------------------------------------------------------------------

    @property
    def request_headers(self) -> dict[str, str]:
        if self._request_headers is None:
            self._request_headers = _decode_headers(self._raw_request_headers)
        return self._request_headers

    @request_headers.setter
    def request_headers(self, value: dict[str, str]) -> None:
        self._request_headers = {k.lower(): v for k, v in value.items()}

    @property
    def response_headers(self) -> dict[str, str]:
        if self._response_headers is None:
            self._response_headers = _decode_headers(self._raw_response_headers)
        return self._response_headers

    @response_headers.setter
    def response_headers(self, value: dict[str, str]) -> None:
        self._response_headers = {k.lower(): v for k, v in value.items()}

    @property
    def route_or_path(self) -> str:
        """The route template, else ``<unmatched>`` so unknown paths fold into one bucket."""
        return self.route if self.route is not None else "<unmatched>"

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1_000_000

    def offset_ms(self, span: Span) -> float:
        """Where ``span`` starts, in milliseconds from the start of the request."""
        return (span.start_ns - self.start_ns) / 1_000_000

    def spans_of(self, *kinds: str) -> list[Span]:
        return [s for s in self.spans if s.kind in kinds]

    def ordered_spans(self) -> list[Span]:
        """Spans by start time (they are appended as they *finish*, which differs when
        concurrent)."""
        return sorted(self.spans, key=lambda s: s.start_ns)

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __repr__(self) -> str:
        return (
            f"Trace({self.method} {self.route_or_path} status={self.status} "
            f"duration_ms={self.duration_ns / 1e6:.3f} spans={len(self.spans)})"
        )


def current_trace() -> Trace | None:
    """The trace of the request being handled in this context, or ``None`` outside one."""
    return _current_trace.get()


def union_ns(intervals: Iterable[tuple[int, int]]) -> int:
    """Total time covered by possibly overlapping ``(start, end)`` intervals.

    Concurrent spans (``asyncio.gather`` of three queries) overlap; summing their durations would
    report more database time than the request lasted.
    """
    total = 0
    cur_start = cur_end = None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        elif end > cur_end:
            cur_end = end
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total
