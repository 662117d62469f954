"""Per-route latency figures of a doctor run (pure functions over traces)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from lagless._trace import Trace


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-quantile (0..1) by linear interpolation between closest ranks (the method
    numpy calls "linear"), so p95 of few samples is not simply their maximum."""
    if not sorted_values:
        return 0.0
    if len(sorted_values) == 1:
        return float(sorted_values[0])
    pos = q * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    frac = pos - lo
    return float(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac)


@dataclasses.dataclass(frozen=True)
class RouteStats:
    method: str
    route: str
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_queries: float
    mean_bytes: float
    statuses: dict[int, int]
    representative: Trace

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "route": self.route,
            "requests": self.requests,
            "errors": self.errors,
            "p50_ms": round(self.p50_ms, 3),
            "p95_ms": round(self.p95_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "max_ms": round(self.max_ms, 3),
            "queries_per_request": round(self.mean_queries, 2),
            "bytes_per_response": round(self.mean_bytes),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def route_stats(traces: Iterable[Trace]) -> list[RouteStats]:
    """One row per (method, route), slowest p95 first. The representative trace of a route is
    its median-duration request: typical, not an outlier."""
    groups: dict[tuple[str, str], list[Trace]] = {}
    for t in traces:
        groups.setdefault((t.method, t.route_or_path), []).append(t)
    rows = []
    for (method, route), items in groups.items():
        items.sort(key=lambda t: t.duration_ns)
        durations = [t.duration_ns / 1e6 for t in items]
        statuses: dict[int, int] = {}
        for t in items:
            statuses[t.status] = statuses.get(t.status, 0) + 1
        rows.append(
            RouteStats(
                method=method,
                route=route,
                requests=len(items),
                errors=sum(1 for t in items if t.status >= 500),
                p50_ms=percentile(durations, 0.50),
                p95_ms=percentile(durations, 0.95),
                p99_ms=percentile(durations, 0.99),
                max_ms=durations[-1],
                mean_queries=sum(_queries(t) for t in items) / len(items),
                mean_bytes=sum(t.response_bytes for t in items) / len(items),
                statuses=statuses,
                representative=items[(len(items) - 1) // 2],
            )
        )
    rows.sort(key=lambda r: r.p95_ms, reverse=True)
    return rows


def _queries(trace: Trace) -> int:
    """Statements a request ran: its db spans, or for a URL target (no spans) the count the
    server's Server-Timing header gave."""
    spans = len(trace.spans_of("db"))
    count = trace.attrs.get("queries")
    return count if not spans and isinstance(count, int) else spans
