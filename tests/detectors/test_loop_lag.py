from __future__ import annotations

import asyncio

import pytest

from lagless._loop_lag import LoopLagProbe, ensure_probe, stop_probe
from lagless.detectors import analyze

from ._build import T0, make_trace, ns


def test_late_ticks_become_stalls_and_overlap_the_trace_window():
    probe = LoopLagProbe(interval_ms=5, min_lag_ms=1)
    probe.note_tick(ns(10), ns(10.5))  # 0.5 ms late: scheduling noise, ignored
    probe.note_tick(ns(20), ns(80))  # stuck 60 ms
    probe.note_tick(ns(150), ns(170))  # stuck 20 ms, half inside the window below
    assert probe.lag_between(ns(0), ns(100)) == 60.0
    assert probe.lag_between(ns(50), ns(160)) == 40.0
    assert probe.lag_between(ns(200), ns(300)) == 0.0


def test_ring_is_bounded():
    probe = LoopLagProbe(capacity=2)
    for i in range(5):
        probe.note_tick(ns(i * 10), ns(i * 10 + 5))
    assert probe.lag_between(ns(0), ns(100)) == 10.0  # only the last two stalls are kept


def test_listener_attaches_lag_to_the_trace_and_the_detector_reads_it():
    probe = LoopLagProbe()
    probe.note_tick(ns(20), ns(140))
    trace = make_trace("/slow", duration_ms=200)
    probe.listener(trace)
    assert trace.attrs["loop_lag_ms"] == 120.0
    [finding] = analyze([trace], mode="production")
    assert finding.code == "blocking-call" and finding.potential


async def test_run_measures_lateness_with_an_injected_clock():
    # the first tick is due 5 ms after T0 and runs at +50 ms; the clock then stands still
    readings = [T0, T0 + 50_000_000]

    def clock() -> int:
        return readings.pop(0) if len(readings) > 1 else readings[0]

    probe = LoopLagProbe(interval_ms=5, clock=clock)
    task = asyncio.ensure_future(probe.run())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert probe.lag_between(T0, T0 + 100_000_000) == 45.0


async def test_ensure_probe_is_opt_in(fresh_runtime):
    assert ensure_probe(fresh_runtime) is None
    fresh_runtime.configure(loop_lag_probe=True)
    probe = ensure_probe(fresh_runtime)
    try:
        assert probe is not None and probe.running
        assert ensure_probe(fresh_runtime) is probe  # one per loop
        assert probe.listener in fresh_runtime._listeners
    finally:
        stop_probe(fresh_runtime)
    assert probe.listener not in fresh_runtime._listeners
    await asyncio.sleep(0)
    assert not probe.running


def test_no_loop_no_probe(fresh_runtime):
    fresh_runtime.configure(loop_lag_probe=True)
    assert ensure_probe(fresh_runtime) is None
