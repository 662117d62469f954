"""Slow-request sampling: who is kept, how many, at what rate, with which findings."""

from __future__ import annotations

from lagless._runtime import Runtime
from lagless.monitor import Monitor
from lagless.monitor._sampling import MIN_FOR_P99, SlowSampler
from lagless.monitor._stats import Stats
from tests.monitor._traces import FakeClock, make_trace


def n_plus_one_trace() -> object:
    spans = [("db", "SELECT id FROM books", 0, 2, {"params_hash": "p"})]
    for i in range(12):
        spans.append(
            ("db", "SELECT * FROM authors WHERE id = ?", 3 + i * 10, 9, {"params_hash": f"h{i}"})
        )
    return make_trace("/books", duration_ms=700, spans=spans)


def sampler(**kw: object) -> tuple[SlowSampler, Stats, FakeClock]:
    clock = FakeClock(100.0)
    stats = Stats(clock=FakeClock())
    options: dict[str, object] = {
        "threshold_ms": 500.0,
        "capacity": 5,
        "rate": 2.0,
        "clock": clock,
        "wall": clock,
        "analyze": None,
        "background": False,
    }
    options.update(kw)
    return SlowSampler(**options), stats, clock  # type: ignore[arg-type]


def test_requests_over_the_threshold_are_kept_and_fast_ones_are_not() -> None:
    s, stats, _ = sampler()
    fast = make_trace(duration_ms=20)
    slow = make_trace(duration_ms=600)
    assert s.consider(fast, stats.observe(fast)) is None
    kept = s.consider(slow, stats.observe(slow))
    assert kept is not None and kept.reason == "threshold"
    assert [x.trace for x in s.recent()] == [slow]


def test_requests_over_their_routes_p99_are_kept_once_the_route_has_history() -> None:
    s, stats, clock = sampler(threshold_ms=0.0, rate=1000.0, capacity=50)
    for i in range(MIN_FOR_P99 + 200):
        trace = make_trace(duration_ms=10 + (i % 10))  # 10..19 ms
        s.consider(trace, stats.observe(trace))
        clock.advance(0.01)
    assert s.recent() == []  # never over its own p99 (ties are not "over")
    outlier = make_trace(duration_ms=90)
    kept = s.consider(outlier, stats.observe(outlier))
    assert kept is not None and kept.reason == "p99"
    assert 17 <= kept.p99_ms <= 20


def test_the_store_is_bounded_and_admission_is_rate_limited() -> None:
    s, stats, clock = sampler(rate=2.0, capacity=5)
    kept = 0
    for _second in range(10):
        for _ in range(100):  # a latency storm: every request is slow
            trace = make_trace(duration_ms=900)
            kept += s.consider(trace, stats.observe(trace)) is not None
        clock.advance(1.0)
    # A burst of 2 at the start, then 2 a second: flat, however many requests are slow.
    assert kept == 2 + 9 * 2
    assert s.dropped == 1000 - kept
    assert len(s.samples) == 5


def test_findings_are_attached_to_samples_and_counted_per_route(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(slow_sample_ms=500)
    mon = Monitor(runtime=fresh_runtime, clock=FakeClock(), monotonic=FakeClock(), background=False)
    mon.install()
    fresh_runtime.finish_trace(n_plus_one_trace())  # type: ignore[arg-type]
    assert mon.process_pending() == 1
    (sample,) = mon.sampler.recent()
    codes = {f["code"] for f in sample.findings or []}
    assert "n-plus-one" in codes
    assert mon.stats.findings[("n-plus-one", "/books")] == 1
    data = sample.to_dict()
    assert data["route"] == "/books" and data["duration_ms"] == 700
    assert data["spans"][1]["offset_ms"] == 3 and data["spans"][1]["duration_ms"] == 9
    mon.uninstall()


def test_an_analyser_that_fails_leaves_the_sample_without_findings() -> None:
    def broken(trace: object) -> list[dict[str, object]]:
        raise RuntimeError("detector bug")

    s, stats, _ = sampler(analyze=broken)
    trace = make_trace(duration_ms=800)
    s.consider(trace, stats.observe(trace))
    assert s.process_pending() == 1
    assert s.recent()[0].findings == []


def test_background_analysis_runs_on_its_own_thread() -> None:
    import threading

    done = threading.Event()

    def analyze(trace: object) -> list[dict[str, object]]:
        done.set()
        return [{"code": "x"}]

    s, stats, _ = sampler(analyze=analyze, background=True)
    trace = make_trace(duration_ms=800)
    s.consider(trace, stats.observe(trace))
    assert done.wait(10)


def test_findings_on_unmatched_paths_are_counted_under_a_bounded_route() -> None:
    # Regression: findings were keyed by the raw path of an unmatched request, so a scanner
    # hitting slow random URLs grew the findings table (and /metrics labels) without bound.
    def analyze(trace: object) -> list[dict[str, object]]:
        return [{"code": "slow-middleware"}]

    s, stats, clock = sampler(analyze=analyze, rate=1000.0, capacity=50)
    s.on_findings = stats.add_findings
    for i in range(20):
        trace = make_trace(None, path=f"/wp-admin/{i}.php", duration_ms=700, status=404)
        s.consider(trace, stats.observe(trace))
        clock.advance(1.0)
    s.process_pending()
    assert stats.findings == {("slow-middleware", "<unmatched>"): 20}
    assert s.recent()[0].to_dict()["path"].startswith("/wp-admin/")  # the sample keeps it
