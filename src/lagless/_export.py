"""Traces as JSON: the versioned exchange format (docs/trace-format.md).

A file is either one JSON document ``{"format": "lagless-traces", "version": 1, "traces":
[...]}`` or JSON lines, one trace object per line (what the ``trace_file`` sink appends). Times
are milliseconds (floats); span ``start_ms`` is the offset from the request's start. SQL is
exported with inline literals redacted and bound parameters dropped unless ``record_params`` was
on, so an exported file can be shared.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from lagless._sql import redact
from lagless._trace import Span, Trace
from lagless.integrations._clients import fold

FORMAT = "lagless-traces"
VERSION = 1

#: Headers copied into an export: the ones detectors read. Others (cookies, tokens) never leave.
EXPORTED_REQUEST_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "if-none-match",
        "if-modified-since",
        "cache-control",
        "content-type",
        "content-length",
        "user-agent",
    }
)
EXPORTED_RESPONSE_HEADERS = frozenset(
    {
        "cache-control",
        "etag",
        "last-modified",
        "content-type",
        "content-encoding",
        "content-length",
        "vary",
        "age",
        "cache-status",
        "expires",
        "server-timing",
    }
)
_SENSITIVE_FLAGS = {
    "set-cookie": "has_set_cookie",
    "authorization": "has_authorization",
    "cookie": "has_cookie",
}


class TraceFormatError(ValueError):
    """A file is not a lagless trace export (or an unsupported version of one)."""


def _ms(ns: int) -> float:
    return round(ns / 1_000_000, 4)


def span_to_dict(trace: Trace, span: Span, *, record_params: bool = False) -> dict[str, Any]:
    name = span.name
    attrs = dict(span.attrs) if span.attrs else {}
    if span.kind == "db" and not record_params:
        name = redact(name)
        attrs.pop("params", None)
    return {
        "kind": span.kind,
        "name": name,
        "start_ms": _ms(span.start_ns - trace.start_ns),
        "duration_ms": _ms(span.duration_ns),
        "attrs": _jsonable(attrs),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def trace_to_dict(trace: Trace, *, record_params: bool = False) -> dict[str, Any]:
    """One trace as a JSON-ready dict (schema version 1)."""
    req = trace.request_headers
    resp = trace.response_headers
    flags = {flag: True for name, flag in _SENSITIVE_FLAGS.items() if name in req or name in resp}
    attrs = {**trace.attrs, **flags}
    path = trace.path
    if not record_params:
        # Paths carry ids and tokens (/reset/8f3a...), and an exception's message may quote
        # the values it failed on (SQLAlchemy appends "[parameters: ...]"): both are folded
        # the way recorded SQL is, unless the user chose to keep values.
        path = fold(path)
        error = attrs.get("error")
        if isinstance(error, str):
            attrs["error"] = redact(error.split("\n", 1)[0]).rstrip()
    return {
        "id": trace.id,
        "method": trace.method,
        "path": path,
        "route": trace.route,
        "status": trace.status,
        "start_time": trace.start_time,
        "duration_ms": _ms(trace.duration_ns),
        "response_bytes": trace.response_bytes,
        "request_headers": {k: v for k, v in req.items() if k in EXPORTED_REQUEST_HEADERS},
        "response_headers": {k: v for k, v in resp.items() if k in EXPORTED_RESPONSE_HEADERS},
        "attrs": _jsonable(attrs),
        "spans": [span_to_dict(trace, s, record_params=record_params) for s in trace.spans],
    }


def trace_from_dict(data: dict[str, Any]) -> Trace:
    """Rebuild a :class:`Trace` from its exported dict (times become integer nanoseconds)."""
    try:
        start_ns = 0
        trace = Trace(
            data.get("method", "GET"),
            data.get("path", "/"),
            route=data.get("route"),
            start_ns=start_ns,
            start_time=float(data.get("start_time", 0.0)),
            trace_id=data.get("id"),
        )
        trace.status = int(data.get("status", 0))
        trace.response_bytes = int(data.get("response_bytes", 0))
        trace.duration_ns = int(float(data.get("duration_ms", 0.0)) * 1_000_000)
        trace.request_headers = dict(data.get("request_headers") or {})
        trace.response_headers = dict(data.get("response_headers") or {})
        trace.attrs = dict(data.get("attrs") or {})
        for s in data.get("spans") or ():
            start = int(float(s.get("start_ms", 0.0)) * 1_000_000)
            dur = int(float(s.get("duration_ms", 0.0)) * 1_000_000)
            # Appended directly: a loaded file keeps every span it holds, whatever this
            # process's max_spans (the limit bounds live recording, not analysis).
            trace.spans.append(
                Span(
                    str(s["kind"]),
                    str(s.get("name", "")),
                    start,
                    dur,
                    dict(s["attrs"]) if s.get("attrs") else None,
                )
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise TraceFormatError(f"malformed trace: {exc}") from None
    return trace


def dump_traces(traces: Iterable[Trace], fp: IO[str], *, record_params: bool = False) -> int:
    """Write ``traces`` as one versioned JSON document; returns how many were written."""
    items = [trace_to_dict(t, record_params=record_params) for t in traces]
    json.dump({"format": FORMAT, "version": VERSION, "traces": items}, fp, indent=1)
    fp.write("\n")
    return len(items)


def export_traces(
    path: str | Path, traces: Iterable[Trace] | None = None, *, record_params: bool = False
) -> int:
    """Write ``traces`` (default: the recent ones in memory) to ``path`` for `lagless analyze`."""
    if traces is None:
        from lagless._runtime import get_runtime

        traces = get_runtime().recent_traces()
    with open(path, "w", encoding="utf-8") as fh:
        return dump_traces(traces, fh, record_params=record_params)


def iter_trace_dicts(text: str, *, source: str = "<string>") -> Iterator[dict[str, Any]]:
    """The trace dicts in a lagless export: one JSON document or JSON lines."""
    stripped = text.lstrip()
    if not stripped:
        return
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError:
        doc = None
    if isinstance(doc, dict) and "traces" in doc:
        if doc.get("format") != FORMAT:
            raise TraceFormatError(
                f"{source}: not a lagless trace export (format={doc.get('format')!r})"
            )
        if doc.get("version") != VERSION:
            raise TraceFormatError(
                f"{source}: trace format version {doc.get('version')!r} is not supported "
                f"(this lagless reads version {VERSION})"
            )
        yield from doc["traces"]
        return
    if isinstance(doc, dict) and "spans" in doc:
        yield doc
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceFormatError(f"{source}:{lineno}: not JSON: {exc.msg}") from None
        if not isinstance(item, dict) or "spans" not in item:
            raise TraceFormatError(f"{source}:{lineno}: not a lagless trace object")
        yield item


def load_traces(path: str | Path) -> list[Trace]:
    """Read a lagless trace export (document or JSON lines)."""
    text = Path(path).read_text(encoding="utf-8")
    return [trace_from_dict(d) for d in iter_trace_dicts(text, source=str(path))]


class JsonLinesSink:
    """Appends each finished trace to a file as one JSON line (the ``trace_file`` setting)."""

    def __init__(self, path: str, *, record_params: bool = False) -> None:
        self.path = path
        self.record_params = record_params
        self._lock = threading.Lock()
        self._fh: IO[str] | None = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def __call__(self, trace: Trace) -> None:
        line = json.dumps(trace_to_dict(trace, record_params=self.record_params))
        with self._lock:
            if self._fh is not None:
                self._fh.write(line + "\n")
                self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
