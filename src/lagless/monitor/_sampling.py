"""Keep the full trace of slow requests, with the detectors' findings, at a bounded cost.

A request is *slow* when it took at least ``slow_sample_ms``, or longer than its route's p99
once the route has seen enough requests for a p99 to mean something. Slow requests are kept in
a fixed-size ring (the newest replace the oldest), and admitted through a token bucket of
``slow_sample_rate`` per second: under a latency storm where every request is slow, lagless
keeps and analyses at most that many a second, so its overhead stays flat however bad things
get. Requests turned away are counted.

The detectors run off the request path, on a daemon thread fed by a bounded queue; their
findings are attached to the sample and counted per (code, route) for ``/metrics``.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from lagless._guard import report_internal_error
from lagless._trace import Trace
from lagless.monitor._stats import RouteStats

#: Requests a route must have seen before "over its p99" counts as slow.
MIN_FOR_P99: Final = 100
_IDLE_EXIT_S: Final = 60.0
#: Spans sent to the dashboard per sampled request (the waterfall has no room for more).
MAX_WATERFALL_SPANS: Final = 300


class Sample:
    """One kept slow request."""

    __slots__ = ("findings", "p99_ms", "reason", "route", "trace", "wall_time")

    def __init__(
        self, trace: Trace, reason: str, p99_ms: float, wall_time: float, route: str = ""
    ) -> None:
        self.trace = trace
        #: The statistics entry the request was counted in (a template, ``<unmatched>`` or
        #: ``<other>``): findings are counted under it, so their labels stay bounded.
        self.route = route or trace.route_or_path
        self.reason = reason
        self.p99_ms = p99_ms
        self.wall_time = wall_time
        self.findings: list[dict[str, Any]] | None = None  # None: not analysed yet

    def to_dict(self) -> dict[str, Any]:
        trace = self.trace
        spans = sorted(trace.spans, key=lambda s: s.start_ns)
        shown = spans[:MAX_WATERFALL_SPANS]
        return {
            "id": trace.id,
            "method": trace.method,
            "route": trace.route_or_path,
            "path": trace.path,
            "status": trace.status,
            "duration_ms": round(trace.duration_ns / 1e6, 3),
            "time": self.wall_time,
            "reason": self.reason,
            "p99_ms": round(self.p99_ms, 3) if math.isfinite(self.p99_ms) else None,
            "spans": [
                {
                    "kind": s.kind,
                    "name": s.name[:300],
                    "offset_ms": round((s.start_ns - trace.start_ns) / 1e6, 3),
                    "duration_ms": round(s.duration_ns / 1e6, 3),
                    "error": s.get("error"),
                }
                for s in shown
            ],
            "more_spans": len(spans) - len(shown),
            "findings": self.findings or [],
        }


def _run_detectors(trace: Trace) -> list[dict[str, Any]]:
    from lagless.detectors import analyze

    return [f.to_dict() for f in analyze([trace], mode="production")]


class SlowSampler:
    """Decides per request whether to keep it, and keeps at most ``capacity``.

    ``clock`` is a monotonic clock in seconds (injected by tests); ``analyze`` turns a trace
    into finding dicts; ``on_findings(route, codes)`` hears of each analysed sample.
    """

    def __init__(
        self,
        *,
        threshold_ms: float = 500.0,
        capacity: int = 100,
        rate: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        analyze: Callable[[Trace], list[dict[str, Any]]] | None = _run_detectors,
        on_findings: Callable[[str, list[str]], None] | None = None,
        background: bool = True,
    ) -> None:
        self.threshold_s = threshold_ms / 1000.0
        self.capacity = capacity
        self.rate = rate
        self.burst = max(1.0, rate)
        self.clock = clock
        self.wall = wall
        self.samples: collections.deque[Sample] = collections.deque(maxlen=capacity)
        self.analyze = analyze
        self.on_findings = on_findings
        self.background = background
        self.dropped = 0
        self._tokens = self.burst
        self._refilled = clock()
        self._pending: collections.deque[Sample] = collections.deque(maxlen=capacity)
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def consider(self, trace: Trace, rs: RouteStats) -> Sample | None:
        """Keep ``trace`` if it is slow and the rate allows (the hot path: a comparison and,
        rarely, the token bucket)."""
        seconds = trace.duration_ns / 1e9
        p99 = rs.p99_cached
        if self.threshold_s and seconds >= self.threshold_s:
            reason = "threshold"
        elif seconds > p99 and rs.count >= MIN_FOR_P99:
            reason = "p99"
        else:
            return None
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
            self._refilled = now
            if self._tokens < 1.0:
                self.dropped += 1
                return None
            self._tokens -= 1.0
        sample = Sample(trace, reason, p99 * 1000.0, self.wall(), rs.route)
        self.samples.append(sample)
        if self.analyze is not None:
            self._pending.append(sample)
            if self.background:
                self._ensure_thread()
                self._wake.set()
        return sample

    def process_pending(self) -> int:
        """Run the detectors on queued samples; returns how many were analysed."""
        done = 0
        while True:
            try:
                sample = self._pending.popleft()
            except IndexError:
                return done
            try:
                findings = self.analyze(sample.trace) if self.analyze is not None else []
            except Exception as exc:
                report_internal_error("monitor:analyze", exc)
                findings = []
            sample.findings = findings
            done += 1
            if self.on_findings is not None and findings:
                # rs.route, not the raw path: a scanner's slow 404s must not mint new keys.
                self.on_findings(sample.route, [str(f.get("code")) for f in findings])

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="lagless-slow-analysis", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        # Exits after a quiet minute (consider() starts it again), so a monitor that is
        # replaced or idle does not keep a thread parked forever.
        while self._wake.wait(_IDLE_EXIT_S):
            self._wake.clear()
            self.process_pending()
        self.process_pending()  # anything queued while deciding to stop

    def after_fork(self) -> None:
        """A forked worker starts with no samples and no analysis thread."""
        self.samples.clear()
        self._pending.clear()
        self._thread = None
        self._lock = threading.Lock()

    def recent(self) -> list[Sample]:
        """Kept samples, slowest first."""
        return sorted(self.samples, key=lambda s: -s.trace.duration_ns)
