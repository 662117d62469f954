"""No connection reuse: a new database connection per request, or a pool too small.

- New connections are per *route*: the first request of a process opens one as a matter of
  course, so one trace proves nothing. When at least two requests and ``new_connection_share``
  (half) of a route's requests each opened a connection (a ``pool`` span ``connect`` or any
  span with ``new_connection=True``), the app is connecting per request: a TCP handshake, TLS
  and authentication each time (several ms on PostgreSQL; more across a network).
- Pool wait: time spent waiting to check a connection out (``wait_ms`` on ``pool`` spans, or
  the span's duration for ``*.getconn``/``acquire`` spans, minus any connect inside it) that
  is ``pool_wait_share`` (a fifth) of the route's median request or more.
"""

from __future__ import annotations

from collections.abc import Iterator

from lagless._trace import Span, Trace
from lagless.detectors._base import Context, Finding, median_sample, register
from lagless.detectors._hints import orm_advice, stack_of


def _connects(trace: Trace) -> list[Span]:
    """The connections a request opened: ``pool`` ``connect`` spans, or else the ``db`` spans
    flagged as the first on a new connection (one connection often shows as both)."""
    pool = [s for s in trace.spans if s.kind == "pool" and s.get("new_connection")]
    return pool or [s for s in trace.spans if s.kind == "db" and s.get("new_connection")]


def _new_connections(traces: list[Trace], ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    opened = [t for t in traces if _connects(t)]
    if len(opened) < 2 or len(opened) / len(traces) < s.new_connection_share:
        return
    connect_spans = [x for t in opened for x in _connects(t) if x.kind == "pool"]
    cost = sum(x.duration_ms for x in connect_spans) / len(opened) if connect_spans else 0.0
    if not ctx.doctor and cost < s.new_connection_min_ms:
        return
    first = opened[0]
    stack = stack_of(first, first.spans)
    fix = orm_advice(
        stack,
        django="keep connections open between requests: DATABASES[...]['CONN_MAX_AGE'] = 60 "
        "with 'CONN_HEALTH_CHECKS': True (Django >= 4.1), or a pooler such as Django 5.1's "
        "OPTIONS={'pool': True} for PostgreSQL or PgBouncer.",
        sqlalchemy="create the engine once at start-up and share it (its QueuePool reuses "
        "connections); do not call create_engine() per request or use NullPool in a web app.",
    )
    fix += (
        " With a bare driver, open a psycopg_pool.ConnectionPool / asyncpg.create_pool() once "
        "and check connections out of it."
    )
    total = sum(x.duration_ms for x in connect_spans)
    yield Finding(
        code="no-connection-reuse",
        title=f"New database connection on {len(opened)} of {len(traces)} requests",
        severity="high",
        route=first.route_or_path,
        method=first.method.upper(),
        evidence=(
            {
                "call": "connect",
                "count": sum(len(_connects(t)) for t in opened),
                "total_ms": round(total, 3),
                "requests_connecting": len(opened),
                "requests": len(traces),
            },
        ),
        cost_ms=cost,
        fix=fix,
        requests=len(opened),
        details={"key": "new-connection"},
    )


def _wait_ms(span: Span) -> float:
    wait = span.get("wait_ms")
    if wait is None:
        wait = span.get("pool_wait_ms")
    if wait is not None:
        return float(wait)
    name = span.name.lower()
    if span.kind == "pool" and name.endswith(("getconn", "acquire")):
        return span.duration_ms
    return 0.0


def _queue_wait_ms(span: Span, connects: list[Span]) -> float:
    """A checkout's wait minus the connects inside it: opening a connection is not queueing
    for one (and no-connection-reuse reports it)."""
    wait = _wait_ms(span)
    if wait <= 0 or span.get("new_connection"):
        return 0.0
    inside = sum(
        max(0, min(span.end_ns, c.end_ns) - max(span.start_ns, c.start_ns)) for c in connects
    )
    return max(0.0, wait - inside / 1_000_000)


def _waits(trace: Trace) -> tuple[Trace, list[tuple[Span, float]], float]:
    connects = [x for x in trace.spans if x.kind == "pool" and x.get("new_connection")]
    waits = [(x, _queue_wait_ms(x, connects)) for x in trace.spans if x.kind == "pool"]
    waits = [(x, w) for x, w in waits if w > 0]
    return trace, waits, sum(w for _, w in waits)


def _pool_wait(traces: list[Trace], ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    # The route's median request decides: one request stalled by a busy CPU is not a pool
    # too small, while a pool too small for the traffic makes most requests wait.
    runs = [_waits(t) for t in traces if t.duration_ns > 0]
    if not runs:
        return
    trace, waits, wait = median_sample(runs, key=lambda r: r[2])
    if not waits:
        return
    share = wait / trace.duration_ms
    if share < s.pool_wait_share or (not ctx.doctor and wait < s.pool_wait_min_ms):
        return
    fix = orm_advice(
        stack_of(trace, trace.spans),
        django="use a larger pool (Django 5.1 OPTIONS={'pool': {'max_size': ...}} or "
        "PgBouncer's default_pool_size) and hold connections for less time (no slow work "
        "inside transaction.atomic()).",
        sqlalchemy="raise create_engine(pool_size=..., max_overflow=...) to your concurrency, "
        "and release connections sooner (short sessions; no slow work inside a transaction).",
    )
    yield Finding(
        code="no-connection-reuse",
        title=f"Pool wait: {wait:.1f} ms ({share:.0%} of the request) waiting for a connection",
        severity="high" if share >= 0.5 else "medium",
        route=trace.route_or_path,
        method=trace.method.upper(),
        evidence=(
            {
                "call": waits[0][0].name,
                "count": len(waits),
                "total_ms": round(wait, 3),
                "share": round(share, 3),
            },
        ),
        cost_ms=wait,
        fix=fix + " psycopg_pool/asyncpg pools: raise max_size.",
        requests=sum(1 for _, w, _ in runs if w),
        details={"key": "pool-wait"},
    )


def _both(traces: list[Trace], ctx: Context) -> Iterator[Finding]:
    yield from _new_connections(traces, ctx)
    yield from _pool_wait(traces, ctx)


register(
    "no-connection-reuse",
    "A new database connection per request, or long waits for a pooled connection",
    per_route=_both,
)
