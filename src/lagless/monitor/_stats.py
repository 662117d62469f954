"""Per-route latency statistics: what ``/metrics`` and the dashboard read.

One :class:`RouteStats` per (method, route template) holds the request-duration histogram, one
histogram per layer (db, cache, http, serialize, mw, app), status-class counts, queries per
request, cache hits and misses, and a one-minute window of per-second counts for throughput and
error rate. :class:`Stats` owns them and bounds their number: a path no route matched is
``<unmatched>`` (the trace already says so), and past ``max_routes`` distinct pairs every new
one folds into ``<other>``, so a crawler walking 10,000 URLs costs one entry, not 10,000.

Durations are recorded in **seconds** in :class:`~lagless._histogram.ExpHistogram` (base-2
exponential buckets, scale 5: any quantile within ±1.09%). Seconds, not milliseconds, because a
bucket boundary is then a power of two *in the unit Prometheus uses*, so the buckets are
Prometheus native-histogram buckets as they stand, and classic ``le`` bounds chosen on the same
grid are counted exactly.

Why this structure rather than ddsketch or HdrHistogram: measured on this machine, each of those
costs ~1.5 µs per record from Python; :meth:`ExpHistogram.record` is ~0.3 µs, merges by adding
counts (exact across processes), and holds only buckets that were touched.

:meth:`Stats.observe` runs on every request (a runtime listener), so it is written for speed:
one pass over the spans, one clock read, no allocation beyond the layer intervals. It takes no
lock: under a thread race an increment can be lost (one sample), never a structure corrupted;
only creating a route's entry is locked.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from lagless._histogram import ExpHistogram
from lagless._trace import Trace, union_ns

#: The layers a request's time is split into, in display order; ``app`` is what is left.
LAYERS: Final[tuple[str, ...]] = ("db", "cache", "http", "serialize", "mw", "app")
_LAYER_OF: Final[dict[str, str]] = {
    "db": "db",
    "pool": "db",
    "cache": "cache",
    "http": "http",
    "serialize": "serialize",
}
UNMATCHED: Final = "<unmatched>"
OTHER: Final = "<other>"
#: RFC 9110 §9 methods plus PATCH (RFC 5789); anything else is reported as ``_OTHER``, the
#: OpenTelemetry semantic-convention spelling, so a client sending junk methods cannot create
#: label values.
KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
#: Upper bounds of the queries-per-request histogram.
QUERY_BOUNDS: Final[tuple[int, ...]] = (0, 1, 2, 3, 5, 10, 20, 50, 100, 200, 500)
WINDOW_S: Final = 60
#: How many records between refreshes of a route's cached p99 (used by slow sampling).
_P99_EVERY: Final = 128
DURATION_SCALE: Final = 5
#: queries per request -> its slot in :data:`QUERY_BOUNDS` (precomputed: no loop per request).
_QUERY_SLOT: Final[tuple[int, ...]] = tuple(
    next((i for i, b in enumerate(QUERY_BOUNDS) if q <= b), len(QUERY_BOUNDS))
    for q in range(QUERY_BOUNDS[-1] + 1)
)


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "_OTHER"


def status_class(status: int) -> str:
    """``"2xx"`` .. ``"5xx"``; ``0`` (no response started) counts as a server error."""
    if 100 <= status < 600:
        return f"{status // 100}xx"
    return "5xx"


class Window:
    """Requests and errors per wall-clock second over the last :data:`WINDOW_S` seconds.

    Keyed by absolute second so windows from several processes merge by adding slots.
    """

    __slots__ = ("counts", "errors", "second")

    def __init__(self) -> None:
        self.counts = [0] * WINDOW_S
        self.errors = [0] * WINDOW_S
        self.second = 0  # the latest second written

    def add(self, second: int, error: bool, n: int = 1) -> None:
        if second != self.second:
            if second < self.second:
                if self.second - second >= WINDOW_S:
                    return  # too old to matter
            else:
                self._advance(second)
        slot = second % WINDOW_S
        self.counts[slot] += n
        if error:
            self.errors[slot] += n

    def _advance(self, second: int) -> None:
        gap = second - self.second
        if gap >= WINDOW_S:
            self.counts = [0] * WINDOW_S
            self.errors = [0] * WINDOW_S
        else:
            for s in range(self.second + 1, second + 1):
                slot = s % WINDOW_S
                self.counts[slot] = 0
                self.errors[slot] = 0
        self.second = second

    def series(self, now: int) -> list[int]:
        """Requests in each of the last :data:`WINDOW_S` seconds, oldest first, ending at
        ``now``."""
        latest = self.second
        return [
            self.counts[s % WINDOW_S] if latest - WINDOW_S < s <= latest else 0
            for s in range(now - WINDOW_S + 1, now + 1)
        ]

    def totals(self, now: int, seconds: int = WINDOW_S) -> tuple[int, int]:
        """(requests, errors) in the ``seconds`` seconds ending at ``now`` (inclusive)."""
        req = err = 0
        for s in range(now - seconds + 1, now + 1):
            if self.second - WINDOW_S < s <= self.second:
                req += self.counts[s % WINDOW_S]
                err += self.errors[s % WINDOW_S]
        return req, err

    def merge(self, other: Window) -> None:
        latest = max(self.second, other.second)
        if latest != self.second:
            self._advance(latest)
        for s in range(latest - WINDOW_S + 1, latest + 1):
            if other.second - WINDOW_S < s <= other.second:
                slot = s % WINDOW_S
                self.counts[slot] += other.counts[slot]
                self.errors[slot] += other.errors[slot]

    def to_dict(self) -> dict[str, Any]:
        return {"second": self.second, "counts": self.counts, "errors": self.errors}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        w = cls()
        w.second = int(data["second"])
        counts, errors = list(data["counts"]), list(data["errors"])
        if len(counts) == WINDOW_S and len(errors) == WINDOW_S:
            w.counts = [int(c) for c in counts]
            w.errors = [int(e) for e in errors]
        return w


class RouteStats:
    """Everything recorded for one (method, route) pair.

    Layer time is kept as a sum per layer (seconds), not a histogram per layer: the question
    it answers is "where does this route's time go", which a mean per request answers, and a
    sum is one float add where a histogram record costs several times that. Status codes are
    counted by code (a handful per route) and grouped into classes when read.
    """

    __slots__ = (
        "cache_hits",
        "cache_misses",
        "duration",
        "errors",
        "layer_seconds",
        "method",
        "p99_cached",
        "queries",
        "queries_sum",
        "route",
        "statuses",
        "window",
    )

    def __init__(self, method: str, route: str) -> None:
        self.method = method
        self.route = route
        self.duration = ExpHistogram(DURATION_SCALE)
        #: Seconds spent in each layer, summed over requests.
        self.layer_seconds: dict[str, float] = {}
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.queries = [0] * (len(QUERY_BOUNDS) + 1)  # last slot: +Inf
        self.queries_sum = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self.window = Window()
        #: The route's p99 in seconds, refreshed every :data:`_P99_EVERY` records (a quantile
        #: walks the buckets; doing it per request would cost more than recording).
        self.p99_cached = math.inf

    @property
    def count(self) -> int:
        return self.duration.count

    def status_classes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for status, n in list(self.statuses.items()):
            sc = status_class(status)
            out[sc] = out.get(sc, 0) + n
        return out

    def observe(self, trace: Trace, second: int) -> None:
        """Record one finished request (the hot path: written out rather than factored)."""
        total = trace.duration_ns
        hist = self.duration
        hist.record(total / 1e9)
        if not hist.count % _P99_EVERY:
            self.p99_cached = hist.quantile(0.99)
        status = trace.status
        statuses = self.statuses
        statuses[status] = statuses.get(status, 0) + 1
        error = status >= 500 or status < 100
        window = self.window
        if second == window.second:
            slot = second % WINDOW_S
            window.counts[slot] += 1
            if error:
                window.errors[slot] += 1
        else:
            window.add(second, error)
        if error:
            self.errors += 1
        spans = trace.spans
        queries = 0
        sums = self.layer_seconds
        if spans:
            intervals: dict[str, list[tuple[int, int]]] | None = None
            mw = 0
            layer_of = _LAYER_OF
            for span in spans:
                kind = span.kind
                label = layer_of.get(kind)
                if label is None:
                    if kind == "middleware":
                        mw += span.duration_ns
                    continue
                start = span.start_ns
                if intervals is None:
                    intervals = {}
                bucket = intervals.get(label)
                if bucket is None:
                    intervals[label] = [(start, start + span.duration_ns)]
                else:
                    bucket.append((start, start + span.duration_ns))
                if kind == "db":
                    queries += 1
                elif kind == "cache":
                    hit = span.get("hit")
                    if hit is True:
                        self.cache_hits += 1
                    elif hit is False:
                        self.cache_misses += 1
            busy = 0
            if intervals is not None:
                every: list[tuple[int, int]] = []
                for label, ivs in intervals.items():
                    every.extend(ivs)
                    ns = union_ns(ivs) if len(ivs) > 1 else ivs[0][1] - ivs[0][0]
                    sums[label] = sums.get(label, 0.0) + ns / 1e9
                    busy = ns
                if len(intervals) > 1:
                    busy = union_ns(every)
            if mw:
                sums["mw"] = sums.get("mw", 0.0) + mw / 1e9
            app = total - busy - mw
            if app > 0:
                sums["app"] = sums.get("app", 0.0) + app / 1e9
        else:
            sums["app"] = sums.get("app", 0.0) + total / 1e9
        self.queries_sum += queries
        self.queries[_QUERY_SLOT[queries] if queries < len(_QUERY_SLOT) else -1] += 1

    # -- merging and serialising ---------------------------------------------------------------

    def merge(self, other: RouteStats) -> None:
        self.duration.merge(other.duration)
        self.p99_cached = self.duration.quantile(0.99)
        for name, value in list(other.layer_seconds.items()):
            self.layer_seconds[name] = self.layer_seconds.get(name, 0.0) + value
        for status, n in list(other.statuses.items()):
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.errors += other.errors
        self.queries = [a + b for a, b in zip(self.queries, other.queries, strict=True)]
        self.queries_sum += other.queries_sum
        self.cache_hits += other.cache_hits
        self.cache_misses += other.cache_misses
        self.window.merge(other.window)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "route": self.route,
            "duration": self.duration.to_dict(),
            "layer_seconds": dict(self.layer_seconds),
            "statuses": {str(k): v for k, v in list(self.statuses.items())},
            "errors": self.errors,
            "queries": list(self.queries),
            "queries_sum": self.queries_sum,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "window": self.window.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RouteStats:
        rs = cls(str(data["method"]), str(data["route"]))
        rs.duration = ExpHistogram.from_dict(data["duration"])
        rs.p99_cached = rs.duration.quantile(0.99) if rs.duration.count else math.inf
        rs.layer_seconds = {str(k): float(v) for k, v in data.get("layer_seconds", {}).items()}
        rs.statuses = {int(k): int(v) for k, v in data.get("statuses", {}).items()}
        rs.errors = int(data.get("errors", 0))
        queries = [int(q) for q in data.get("queries", ())]
        if len(queries) == len(rs.queries):
            rs.queries = queries
        rs.queries_sum = int(data.get("queries_sum", 0))
        rs.cache_hits = int(data.get("cache_hits", 0))
        rs.cache_misses = int(data.get("cache_misses", 0))
        if "window" in data:
            rs.window = Window.from_dict(data["window"])
        return rs


class Stats:
    """Per-route statistics for one process, bounded to ``max_routes`` (method, route) pairs.

    ``clock`` returns wall-clock seconds (``time.time``); tests pass a fake one.
    """

    def __init__(self, *, max_routes: int = 100, clock: Callable[[], float] = time.time) -> None:
        if max_routes < 1:
            raise ValueError("max_routes must be at least 1")
        self.max_routes = max_routes
        self.clock = clock
        self.routes: dict[tuple[str, str], RouteStats] = {}
        #: Requests that folded into ``<other>`` because the route table was full.
        self.folded = 0
        #: Findings on sampled slow requests, by (code, route).
        self.findings: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.updates = 0  # bumped on every observe; the multiprocess flusher reads it

    def route_stats(self, method: str, route: str) -> RouteStats:
        """The entry for (method, route), created if there is room, else ``<other>``'s."""
        key = (method, route)
        rs = self.routes.get(key)
        if rs is not None:
            return rs
        if self._full(route):  # the table only grows: a full one stays full, no lock needed
            other = self.routes.get((method if method in KNOWN_METHODS else "_OTHER", OTHER))
            if other is not None:
                self.folded += 1
                return other
        with self._lock:
            rs = self.routes.get(key)
            if rs is not None:
                return rs
            if self._full(route):
                self.folded += 1
                return self._other(method)
            rs = self.routes[key] = RouteStats(method, route)
            return rs

    def _full(self, route: str) -> bool:
        # One slot is kept back for <other>; the <other> entries (one per method, at most ten)
        # may go past the cap, so the table never holds more than max_routes + 10 entries.
        return route != OTHER and len(self.routes) >= self.max_routes - 1

    def _other(self, method: str) -> RouteStats:
        key = (method if method in KNOWN_METHODS else "_OTHER", OTHER)
        rs = self.routes.get(key)
        if rs is None:
            rs = self.routes[key] = RouteStats(key[0], OTHER)
        return rs

    def observe(self, trace: Trace) -> RouteStats:
        """Record one finished trace; returns the entry it went to."""
        route = trace.route
        method = trace.method
        rs = self.routes.get((method, route if route is not None else UNMATCHED))
        if rs is None:
            rs = self.route_stats(method_label(method), route if route is not None else UNMATCHED)
        rs.observe(trace, int(self.clock()))
        self.updates += 1
        return rs

    def add_findings(self, route: str, codes: list[str]) -> None:
        with self._lock:
            for code in codes:
                key = (code, route)
                self.findings[key] = self.findings.get(key, 0) + 1

    def now(self) -> int:
        return int(self.clock())

    # -- merging and serialising ---------------------------------------------------------------

    def merge(self, other: Stats) -> None:
        """Add ``other`` (another process's statistics) into this one. The route cap applies
        to the merge too."""
        for (method, route), rs in list(other.routes.items()):
            mine = self.routes.get((method, route))
            if mine is None:
                if self._full(route):
                    self.folded += rs.count
                    mine = self._other(method)
                else:
                    mine = self.routes[(method, route)] = RouteStats(method, route)
            mine.merge(rs)
        self.folded += other.folded
        for key, n in list(other.findings.items()):
            self.findings[key] = self.findings.get(key, 0) + n

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            routes = list(self.routes.values())
            findings = [[c, r, n] for (c, r), n in self.findings.items()]
        return {
            "version": 1,
            "max_routes": self.max_routes,
            "folded": self.folded,
            "routes": [rs.to_dict() for rs in routes],
            "findings": findings,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, max_routes: int | None = None) -> Stats:
        stats = cls(max_routes=max_routes or int(data.get("max_routes", 100)))
        for item in data.get("routes", ()):
            rs = RouteStats.from_dict(item)
            stats.routes[(rs.method, rs.route)] = rs
        stats.folded = int(data.get("folded", 0))
        for code, route, n in data.get("findings", ()):
            stats.findings[(str(code), str(route))] = int(n)
        return stats

    def copy(self) -> Stats:
        out = Stats(max_routes=self.max_routes, clock=self.clock)
        out.merge(self)
        return out
