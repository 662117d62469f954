"""Reading OpenTelemetry OTLP/JSON span exports as lagless traces, for ``lagless analyze``.

The input is what the OTel Collector's file exporter, ``otel-cli`` or an SDK's OTLP/JSON
exporter writes: ``ExportTraceServiceRequest`` documents (``{"resourceSpans": [...]}``), one per
file or one per line. Each *server* span becomes one lagless :class:`~lagless._trace.Trace` and
its descendants become spans, read through the semantic conventions (current names first, the
older ones as fallbacks):

- request: ``http.request.method``/``http.method``, ``http.route``, ``url.path``/``http.target``,
  ``http.response.status_code``/``http.status_code``, ``http.response.body.size``, and request
  and response headers captured as ``http.request.header.<name>`` /
  ``http.response.header.<name>``;
- database: ``db.system.name``/``db.system``, ``db.query.text``/``db.statement``, and
  ``db.operation.parameter.<key>`` (or literals in the text) to tell an N+1 from a duplicate;
  Redis and Memcached calls become ``cache`` spans;
- outgoing HTTP: client spans with ``url.full``/``http.url``.

Spans that OTel's ASGI instrumentation emits for each ``send``/``receive`` message carry no
latency information of their own and are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from lagless._sql import redact
from lagless._trace import Trace

_SERVER = {2, "2", "SPAN_KIND_SERVER"}
_CLIENT = {3, "3", "SPAN_KIND_CLIENT"}
_ERROR = {2, "2", "STATUS_CODE_ERROR"}
_CACHE_SYSTEMS = {"redis", "memcached", "valkey"}


class OTLPFormatError(ValueError):
    """The document is not OTLP/JSON trace data."""


def is_otlp(doc: Any) -> bool:
    return isinstance(doc, Mapping) and ("resourceSpans" in doc or "resource_spans" in doc)


def _value(v: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value (64-bit ints arrive as strings in JSON)."""
    if not isinstance(v, Mapping):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_value(x) for x in (v["arrayValue"] or {}).get("values", ())]
    if "kvlistValue" in v:
        return _attributes((v["kvlistValue"] or {}).get("values", ()))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def _attributes(items: Iterable[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or ():
        if isinstance(item, Mapping) and "key" in item:
            out[str(item["key"])] = _value(item.get("value"))
    return out


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if attrs.get(key) is not None:
            return attrs[key]
    return None


def _header_value(value: Any) -> str:
    return ", ".join(str(x) for x in value) if isinstance(value, list) else str(value)


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OTLPFormatError(f"'{what}' must be a list, got {type(value).__name__}")
    return value


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise OTLPFormatError(f"each item of '{what}' must be an object")
    return value


def _int_or_none(value: Any) -> int | None:
    """An integer attribute, or ``None`` for anything that is not one (exports from other
    tools are not trusted to be well-typed)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value) if len(value) <= 20 else None
    return None


def iter_spans(doc: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every span of one ``ExportTraceServiceRequest``, flattened, with its attributes decoded
    and ``service`` set from the resource. Raises :class:`OTLPFormatError` on anything that
    does not have OTLP's shape, never another exception."""
    if not is_otlp(doc):
        raise OTLPFormatError("not an OTLP/JSON trace export (no 'resourceSpans')")
    for rs in _list(doc.get("resourceSpans") or doc.get("resource_spans"), "resourceSpans"):
        rs = _mapping(rs, "resourceSpans")
        try:
            resource = _attributes((rs.get("resource") or {}).get("attributes", ()))
        except (AttributeError, TypeError, ValueError) as exc:
            raise OTLPFormatError(f"malformed resource: {exc}") from None
        service = resource.get("service.name")
        scopes = rs.get("scopeSpans") or rs.get("instrumentationLibrarySpans")
        for ss in _list(scopes, "scopeSpans"):
            ss = _mapping(ss, "scopeSpans")
            for span in _list(ss.get("spans"), "spans"):
                span = _mapping(span, "spans")
                try:
                    kind = span.get("kind", 0)
                    status = span.get("status") or {}
                    yield {
                        "trace_id": str(span.get("traceId", "")),
                        "span_id": str(span.get("spanId", "")),
                        "parent": str(span.get("parentSpanId") or ""),
                        "name": str(span.get("name", "")),
                        "kind": kind if isinstance(kind, int | str) else 0,
                        "start": int(span["startTimeUnixNano"]),
                        "end": int(span["endTimeUnixNano"]),
                        "attrs": _attributes(span.get("attributes", ())),
                        "status": status if isinstance(status, Mapping) else {},
                        "service": service,
                    }
                except (AttributeError, KeyError, TypeError, ValueError) as exc:
                    name = str(span.get("name"))[:80]
                    raise OTLPFormatError(f"malformed span {name!r}: {exc}") from None


def _code(status: Mapping[str, Any]) -> Any:
    code = status.get("code")
    return code if isinstance(code, int | str) else None


def _is_asgi_message(span: Mapping[str, Any]) -> bool:
    attrs = span["attrs"]
    return "asgi.event.type" in attrs or span["name"].endswith((" http send", " http receive"))


def _add_child(trace: Trace, span: Mapping[str, Any]) -> None:
    attrs = span["attrs"]
    extra: dict[str, Any] = {}
    if _code(span["status"]) in _ERROR:
        extra["error"] = str(span["status"].get("message") or "error")
    system = _first(attrs, "db.system.name", "db.system")
    if system is not None:
        text = str(_first(attrs, "db.query.text", "db.statement") or span["name"])
        params = {
            k.rsplit(".", 1)[-1]: v
            for k, v in attrs.items()
            if k.startswith(("db.operation.parameter.", "db.query.parameter."))
        }
        if params:
            extra["params_hash"] = hash(repr(sorted(params.items())))
        elif redact(text) != text:
            # Literals inline: the text itself tells one parameter set from another.
            extra["params_hash"] = hash(text)
        rows = _int_or_none(_first(attrs, "db.response.returned_rows", "db.rows_affected"))
        if rows is not None:
            extra["rows"] = rows
        extra["db.system"] = str(system)
        extra["driver"] = "otel"
        kind = "cache" if str(system) in _CACHE_SYSTEMS else "db"
        trace.add_span(kind, text, span["start"], span["end"], extra)
        return
    url = _first(attrs, "url.full", "http.url")
    if span["kind"] in _CLIENT and url is not None:
        method = _first(attrs, "http.request.method", "http.method") or "GET"
        status = _int_or_none(_first(attrs, "http.response.status_code", "http.status_code"))
        if status is not None:
            extra["status"] = status
        trace.add_span("http", f"{method} {url}", span["start"], span["end"], extra)
        return
    trace.add_span("custom", span["name"], span["start"], span["end"], extra or None)


def _request_trace(server: Mapping[str, Any], descendants: list[dict[str, Any]]) -> Trace:
    attrs = server["attrs"]
    method = str(_first(attrs, "http.request.method", "http.method") or "GET")
    target = str(_first(attrs, "url.path", "http.target") or "/")
    path, _, query = target.partition("?")
    route = _first(attrs, "http.route")
    trace = Trace(
        method,
        path,
        route=str(route) if route is not None else None,
        start_ns=server["start"],
        start_time=server["start"] / 1e9,
        trace_id=server["trace_id"] + ":" + server["span_id"],
        query_string=str(_first(attrs, "url.query") or query),
    )
    trace.duration_ns = server["end"] - server["start"]
    status = _int_or_none(_first(attrs, "http.response.status_code", "http.status_code"))
    trace.status = status if status is not None else 0
    size = _int_or_none(_first(attrs, "http.response.body.size", "http.response_content_length"))
    trace.response_bytes = size if size is not None else 0
    trace.request_headers = {
        k[len("http.request.header.") :]: _header_value(v)
        for k, v in attrs.items()
        if k.startswith("http.request.header.")
    }
    trace.response_headers = {
        k[len("http.response.header.") :]: _header_value(v)
        for k, v in attrs.items()
        if k.startswith("http.response.header.")
    }
    trace.attrs["source"] = "otlp"
    if server.get("service"):
        trace.attrs["service"] = server["service"]
    if _code(server["status"]) in _ERROR:
        trace.attrs["error"] = str(server["status"].get("message") or "error")
    for child in sorted(descendants, key=lambda s: s["start"]):
        if not _is_asgi_message(child):
            _add_child(trace, child)
    return trace


def traces_from_spans(spans: Iterable[dict[str, Any]]) -> list[Trace]:
    """Group flattened spans into request traces: one per server span (or per root span when
    a trace has no server span), each with the spans below it that are not inside a nested
    server span of their own."""
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for span in spans:
        by_trace.setdefault(span["trace_id"], []).append(span)
    out: list[Trace] = []
    for items in by_trace.values():
        by_id = {s["span_id"]: s for s in items}
        children: dict[str, list[dict[str, Any]]] = {}
        for s in items:
            children.setdefault(s["parent"], []).append(s)
        roots = [s for s in items if s["kind"] in _SERVER]
        if not roots:
            roots = [s for s in items if not s["parent"] or s["parent"] not in by_id]
        for root in roots:
            descendants: list[dict[str, Any]] = []
            # Span ids seen: a hostile or broken export can make the parent links a cycle
            # (or reuse an id), which would otherwise loop for ever.
            seen = {root["span_id"]}
            stack = list(children.get(root["span_id"], ()))
            while stack:
                s = stack.pop()
                if s["kind"] in _SERVER:
                    continue  # another service's request: a trace of its own
                descendants.append(s)
                if s["span_id"] not in seen:
                    seen.add(s["span_id"])
                    stack.extend(children.get(s["span_id"], ()))
            out.append(_request_trace(root, descendants))
    out.sort(key=lambda t: t.start_ns)
    return out


def parse_otlp(text: str, *, source: str = "<otlp>") -> list[Trace]:
    """Traces from OTLP/JSON text: one ``ExportTraceServiceRequest`` or one per line."""
    docs: list[Any] = []
    try:
        docs.append(json.loads(text))
    except RecursionError:
        raise OTLPFormatError(f"{source}: JSON nested too deeply to be a trace export") from None
    except json.JSONDecodeError:
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                docs.append(json.loads(line))
            except RecursionError:
                raise OTLPFormatError(f"{source}:{lineno}: JSON nested too deeply") from None
            except json.JSONDecodeError as exc:
                raise OTLPFormatError(f"{source}:{lineno}: not JSON: {exc.msg}") from None
    spans: list[dict[str, Any]] = []
    for i, doc in enumerate(docs, 1):
        if not is_otlp(doc):
            raise OTLPFormatError(f"{source}: document {i} is not OTLP/JSON (no 'resourceSpans')")
        spans.extend(iter_spans(doc))
    return traces_from_spans(spans)
