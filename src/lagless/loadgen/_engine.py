"""The load loops: open loop on an arrival schedule, closed loop with N users.

Open loop (the default, and the correct way to measure latency under load): request *k* is
due at ``start + arrivals[k]`` and is dispatched then, whether or not earlier ones finished;
its latency runs from that *scheduled* start, not from when it got written. A server that
stalls for a second therefore shows a second of queueing on every request due in that second,
as its users would feel it. A closed loop (each user sends, waits, sends again) stops sending
while the server stalls, so only the few requests in flight see the stall: "coordinated
omission" (Gil Tene), which hides the tail. The closed loop is here for comparison and for
throughput runs, with latency measured from the actual send as such tools do.

The scheduler sleeps until the next due time and then dispatches every request that is due,
recording how late it woke (its *dispatch lateness*). If it falls behind by more than the
tolerance on more than a small share of requests, or its thread's CPU is pinned, the run is
marked invalid: the latencies would include the generator's own queueing.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol

from lagless._histogram import ExpHistogram
from lagless._scenario import MissingValue, RequestSpec, ScenarioState, iter_placeholders
from lagless.loadgen._http import Done
from lagless.loadgen._results import BenchResult, Generator, Interval, RouteStats
from lagless.loadgen._schedule import Stage, arrivals, constant, total_duration

Clock = Callable[[], float]


class Transport(Protocol):
    """What the loops send through: :class:`HttpPool`, :class:`AsgiTransport` or
    :class:`WsgiTransport`."""

    queued: int
    connect_errors: int

    def encode(
        self,
        method: str,
        url: str,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes | None = None,
    ) -> Any: ...

    def submit(self, payload: Any, *, head: bool, keep: bool, done: Done) -> None: ...

    @property
    def in_flight(self) -> int: ...

    def close(self) -> None: ...


@dataclasses.dataclass
class LoadOptions:
    """How to load. ``stages`` set: open loop; else a closed loop of ``users`` for
    ``duration`` seconds. ``warmup`` seconds run first (at the first stage's target rate, or
    with the same users) and are left out of every figure."""

    stages: list[Stage] | None = None
    users: int = 0
    duration: float = 0.0
    warmup: float = 0.0
    timeout: float = 30.0
    late_tolerance_ms: float = 10.0
    max_late_fraction: float = 0.01
    cpu_limit: float = 0.95
    cpu_rule: bool = True
    interval_s: float | None = None
    seed: int = 0


@dataclasses.dataclass
class Snapshot:
    """Live figures for the progress bar (the last complete interval)."""

    elapsed_s: float
    total_s: float
    warming_up: bool
    sent: int
    completed: int
    errors: int
    rate: float
    p50_ms: float
    p99_ms: float
    in_flight: int


ProgressHook = Callable[[Snapshot], None]


def judge_generator(
    gen: Generator,
    dispatched: int,
    *,
    max_late_fraction: float = 0.01,
    cpu_limit: float = 0.95,
) -> list[str]:
    """Why a run cannot be trusted because of the generator itself (empty: it kept up).

    Sans-IO: reads the recorded lateness and CPU share only, so it is tested on plain values.
    """
    reasons: list[str] = []
    # A share *and* a few requests: one late send among 30 is a hiccup, not a saturated generator.
    if gen.late_dispatches > max(max_late_fraction * dispatched, 3):
        p99 = gen.dispatch_lateness.quantile(0.99)
        reasons.append(
            f"the generator fell behind its schedule: "
            f"{gen.late_dispatches / dispatched:.1%} of requests were dispatched more than "
            f"{gen.late_tolerance_ms:g} ms late (p99 lateness {p99:.1f} ms); lower --rate, give "
            f"the generator a quieter machine, or spread the load over Locust workers (--locust)"
        )
    if gen.cpu_rule and gen.cpu_fraction is not None and gen.cpu_fraction >= cpu_limit:
        reasons.append(
            f"the generator's CPU was pinned ({gen.cpu_fraction:.0%} of a core): its own "
            f"queueing is part of the measured latencies; lower --rate or use --locust"
        )
    return reasons


class _Route:
    __slots__ = ("keep", "payload", "spec", "stats")

    def __init__(self, spec: RequestSpec, payload: Any, stats: RouteStats) -> None:
        self.spec = spec
        self.payload = payload  # pre-encoded when the request never changes
        self.keep = bool(spec.captures)
        self.stats = stats


def _is_static(spec: RequestSpec, state: ScenarioState) -> bool:
    """Whether every request of ``spec`` is the same bytes (nothing to fill in)."""
    texts = [spec.path, spec.body or "", json.dumps(spec.json) if spec.has_json else ""]
    texts += [str(v) for _, v in spec.query]
    texts += [v for _, v in (*state.scenario.headers, *spec.headers)]
    return not any(next(iter_placeholders(t), None) is not None for t in texts)


class Runner:
    """One run of a plan against a transport. Build it, then ``await run()``."""

    def __init__(
        self,
        transport: Transport,
        plan: Sequence[RequestSpec],
        state: ScenarioState,
        options: LoadOptions,
        *,
        target: str = "",
        clock: Clock = time.perf_counter,
        cpu_clock: Clock = time.thread_time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        progress: ProgressHook | None = None,
    ) -> None:
        if not plan:
            raise ValueError("empty plan")
        self.transport = transport
        self.state = state
        self.options = options
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.sleep = sleep
        self.progress = progress
        self.routes: list[_Route] = []
        for spec in plan:
            stats = RouteStats(spec.name, spec.method, spec.path, spec.weight)
            payload = None
            if _is_static(spec, state):
                prepared = state.prepare(spec)
                payload = transport.encode(
                    prepared.method, prepared.url, prepared.headers, prepared.body
                )
            self.routes.append(_Route(spec, payload, stats))
        self._cum = list(itertools.accumulate(s.weight for s in plan))
        self._rng = random.Random(options.seed)
        self.gen = Generator(late_tolerance_ms=options.late_tolerance_ms, cpu_rule=options.cpu_rule)
        self.timeline: list[Interval] = []
        self.interval_s = options.interval_s or 1.0
        self.measure_start = 0.0
        self.dispatched = 0  # measured requests dispatched
        self.sent = 0
        self.completed = 0
        self.failed_prepare = 0
        self.notes: list[str] = []

    # -- one request ---------------------------------------------------------------------------

    def _pick(self) -> _Route:
        if len(self.routes) == 1:
            return self.routes[0]
        x = self._rng.random() * self._cum[-1]
        return self.routes[bisect.bisect_right(self._cum, x)]

    def fire(self, due: float, after: Callable[[], None] | None = None) -> None:
        """Send one request due at ``due`` (its latency counts from there)."""
        route = self._pick()
        payload = route.payload
        spec = route.spec
        if payload is None:
            try:
                prepared = self.state.prepare(spec)
            except MissingValue as exc:
                self.failed_prepare += 1
                if due >= self.measure_start:
                    route.stats.errors["missing value"] += 1
                if len(self.notes) < 5 and str(exc) not in self.notes:
                    self.notes.append(str(exc))
                if after is not None:
                    after()
                return
            payload = self.transport.encode(
                prepared.method, prepared.url, prepared.headers, prepared.body
            )
        self.sent += 1
        measured = due >= self.measure_start
        stats = route.stats
        if measured and isinstance(payload, bytes | bytearray):
            stats.bytes_out += len(payload)
        state = self.state
        clock = self.clock

        def done(
            status: int,
            nbytes: int,
            headers: dict[str, str] | None,
            body: bytes | None,
            error: str | None,
            sent_at: float,
        ) -> None:
            now = clock()
            self.completed += 1
            if route.keep and error is None:
                state.record(spec, status, headers or {}, body or b"")
            if measured:
                self._record(stats, due, sent_at, now, status, nbytes, error)
            if after is not None:
                after()

        self.transport.submit(payload, head=spec.method == "HEAD", keep=route.keep, done=done)

    def _interval(self, due: float) -> Interval:
        idx = int((due - self.measure_start) / self.interval_s)
        timeline = self.timeline
        while len(timeline) <= idx:
            timeline.append(Interval())
        return timeline[idx]

    def _record(
        self,
        stats: RouteStats,
        due: float,
        sent_at: float,
        now: float,
        status: int,
        nbytes: int,
        error: str | None,
    ) -> None:
        interval = self._interval(due)
        interval.sent += 1
        late = sent_at - due
        self.gen.send_lateness.record(late * 1000.0 if late > 0 else 0.0)
        if error is not None:
            stats.errors[error[:120]] += 1
            interval.errors += 1
            return
        latency = (now - due) * 1000.0
        stats.statuses[status] += 1
        stats.histogram.record(latency)
        stats.bytes_in += nbytes
        interval.histogram.record(latency)
        if status >= 400:
            interval.errors += 1

    # -- loops ---------------------------------------------------------------------------------

    async def run(self) -> BenchResult:
        opts = self.options
        reporter = asyncio.create_task(self._report()) if self.progress else None
        try:
            if opts.stages is not None:
                measured_s = await self._open_loop(opts.stages)
                mode = "open"
            else:
                measured_s = await self._closed_loop()
                mode = "closed"
        finally:
            if reporter is not None:
                reporter.cancel()
            self.transport.close()
        gen = self.gen
        gen.queued_for_connection = self.transport.queued
        gen.connect_errors = self.transport.connect_errors
        reasons = (
            judge_generator(
                gen,
                self.dispatched,
                max_late_fraction=opts.max_late_fraction,
                cpu_limit=opts.cpu_limit,
            )
            if mode == "open" or gen.cpu_rule
            else []
        )
        if mode == "closed":
            reasons = [r for r in reasons if "schedule" not in r]
        rate = None
        if opts.stages is not None and len(opts.stages) == 1:
            rate = opts.stages[0].end_rate
        return BenchResult(
            target="",
            mode=mode,
            duration_s=measured_s,
            routes={r.stats.name: r.stats for r in self.routes},
            timeline=self.timeline,
            interval_s=self.interval_s,
            rate=rate,
            users=opts.users if mode == "closed" else None,
            warmup_s=opts.warmup,
            stages=[(s.duration, s.start_rate, s.end_rate) for s in opts.stages or []],
            generator=gen,
            invalid_reasons=reasons,
            started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            notes=self.notes,
        )

    async def _open_loop(self, stages: Sequence[Stage]) -> float:
        opts = self.options
        clock = self.clock
        measured_len = total_duration(stages)
        if opts.interval_s is None:
            # At most ~600 points on the latency-over-time plot, whatever the run's length.
            self.interval_s = max(1.0, measured_len / 600.0)
        warm_rate = next((s.end_rate for s in stages if s.end_rate > 0), 0.0)
        schedule: Iterable[float] = (opts.warmup + t for t in arrivals(stages))
        if opts.warmup > 0 and warm_rate > 0:
            schedule = itertools.chain(arrivals(constant(warm_rate, opts.warmup)), schedule)
        start = clock() + 0.005
        self.measure_start = start + opts.warmup
        self._start, self._total = start, opts.warmup + measured_len
        tolerance = opts.late_tolerance_ms / 1000.0
        lateness = self.gen.dispatch_lateness
        cpu0: float | None = None
        wall0 = 0.0
        streak = 0
        for offset in schedule:
            due = start + offset
            now = clock()
            if now < due:
                streak = 0
                await self.sleep(due - now)
                now = clock()
            else:
                streak += 1
                if streak >= 64:
                    # Behind schedule: still let responses in, or nothing would complete.
                    streak = 0
                    await asyncio.sleep(0)
                    now = clock()
            if due >= self.measure_start:
                if cpu0 is None:
                    cpu0, wall0 = self.cpu_clock(), now
                late = now - due
                lateness.record(late * 1000.0 if late > 0 else 0.0)
                self.dispatched += 1
                if late > tolerance:
                    self.gen.late_dispatches += 1
            self.fire(due)
        end = start + opts.warmup + measured_len
        if cpu0 is not None:
            # CPU share while sending (before the drain, which only waits).
            now = clock()
            if now > wall0:
                self.gen.cpu_fraction = (self.cpu_clock() - cpu0) / (now - wall0)
        await self._drain(max(end, clock()) + opts.timeout + 0.5)
        return measured_len

    async def _closed_loop(self) -> float:
        opts = self.options
        clock = self.clock
        if opts.users < 1:
            raise ValueError("a closed loop needs users >= 1")
        if opts.interval_s is None:
            self.interval_s = max(1.0, opts.duration / 600.0)
        loop = asyncio.get_running_loop()
        start = clock()
        self.measure_start = start + opts.warmup
        end = self.measure_start + opts.duration
        self._start, self._total = start, opts.warmup + opts.duration

        async def user() -> None:
            while True:
                t0 = clock()
                if t0 >= end:
                    return
                fut: asyncio.Future[None] = loop.create_future()

                def wake(fut: asyncio.Future[None] = fut) -> None:
                    if not fut.done():
                        fut.set_result(None)

                self.fire(t0, wake)
                await fut

        cpu0 = self.cpu_clock()
        await asyncio.gather(*(user() for _ in range(opts.users)))
        wall = clock() - start
        if wall > 0:
            self.gen.cpu_fraction = (self.cpu_clock() - cpu0) / wall
        return opts.duration

    async def _drain(self, deadline: float) -> None:
        # Polling: completions arrive as transport callbacks, not as an awaitable.
        while self.transport.in_flight and self.clock() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    async def _report(self) -> None:
        assert self.progress is not None
        while True:
            await asyncio.sleep(0.25)
            self.progress(self.snapshot())

    def snapshot(self) -> Snapshot:
        """The figures of the last complete interval (or the current one, early on)."""
        start = getattr(self, "_start", self.clock())
        now = self.clock()
        elapsed = now - start
        warming = now < self.measure_start
        idx = int((now - self.measure_start) / self.interval_s) - 1
        recent = self.timeline[idx] if 0 <= idx < len(self.timeline) else None
        hist = recent.histogram if recent is not None else ExpHistogram()
        errors = sum(r.stats.error_count for r in self.routes)
        return Snapshot(
            elapsed_s=elapsed,
            total_s=getattr(self, "_total", 0.0),
            warming_up=warming,
            sent=self.sent,
            completed=self.completed,
            errors=errors,
            rate=(recent.sent / self.interval_s) if recent is not None else 0.0,
            p50_ms=hist.quantile(0.5) if hist.count else float("nan"),
            p99_ms=hist.quantile(0.99) if hist.count else float("nan"),
            in_flight=self.transport.in_flight,
        )
