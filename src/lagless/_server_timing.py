"""The Server-Timing response header (W3C Server Timing), read by browser devtools.

One entry per layer: ``db`` (queries and pool waits, with the query count), ``cache``,
``http`` (outgoing calls), ``serialize``, ``mw`` (middleware own time), ``app`` (the rest: the
request's own Python time) and ``total``. Layer times are the *union* of their spans, so three
queries run concurrently with ``asyncio.gather`` count once, and ``app`` never goes negative.
"""

from __future__ import annotations

from lagless._trace import Trace, union_ns

_LAYERS = (
    ("db", ("db", "pool")),
    ("cache", ("cache",)),
    ("http", ("http",)),
    ("serialize", ("serialize",)),
)


def _fmt(ns: int) -> str:
    return f"{ns / 1_000_000:.2f}"


def server_timing(trace: Trace, now_ns: int) -> str:
    """The header value for ``trace`` as of ``now_ns`` (when the response headers go out)."""
    total = now_ns - trace.start_ns
    spans = trace.spans
    if not spans:
        # The common fast path: no I/O recorded, nothing to merge.
        return f"app;dur={_fmt(total)}, total;dur={_fmt(total)}"
    by_kind: dict[str, list[tuple[int, int]]] = {}
    queries = 0
    calls: dict[str, int] = {}
    mw_ns = 0
    for span in spans:
        kind = span.kind
        if kind == "middleware":
            mw_ns += span.duration_ns
            continue
        by_kind.setdefault(kind, []).append((span.start_ns, span.start_ns + span.duration_ns))
        if kind == "db":
            queries += 1
        calls[kind] = calls.get(kind, 0) + 1
    parts: list[str] = []
    io_intervals: list[tuple[int, int]] = []
    for label, kinds in _LAYERS:
        intervals = [iv for k in kinds for iv in by_kind.get(k, ())]
        if not intervals:
            continue
        io_intervals.extend(intervals)
        dur = union_ns(intervals) if len(intervals) > 1 else intervals[0][1] - intervals[0][0]
        if label == "db":
            desc = f"{queries} quer{'y' if queries == 1 else 'ies'}"
        else:
            n = sum(calls.get(k, 0) for k in kinds)
            desc = f"{n} call{'' if n == 1 else 's'}"
        parts.append(f'{label};dur={_fmt(dur)};desc="{desc}"')
    if mw_ns:
        parts.append(f"mw;dur={_fmt(mw_ns)}")
    busy = union_ns(io_intervals) if io_intervals else 0
    app = max(total - busy - mw_ns, 0)
    parts.append(f"app;dur={_fmt(app)}")
    parts.append(f"total;dur={_fmt(total)}")
    return ", ".join(parts)
