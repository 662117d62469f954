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
#: Span kind -> its layer; kinds not listed (handler, custom) are part of ``app``.
_LAYER_OF = {kind: label for label, kinds in _LAYERS for kind in kinds}
_ORDER = tuple(label for label, _ in _LAYERS)


def _fmt(ns: int) -> str:
    return f"{ns / 1_000_000:.2f}"


def server_timing(trace: Trace, now_ns: int) -> str:
    """The header value for ``trace`` as of ``now_ns`` (when the response headers go out).

    Runs on every response, so it is one pass over the spans with no per-layer rescans; a trace
    whose spans are only middleware/handler/custom ones takes the short path.
    """
    total = now_ns - trace.start_ns
    layers: dict[str, list[tuple[int, int]]] | None = None
    queries = 0
    mw_ns = 0
    layer_of = _LAYER_OF
    for span in trace.spans:
        kind = span.kind
        label = layer_of.get(kind)
        if label is None:
            if kind == "middleware":
                mw_ns += span.duration_ns
            continue
        if layers is None:
            layers = {}
        start = span.start_ns
        interval = (start, start + span.duration_ns)
        bucket = layers.get(label)
        if bucket is None:
            layers[label] = [interval]
        else:
            bucket.append(interval)
        if kind == "db":
            queries += 1
    if layers is None:
        # No I/O recorded: nothing to merge.
        total_text = _fmt(total)
        if not mw_ns:
            return f"app;dur={total_text}, total;dur={total_text}"
        return (
            f"mw;dur={_fmt(mw_ns)}, app;dur={_fmt(max(total - mw_ns, 0))}, total;dur={total_text}"
        )
    parts: list[str] = []
    io_intervals: list[tuple[int, int]] = []
    for label in _ORDER:
        intervals = layers.get(label)
        if not intervals:
            continue
        io_intervals.extend(intervals)
        dur = union_ns(intervals) if len(intervals) > 1 else intervals[0][1] - intervals[0][0]
        if label == "db":
            desc = f"{queries} quer{'y' if queries == 1 else 'ies'}"
        else:
            n = len(intervals)
            desc = f"{n} call{'' if n == 1 else 's'}"
        parts.append(f'{label};dur={_fmt(dur)};desc="{desc}"')
    if mw_ns:
        parts.append(f"mw;dur={_fmt(mw_ns)}")
    busy = union_ns(io_intervals)
    parts.append(f"app;dur={_fmt(max(total - busy - mw_ns, 0))}")
    parts.append(f"total;dur={_fmt(total)}")
    return ", ".join(parts)
