"""Per-route statistics: accuracy, layers, bounded cardinality, windows, merging."""

from __future__ import annotations

import math
import random

import pytest

from lagless.monitor._stats import OTHER, UNMATCHED, Stats, Window
from tests.monitor._traces import FakeClock, make_trace


def exact_quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (the definition ExpHistogram.quantile uses)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@pytest.mark.parametrize(
    "draw",
    [
        lambda rnd: rnd.lognormvariate(math.log(0.02), 1.0),  # web latency: 20 ms median
        lambda rnd: rnd.expovariate(1 / 0.005),  # 5 ms mean
        lambda rnd: rnd.uniform(0.0001, 30.0),  # 0.1 ms .. 30 s
        lambda rnd: rnd.choice([0.001, 0.25]) * rnd.uniform(0.9, 1.1),  # bimodal
    ],
    ids=["lognormal", "exponential", "uniform-wide", "bimodal"],
)
def test_route_percentiles_within_the_stated_error_bound(draw: object) -> None:
    """Every reported quantile is within ExpHistogram's bound (±1.09% at scale 5) of the
    exact nearest-rank quantile of the same data."""
    rnd = random.Random(42)
    stats = Stats(clock=FakeClock())
    values: list[float] = []
    for _ in range(20_000):
        seconds = draw(rnd)  # type: ignore[operator]
        values.append(round(seconds * 1e9) / 1e9)
        stats.observe(make_trace(duration_ms=values[-1] * 1000))
    hist = stats.routes[("GET", "/items/{id}")].duration
    bound = hist.relative_error
    assert bound == pytest.approx(0.0109, abs=1e-4)
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        exact = exact_quantile(values, q)
        assert abs(hist.quantile(q) - exact) <= exact * bound + 1e-12, q


def test_layers_split_the_request_and_overlapping_spans_count_once() -> None:
    stats = Stats(clock=FakeClock())
    trace = make_trace(
        duration_ms=100,
        spans=[
            # Two queries run concurrently (gather): 10..40 and 20..50 -> 40 ms of db.
            ("db", "SELECT 1", 10, 30, None),
            ("db", "SELECT 2", 20, 30, None),
            ("cache", "GET k", 60, 5, {"hit": True}),
            ("cache", "GET j", 66, 4, {"hit": False}),
            ("http", "GET https://api/x", 70, 10, None),
            ("middleware", "Auth", 0, 3, None),
            ("handler", "item", 5, 90, None),
        ],
    )
    rs = stats.observe(trace)
    layer_ms = {name: seconds * 1000 for name, seconds in rs.layer_seconds.items()}
    assert layer_ms["db"] == pytest.approx(40)
    assert layer_ms["cache"] == pytest.approx(9)
    assert layer_ms["http"] == pytest.approx(10)
    assert layer_ms["mw"] == pytest.approx(3)
    assert layer_ms["app"] == pytest.approx(100 - 40 - 9 - 10 - 3)
    assert (rs.cache_hits, rs.cache_misses) == (1, 1)
    assert rs.queries_sum == 2
    assert rs.queries[2] == 1  # the "<= 2 queries" slot


def test_unknown_paths_fold_into_one_bucket_and_routes_are_capped() -> None:
    stats = Stats(max_routes=50, clock=FakeClock())
    for i in range(10_000):
        stats.observe(make_trace(None, path=f"/crawler/{i}"))
    assert list(stats.routes) == [("GET", UNMATCHED)]
    for i in range(10_000):
        stats.observe(make_trace(f"/r{i}/{{id}}"))
    assert len(stats.routes) <= 50 + 10
    other = stats.routes[("GET", OTHER)]
    assert other.count == stats.folded
    assert stats.folded == 10_000 - (50 - 2)  # 50 minus <unmatched> minus the <other> slot
    assert sum(rs.count for rs in stats.routes.values()) == 20_000


def test_junk_methods_do_not_create_entries() -> None:
    stats = Stats(clock=FakeClock())
    for i in range(100):
        stats.observe(make_trace(method=f"X{i}"))
    assert list(stats.routes) == [("_OTHER", "/items/{id}")]


def test_throughput_window_follows_the_clock() -> None:
    clock = FakeClock(1000.0)
    stats = Stats(clock=clock)
    for second in range(5):
        for _ in range(second + 1):
            stats.observe(make_trace(status=500 if second == 4 else 200))
        clock.advance(1)
    rs = stats.routes[("GET", "/items/{id}")]
    now = stats.now() - 1
    assert rs.window.series(now)[-5:] == [1, 2, 3, 4, 5]
    assert rs.window.totals(now, 2) == (9, 5)
    clock.advance(120)  # everything ages out of the minute
    assert rs.window.totals(stats.now(), 60) == (0, 0)
    assert rs.errors == 5


def test_window_merge_adds_the_same_seconds() -> None:
    a, b = Window(), Window()
    a.add(100, False)
    a.add(101, True)
    b.add(101, False, 3)
    b.add(130, False)
    a.merge(b)
    assert a.totals(130, 60) == (6, 1)
    assert a.series(130)[-30] == 4  # second 101


def test_merge_equals_recording_everything_in_one_place() -> None:
    rnd = random.Random(7)
    one = Stats(clock=FakeClock())
    parts = [Stats(clock=FakeClock()) for _ in range(3)]
    for i in range(3000):
        trace = make_trace(
            f"/r{i % 5}",
            duration_ms=rnd.uniform(1, 200),
            status=rnd.choice([200, 200, 404, 503]),
            spans=[("db", "SELECT 1", 0, 0.5, None)] * rnd.randint(0, 4),
        )
        one.observe(trace)
        parts[i % 3].observe(trace)
    merged = Stats(clock=FakeClock())
    for part in parts:
        merged.merge(Stats.from_dict(part.to_dict()))
    for key, rs in one.routes.items():
        other = merged.routes[key]
        assert other.duration.counts == rs.duration.counts
        assert other.statuses == rs.statuses
        assert other.queries == rs.queries
        assert other.duration.quantile(0.99) == rs.duration.quantile(0.99)
        assert other.layer_seconds["db"] == pytest.approx(rs.layer_seconds["db"])


def test_max_routes_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Stats(max_routes=0)
