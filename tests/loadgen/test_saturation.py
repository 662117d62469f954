"""Generator saturation: judged on recorded lateness and CPU, with an injected clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lagless._histogram import ExpHistogram
from lagless._scenario import RequestSpec, ScenarioState
from lagless.loadgen import judge_generator
from lagless.loadgen._engine import LoadOptions, Runner
from lagless.loadgen._results import Generator
from lagless.loadgen._schedule import constant


def _gen(late: int, total: int, cpu: float | None = 0.2, cpu_rule: bool = True) -> Generator:
    g = Generator(late_tolerance_ms=10.0, cpu_rule=cpu_rule, cpu_fraction=cpu)
    g.dispatch_lateness = ExpHistogram()
    g.dispatch_lateness.record_many([0.5] * (total - late) + [25.0] * late)
    g.late_dispatches = late
    return g


def test_a_generator_that_kept_up_is_valid() -> None:
    assert judge_generator(_gen(late=5, total=1000), 1000) == []


def test_late_dispatches_beyond_the_tolerance_invalidate() -> None:
    reasons = judge_generator(_gen(late=50, total=1000), 1000)
    assert len(reasons) == 1
    assert "5.0% of requests were dispatched more than 10 ms late" in reasons[0]


def test_a_pinned_cpu_invalidates_unless_the_rule_is_off() -> None:
    reasons = judge_generator(_gen(late=0, total=1000, cpu=0.98), 1000)
    assert len(reasons) == 1 and "CPU was pinned (98% of a core)" in reasons[0]
    assert judge_generator(_gen(late=0, total=1000, cpu=0.98, cpu_rule=False), 1000) == []


class InstantTransport:
    """Answers every request at once with 200 (no I/O)."""

    queued = 0
    connect_errors = 0
    max_connections = 1

    def __init__(self) -> None:
        self.sent = 0

    def encode(self, method: str, url: str, headers: Any = (), body: Any = None) -> bytes:
        return f"{method} {url}".encode()

    def submit(self, payload: Any, *, head: bool, keep: bool, done: Any) -> None:
        self.sent += 1
        asyncio.get_running_loop().call_soon(done, 200, 2, None, None, None, 0.0)

    @property
    def in_flight(self) -> int:
        return 0

    def close(self) -> None:
        pass


class SlowClock:
    """A clock that advances ``step`` seconds on every reading: each time the scheduler looks
    at it, it is later than planned, as when the generator's own work eats the schedule."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def _run(step: float) -> Any:
    spec = RequestSpec(method="GET", path="/", name="GET /")
    options = LoadOptions(stages=constant(1000, 0.2), late_tolerance_ms=10.0)
    transport = InstantTransport()
    clock = SlowClock(step)

    async def sleep(seconds: float) -> None:
        clock.now += seconds  # the fake clock moves; the real one hardly does
        await asyncio.sleep(0)

    runner = Runner(
        transport,
        [spec],
        ScenarioState(),
        options,
        clock=clock,
        cpu_clock=lambda: clock.now * 0.25,  # a quarter of a core busy
        sleep=sleep,
    )
    return asyncio.run(runner.run()), transport


def test_a_generator_falling_behind_its_schedule_is_flagged() -> None:
    # Every clock reading is 30 ms after the previous one, far more than the 1 ms between
    # requests at 1000/s: the scheduler is always behind, by more and more.
    result, transport = _run(step=0.03)
    assert transport.sent == 200
    assert not result.valid
    assert "fell behind its schedule" in result.invalid_reasons[0]
    assert result.generator.late_dispatches > 190


def test_a_generator_on_time_is_valid() -> None:
    # Readings 10 us apart: the scheduler is never late by the 10 ms tolerance.
    result, transport = _run(step=0.00001)
    assert transport.sent == 200
    assert result.valid, result.invalid_reasons
    assert result.generator.late_dispatches == 0
    assert result.routes["GET /"].histogram.count == 200
    assert result.generator.cpu_fraction == pytest.approx(0.25)
