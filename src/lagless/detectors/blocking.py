"""Blocking the event loop: synchronous I/O on the loop's thread, and measured loop lag.

Two kinds of evidence:

- spans marked ``on_loop`` (a sync driver query, a ``requests`` call, a sync redis command, or
  any span the user recorded around ``time.sleep``/file I/O while a loop was running on the
  thread). While one runs, no other request served by that loop makes progress; the evidence
  is direct.
- ``trace.attrs["loop_lag_ms"]``: how late the loop-lag probe's ticks fired while the request
  was in flight (:mod:`lagless._loop_lag`). Lag without an ``on_loop`` span to explain it is
  circumstantial (another request, or CPU work, may have held the loop), so that finding is
  "Potential". The threshold is asyncio debug mode's ``slow_callback_duration`` (100 ms) in
  production and 20 ms in doctor runs, where requests run one at a time on an idle machine.
  Lag alone is judged per route: more than half of the route's requests must show it, because
  a single stall (a garbage collection of a big heap, another process taking the CPU) is the
  machine's, not the route's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from lagless._trace import Trace
from lagless.detectors._base import Context, Finding, Severity, register
from lagless.detectors.sequential_io import call_label

_FIX = (
    "Do not block the event loop in an async handler: use the async client (SQLAlchemy "
    "AsyncSession/create_async_engine, asyncpg or psycopg's AsyncConnection, redis.asyncio, "
    "httpx.AsyncClient instead of requests, asyncio.sleep instead of time.sleep, aiofiles for "
    "files), or move the call to a worker thread with await asyncio.to_thread(fn, ...) "
    "(starlette.concurrency.run_in_threadpool / anyio.to_thread.run_sync). In FastAPI a route "
    "declared with plain `def` runs in the threadpool by itself."
)


def _lag(trace: Trace) -> float:
    return float(trace.attrs.get("loop_lag_ms") or 0.0)


def _has_calls(trace: Trace, ctx: Context) -> bool:
    blocked = [x for x in trace.spans if x.get("on_loop")]
    if not blocked:
        return False
    return ctx.doctor or sum(x.duration_ms for x in blocked) >= ctx.settings.blocking_min_ms


def _blocking_calls(trace: Trace, ctx: Context) -> Iterator[Finding]:
    """Direct evidence, per request: synchronous calls made on the loop's thread."""
    if _has_calls(trace, ctx):
        yield from _finding(trace, ctx, has_calls=True)


def _blocking_lag(traces: list[Trace], ctx: Context) -> Iterator[Finding]:
    """Circumstantial evidence, per route: loop lag in most of the route's requests."""
    s = ctx.settings
    threshold = s.loop_lag_doctor_ms if ctx.doctor else s.loop_lag_ms
    quiet = [t for t in traces if not _has_calls(t, ctx)]
    lagged = [t for t in quiet if _lag(t) >= threshold]
    if not lagged or len(lagged) * 2 <= len(quiet):
        return
    worst = max(lagged, key=_lag)
    for finding in _finding(worst, ctx, has_calls=False):
        yield dataclasses.replace(finding, requests=len(lagged))


def _finding(trace: Trace, ctx: Context, *, has_calls: bool) -> Iterator[Finding]:
    s = ctx.settings
    blocked = [x for x in trace.spans if x.get("on_loop")]
    blocked_ms = sum(x.duration_ms for x in blocked)
    lag = _lag(trace)
    groups: dict[str, list[float]] = {}
    for span in blocked:
        groups.setdefault(f"{span.kind}: {call_label(span)}", []).append(span.duration_ms)
    evidence: list[dict[str, Any]] = [
        {"call": label, "count": len(times), "total_ms": round(sum(times), 3), "on_loop": True}
        for label, times in sorted(groups.items(), key=lambda kv: -sum(kv[1]))
    ]
    if lag:
        evidence.append(
            {"call": "event-loop lag during the request", "count": 1, "total_ms": round(lag, 3)}
        )
    potential = not has_calls
    cost = max(blocked_ms, lag)
    severity: Severity = "medium"
    if not potential:
        severity = "critical" if cost >= s.loop_lag_ms else "high"
    if potential:
        title = f"Potential event-loop blocking: the loop lagged {lag:.0f} ms during the request"
    else:
        calls = sum(e["count"] for e in evidence if e.get("on_loop"))
        title = (
            f"Blocking call in async code: {calls} synchronous call(s) held the event loop "
            f"for {blocked_ms:.1f} ms"
        )
    yield Finding(
        code="blocking-call",
        title=title,
        severity=severity,
        route=trace.route_or_path,
        method=trace.method.upper(),
        evidence=tuple(evidence),
        cost_ms=cost,
        fix=_FIX,
        potential=potential,
        details={"key": "blocking-call"},
    )


register(
    "blocking-call",
    "Synchronous I/O on the event loop's thread, or event-loop lag during the request",
    per_trace=_blocking_calls,
    per_route=_blocking_lag,
)
