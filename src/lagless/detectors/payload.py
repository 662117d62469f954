"""Payload: responses too large, sent uncompressed, or slow to serialize.

- ``large-payload``: a JSON response over ``large_payload_bytes`` (Sentry's large HTTP payload
  detector flags 300 KB);
- ``uncompressed-payload``: a compressible response (text, JSON, JavaScript, XML, SVG) of at
  least ``compress_min_bytes`` (one Ethernet MTU: below that compression saves no packet) sent
  without ``Content-Encoding`` to a client whose ``Accept-Encoding`` offered gzip, br, zstd or
  deflate (RFC 9110 §12.5.3);
- ``slow-serialization``: ``serialize`` spans taking ``serialization_share`` of the route's
  median request and at least ``serialization_min_ms`` (1 ms in doctor runs).

Bytes become milliseconds at ``client_mbps`` (10 Mbit/s by default, a decent mobile link);
compression is assumed to remove three quarters of a JSON or text body, a conservative figure
for gzip on JSON (which typically shrinks 70-90 %).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from lagless._trace import Trace
from lagless.detectors._base import Context, Finding, Severity, median_sample, register
from lagless.detectors._hints import compression_tool

#: Share of a text/JSON body compression is assumed to remove.
COMPRESSION_SAVING: Final = 0.75
_CODINGS: Final = frozenset({"gzip", "br", "zstd", "deflate", "x-gzip"})
_COMPRESSIBLE: Final = (
    "text/",
    "application/json",
    "application/javascript",
    "application/xml",
    "application/xhtml",
    "image/svg+xml",
    "application/ld+json",
    "application/problem+json",
    "application/manifest+json",
    "application/wasm",
)


_EXTENSIONS: Final = frozenset(
    {
        "css", "js", "mjs", "map", "png", "jpg", "jpeg", "gif", "webp", "avif", "svg", "ico",
        "woff", "woff2", "ttf", "otf", "eot", "wasm", "mp4", "webm", "mp3",
    }
)  # fmt: skip


def extension(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def is_static(trace: Trace) -> bool:
    if trace.attrs.get("static"):
        return True
    path = trace.path.lower()
    return extension(path) in _EXTENSIONS or path.startswith(("/static/", "/assets/"))


def transfer_ms(size: int, ctx: Context) -> float:
    return size * 8 / (ctx.settings.client_mbps * 1000)


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def is_compressible(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media.startswith(_COMPRESSIBLE) or media.endswith(("+json", "+xml"))


def accepts_compression(accept_encoding: str) -> bool:
    """Whether ``Accept-Encoding`` offers a coding we know with a non-zero q-value."""
    for item in accept_encoding.split(","):
        coding, _, params = item.strip().partition(";")
        if coding.strip().lower() not in _CODINGS:
            continue
        q = params.strip().lower()
        if q.startswith("q="):
            try:
                if float(q[2:]) == 0.0:  # RFC 9110 §12.4.2: q=0 means "not acceptable"
                    continue
            except ValueError:
                continue
        return True
    return False


def _body_size(trace: Trace) -> int:
    return int(trace.attrs.get("uncompressed_bytes") or trace.response_bytes or 0)


def _large(trace: Trace, ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    size = _body_size(trace)
    if size <= s.large_payload_bytes or not is_json(trace.response_headers.get("content-type", "")):
        return
    severity: Severity = "high" if size >= 3 * s.large_payload_bytes else "medium"
    yield Finding(
        code="large-payload",
        title=f"Large JSON response: {size / 1000:.0f} KB",
        severity=severity,
        route=trace.route_or_path,
        method=trace.method.upper(),
        evidence=(
            {
                "call": f"{trace.method.upper()} {trace.route_or_path}",
                "count": 1,
                "total_ms": round(trace.duration_ms, 3),
                "response_bytes": size,
                "sent_bytes": trace.response_bytes,
            },
        ),
        cost_ms=transfer_ms(trace.response_bytes or size, ctx),
        fix="Send less: paginate the list (limit/cursor parameters), let clients pick fields "
        "(lagless's sparse fieldsets, ?fields=id,name), drop fields nobody reads from the "
        "response model/serializer, and compress what remains.",
        details={"key": "large-payload"},
    )


def _uncompressed(trace: Trace, ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    headers = trace.response_headers
    encoding = headers.get("content-encoding", "identity").strip().lower()
    size = trace.response_bytes
    if (
        trace.status in (204, 304)
        or is_static(trace)  # static-no-cache reports assets, compression included
        or size < s.compress_min_bytes
        or encoding not in ("", "identity")
        or not is_compressible(headers.get("content-type", ""))
        or not accepts_compression(trace.request_headers.get("accept-encoding", ""))
    ):
        return
    saved = int(size * COMPRESSION_SAVING)
    yield Finding(
        code="uncompressed-payload",
        title=f"Uncompressed response: {size / 1000:.1f} KB of "
        f"{headers.get('content-type', '').split(';')[0]} sent to a client accepting "
        "compression",
        severity="medium" if size >= 10 * s.compress_min_bytes else "low",
        route=trace.route_or_path,
        method=trace.method.upper(),
        evidence=(
            {
                "call": f"{trace.method.upper()} {trace.route_or_path}",
                "count": 1,
                "total_ms": round(trace.duration_ms, 3),
                "response_bytes": size,
                "accept_encoding": trace.request_headers.get("accept-encoding", ""),
            },
        ),
        cost_ms=transfer_ms(saved, ctx),
        fix=f"Compress responses: {compression_tool(str(trace.attrs.get('framework') or ''))}.",
        details={"key": "uncompressed"},
    )


_SERIALIZE_FIX = {
    "fastapi": "return ORJSONResponse (default_response_class=ORJSONResponse), and skip "
    "double validation: return the model itself or a dict matching response_model",
    "starlette": "render with orjson (a Response subclass calling orjson.dumps) or msgspec",
    "django": "serialize with orjson (HttpResponse(orjson.dumps(data), "
    "content_type='application/json'), or drf-orjson-renderer for DRF) and build list views "
    "from .values() rather than model instances",
    "flask": "set an orjson JSON provider (app.json = an orjson-backed JSONProvider)",
    "litestar": "return msgspec.Struct (or dicts) instead of pydantic models/dataclasses",
}


def _slow_serialization(traces: list[Trace], ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    runs = []
    for trace in traces:
        spans = [x for x in trace.spans if x.kind == "serialize"]
        if spans and trace.duration_ns > 0:
            total = sum(x.duration_ms for x in spans)
            runs.append((trace, spans, total, total / trace.duration_ms))
    if not runs:
        return
    # The route's median request decides: one slow first render is not the route's habit.
    trace, spans, total, share = median_sample(runs, key=lambda r: r[2])
    floor = s.serialization_doctor_min_ms if ctx.doctor else s.serialization_min_ms
    if share < s.serialization_share or total < floor:
        return
    framework = str(trace.attrs.get("framework") or "")
    tool = _SERIALIZE_FIX.get(framework, "use orjson or msgspec instead of json/pydantic")
    yield Finding(
        code="slow-serialization",
        title=f"Slow serialization: {total:.1f} ms ({share:.0%} of the request)",
        severity="high" if share >= 0.5 else "medium",
        route=trace.route_or_path,
        method=trace.method.upper(),
        evidence=tuple(
            {
                "call": x.name,
                "count": 1,
                "total_ms": round(x.duration_ms, 3),
                "bytes": x.get("bytes"),
                "median_of": len(runs),
            }
            for x in spans
        ),
        cost_ms=total,
        fix=f"{tool[:1].upper()}{tool[1:]}; and serialize less (paginate, fewer fields).",
        requests=len(runs),
        details={"key": "serialize"},
    )


register("large-payload", "JSON responses above a size threshold", per_trace=_large)
register(
    "uncompressed-payload",
    "Compressible responses sent uncompressed to a client that accepts compression",
    per_trace=_uncompressed,
)
register(
    "slow-serialization",
    "Serialization taking a large share of the request",
    per_route=_slow_serialization,
)
