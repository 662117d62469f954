"""Export lagless traces as OpenTelemetry spans, through the OTel SDK the user configured.

Each finished trace becomes one SERVER span (``GET /users/{id}``) with a child per lagless span:
CLIENT spans for queries, cache commands and outgoing HTTP calls, INTERNAL spans for the rest.
Attribute names follow the OpenTelemetry semantic conventions (HTTP and database, stable
names): ``http.request.method``, ``http.route``, ``url.path``, ``http.response.status_code``,
``server.address``/``server.port``, ``user_agent.original``; on database spans
``db.system.name``, ``db.query.text`` (literals redacted unless ``record_params``),
``db.operation.name`` and ``db.response.returned_rows``; on HTTP client spans
``http.request.method``, ``url.full``, ``server.address``, ``http.response.status_code``.

Times: lagless measures spans on the monotonic ``perf_counter_ns`` clock; OTel wants epoch
nanoseconds. The trace's wall-clock start anchors the request, and every span keeps its exact
offset from it, so the waterfall in Jaeger or Tempo is the one lagless measured. An incoming
``traceparent`` header makes the server span a child of the caller's trace (W3C Trace Context),
through whatever propagator the application set globally.

Whatever exporter the tracer provider has (OTLP, Jaeger, console, in-memory) receives them;
lagless does not configure one.
"""

from __future__ import annotations

import time
from typing import Any

from lagless._sql import redact, statement_verb
from lagless._trace import IO_KINDS, Span, Trace


def _host_port(host: str) -> tuple[str, int | None]:
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    valid = port.isascii() and port.isdigit() and len(port) <= 5
    return name, int(port) if valid else None


class OTelExporter:
    """A runtime listener that sends each trace to an OTel tracer.

    >>> from lagless.monitor import OTelExporter
    >>> lagless.get_runtime().add_listener(OTelExporter())   # the global tracer provider

    ``tracer_provider`` defaults to the global one; ``record_params`` keeps SQL literals in
    ``db.query.text`` (off: they may be personal data).
    """

    def __init__(self, *, tracer_provider: Any = None, record_params: bool = False) -> None:
        try:
            from opentelemetry import trace as ot_trace
            from opentelemetry.propagate import extract
        except ImportError:
            from lagless.errors import LaglessError

            raise LaglessError(
                "OpenTelemetry export needs the OTel SDK: pip install 'lagless[otel]'"
            ) from None
        from lagless import __version__

        provider = tracer_provider or ot_trace.get_tracer_provider()
        self.tracer = provider.get_tracer("lagless", __version__)
        self.record_params = record_params
        self._ot = ot_trace
        self._extract = extract
        self.__name__ = "OTelExporter"

    def __call__(self, trace: Trace) -> None:
        self.export(trace)

    def export(self, trace: Trace) -> None:
        ot = self._ot
        start_wall = (
            # Microseconds first: a float of epoch seconds holds ~0.2 µs, not nanoseconds.
            round(trace.start_time * 1_000_000) * 1000
            if trace.start_time
            else time.time_ns() - (time.perf_counter_ns() - trace.start_ns)
        )
        origin = trace.start_ns

        def at(perf_ns: int) -> int:
            return start_wall + (perf_ns - origin)

        headers = trace.request_headers
        parent = self._extract(headers) if "traceparent" in headers else None
        method = trace.method
        name = f"{method} {trace.route}" if trace.route is not None else method
        attrs: dict[str, Any] = {
            "http.request.method": method,
            "url.path": trace.path,
            "http.response.status_code": trace.status,
            "http.response.body.size": trace.response_bytes,
            "lagless.trace_id": trace.id,
        }
        if trace.route is not None:
            attrs["http.route"] = trace.route
        host = headers.get("host")
        if host:
            address, port = _host_port(host)
            attrs["server.address"] = address
            if port is not None:
                attrs["server.port"] = port
        agent = headers.get("user-agent")
        if agent:
            attrs["user_agent.original"] = agent[:512]
        framework = trace.attrs.get("framework")
        if framework:
            attrs["lagless.framework"] = str(framework)
        root = self.tracer.start_span(
            name, context=parent, kind=ot.SpanKind.SERVER, start_time=start_wall, attributes=attrs
        )
        if trace.status >= 500 or trace.status == 0:
            # HTTP semconv: a server span is an error for 5xx, not for 4xx.
            error = trace.attrs.get("error")
            root.set_status(ot.Status(ot.StatusCode.ERROR, str(error) if error else None))
            attrs_error = str(trace.status) if trace.status else "no response"
            root.set_attribute("error.type", str(error).split(":")[0] if error else attrs_error)
        ctx = ot.set_span_in_context(root)
        for span in trace.spans:
            self._child(span, ctx, at)
        root.end(end_time=start_wall + trace.duration_ns)

    def _child(self, span: Span, ctx: Any, at: Any) -> None:
        ot = self._ot
        kind = span.kind
        name, attrs = self._describe(span)
        client = kind in IO_KINDS and kind != "pool"
        child = self.tracer.start_span(
            name,
            context=ctx,
            kind=ot.SpanKind.CLIENT if client else ot.SpanKind.INTERNAL,
            start_time=at(span.start_ns),
            attributes=attrs,
        )
        error = span.get("error")
        if error:
            child.set_status(ot.Status(ot.StatusCode.ERROR, str(error)))
            child.set_attribute("error.type", str(error).split(":")[0])
        child.end(end_time=at(span.end_ns))

    def _describe(self, span: Span) -> tuple[str, dict[str, Any]]:
        """The OTel span name and semantic-convention attributes for a lagless span."""
        kind = span.kind
        attrs: dict[str, Any] = {"lagless.span.kind": kind}
        if kind == "db":
            system = span.get("db.system")
            text = span.name if self.record_params else redact(span.name)
            verb = statement_verb(span.name)
            attrs["db.query.text"] = text
            if system:
                attrs["db.system.name"] = str(system)
            if verb:
                attrs["db.operation.name"] = verb
            rows = span.get("rows")
            if isinstance(rows, int):
                attrs["db.response.returned_rows"] = rows
            return (f"{verb} {system}" if verb and system else verb or "db"), attrs
        if kind == "cache":
            command = span.name.split(" ", 1)[0].upper()
            attrs["db.system.name"] = str(span.get("driver") or "redis")
            attrs["db.operation.name"] = command
            hit = span.get("hit")
            if hit is not None:
                attrs["lagless.cache.hit"] = bool(hit)
            return command, attrs
        if kind == "http":
            method, _, url = span.name.partition(" ")
            attrs["http.request.method"] = span.get("method") or method
            if url:
                attrs["url.full"] = url
            host = span.get("host")
            if host:
                address, port = _host_port(str(host))
                attrs["server.address"] = address
                if port is not None:
                    attrs["server.port"] = port
            status = span.get("status")
            if isinstance(status, int):
                attrs["http.response.status_code"] = status
            return str(attrs["http.request.method"]), attrs
        if kind == "pool":
            attrs["db.system.name"] = str(span.get("db.system") or "")
            return f"connect {span.get('db.system') or ''}".strip(), attrs
        return span.name[:200] or kind, attrs
