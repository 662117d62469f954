"""``/metrics``: parsed back with prometheus-client's own parsers."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import httpx
import pytest

pytest.importorskip("prometheus_client")

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_families,
)
from prometheus_client.parser import text_string_to_metric_families

from lagless._histogram import ExpHistogram
from lagless._runtime import Runtime
from lagless.monitor import MetricsApp, Monitor, metrics_wsgi_app
from lagless.monitor._prometheus import classic_bounds, cumulative, render
from lagless.monitor._stats import Stats
from tests.monitor._traces import FakeClock, make_trace


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def buckets_of(family: Any, **labels: str) -> list[tuple[float, float]]:
    out = []
    for s in family.samples:
        if s.name.endswith("_bucket") and all(s.labels.get(k) == v for k, v in labels.items()):
            out.append((float(s.labels["le"]), s.value))
    return sorted(out)


def test_classic_bounds_are_exact_on_the_exponential_grid() -> None:
    rnd = random.Random(3)
    hist = ExpHistogram(5)
    values = [rnd.lognormvariate(math.log(0.05), 1.5) for _ in range(5000)]
    for v in values:
        hist.record(v)
    for scale in (0, 1, 2, 3, 5):
        for bound, n in cumulative(hist, scale):
            # Values exactly on a bound would be ambiguous in floating point; none are here.
            assert n == sum(1 for v in values if v <= bound), (scale, bound)
    assert len(classic_bounds(2)) == 61
    assert classic_bounds(2)[0] == 2**-10 and classic_bounds(2)[-1] == 32.0


def test_metrics_text_parses_and_carries_every_family() -> None:
    stats = Stats(clock=FakeClock())
    rnd = random.Random(1)
    durations = []
    for i in range(1000):
        d = rnd.uniform(1, 400)
        durations.append(d / 1000)
        stats.observe(
            make_trace(
                "/users/{id}",
                duration_ms=d,
                status=500 if i % 100 == 0 else 200,
                spans=[
                    ("db", "SELECT 1", 0, 0.5, None),
                    ("db", "SELECT 2", 1, 0.5, None),
                    ("cache", "GET k", 2, 0.1, {"hit": i % 4 != 0}),
                ],
            )
        )
    stats.observe(make_trace("/health", method="HEAD", duration_ms=0.2))
    stats.add_findings("/users/{id}", ["n-plus-one", "n-plus-one", "duplicate-query"])
    body, content_type = render(lambda: stats, "", include_default=False)
    assert content_type.startswith("text/plain")
    fams = families(body.decode())
    duration = fams["lagless_http_request_duration_seconds"]
    assert duration.type == "histogram"
    buckets = buckets_of(duration, route="/users/{id}", method="GET")
    assert len(buckets) == 62  # 61 grid bounds + Inf
    for le, n in buckets:
        assert n == sum(1 for d in durations if d <= le)
    total = [
        s
        for s in duration.samples
        if s.name.endswith("_count") and s.labels["route"] == "/users/{id}"
    ]
    assert total[0].value == 1000
    requests = {
        (s.labels["route"], s.labels["status_class"]): s.value
        for s in fams["lagless_http_requests"].samples
        if s.name.endswith("_total")
    }
    assert requests[("/users/{id}", "5xx")] == 10
    assert requests[("/users/{id}", "2xx")] == 990
    assert requests[("/health", "2xx")] == 1
    queries = buckets_of(fams["lagless_http_db_queries"], route="/users/{id}")
    assert dict(queries)[1.0] == 0 and dict(queries)[2.0] == 1000
    cache = {
        s.labels["result"]: s.value
        for s in fams["lagless_cache_requests"].samples
        if s.name.endswith("_total")
    }
    assert cache == {"hit": 750, "miss": 250}
    layers = {
        s.labels["layer"]: s.value
        for s in fams["lagless_http_layer_seconds"].samples
        if s.name.endswith("_total")
    }
    assert set(layers) == {"db", "cache", "app"}
    assert layers["db"] == pytest.approx(1000 * 0.001)  # two 0.5 ms queries, 1000 requests
    assert layers["cache"] == pytest.approx(1000 * 0.0001)
    found = {
        s.labels["code"]: s.value
        for s in fams["lagless_findings"].samples
        if s.name.endswith("_total")
    }
    assert found == {"n-plus-one": 2, "duplicate-query": 1}
    assert fams["lagless_monitor_routes"].samples[0].value == 2


def test_histogram_quantile_from_classic_buckets_is_within_one_step() -> None:
    """What a Prometheus p99 alert computes (linear interpolation in the bucket holding the
    rank) lands within the 19% step of the default bucket scale."""
    stats = Stats(clock=FakeClock())
    rnd = random.Random(9)
    values = sorted(rnd.lognormvariate(math.log(0.03), 0.8) for _ in range(10_000))
    for v in values:
        stats.observe(make_trace(duration_ms=v * 1000))
    body, _ = render(lambda: stats, "", include_default=False)
    buckets = buckets_of(families(body.decode())["lagless_http_request_duration_seconds"])
    rank = 0.99 * len(values)
    prev_le, prev_n = 0.0, 0.0
    for le, n in buckets:
        if n >= rank:
            estimate = prev_le + (le - prev_le) * (rank - prev_n) / (n - prev_n)
            break
        prev_le, prev_n = le, n
    exact = values[math.ceil(rank) - 1]
    assert abs(estimate - exact) / exact < 2 ** (1 / 4) - 1


def test_openmetrics_2_carries_the_native_histogram() -> None:
    stats = Stats(clock=FakeClock())
    values = [0.001, 0.002, 0.002, 0.5, 3.0]
    for v in values:
        stats.observe(make_trace(duration_ms=v * 1000))
    body, content_type = render(
        lambda: stats, "application/openmetrics-text; version=2.0.0", include_default=False
    )
    assert content_type.startswith("application/openmetrics-text")
    fams = {f.name: f for f in om_families(body.decode())}
    native = [
        s.native_histogram
        for s in fams["lagless_http_request_duration_seconds"].samples
        if s.native_histogram is not None
    ]
    assert len(native) == 1
    nh = native[0]
    assert nh.schema == 5 and nh.count_value == 5 and nh.sum_value == pytest.approx(sum(values))
    # prometheus-client 0.26's parser drops spans with a negative offset (buckets under 1 s
    # have negative indices, which the native-histogram format allows), so read them here.
    line = next(x for x in body.decode().splitlines() if "schema:" in x)
    spans = [
        tuple(map(int, p.split(":")))
        for p in re.search(r"positive_spans:\[([^]]*)\]", line)[1].split(",")
    ]
    deltas = [int(x) for x in re.search(r"positive_deltas:\[([^]]*)\]", line)[1].split(",")]
    # Rebuild bucket counts from spans and deltas and compare with the histogram's own.
    counts: dict[int, int] = {}
    idx, running, d = 0, 0, 0
    for offset, length in spans:
        idx += offset
        for _ in range(length):
            running += deltas[d]
            d += 1
            counts[idx] = running
            idx += 1
    hist = stats.routes[("GET", "/items/{id}")].duration
    assert counts == {i + 1: n for i, n in hist.counts.items()}
    base = 2 ** (2**-5)
    for pidx in counts:  # Prometheus bucket i is (base**(i-1), base**i]
        assert any(base ** (pidx - 1) < v <= base**pidx * (1 + 1e-12) for v in values)
    # A 1.x scraper gets the same classic buckets and no native sample.
    body1, _ = render(
        lambda: stats, "application/openmetrics-text; version=1.0.0", include_default=False
    )
    assert "schema:" not in body1.decode()


def test_application_metrics_from_the_default_registry_are_included(monkeypatch: Any) -> None:
    import prometheus_client

    registry = CollectorRegistry()
    Counter("app_orders", "Orders placed.", registry=registry).inc(3)
    monkeypatch.setattr(prometheus_client, "REGISTRY", registry)
    stats = Stats(clock=FakeClock())
    body, _ = render(lambda: stats, "")
    fams = families(body.decode())
    assert fams["app_orders"].samples[0].value == 3
    assert "lagless_http_request_duration_seconds" in fams


async def test_metrics_over_asgi_wsgi_and_the_monitor_middleware(fresh_runtime: Runtime) -> None:
    fresh_runtime.configure(metrics=True)
    mon = Monitor(runtime=fresh_runtime, clock=FakeClock(), background=False).install()
    mon.observe(make_trace())
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=MetricsApp(monitor=mon)), base_url="http://t"
    ) as client:
        r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    count = [
        s.value
        for s in families(r.text)["lagless_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert count == [1.0]
    with httpx.Client(
        transport=httpx.WSGITransport(app=metrics_wsgi_app(monitor=mon)), base_url="http://t"
    ) as wc:
        w = wc.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert w.headers["content-type"].startswith("application/openmetrics-text")
    assert "lagless_http_request_duration_seconds" in {f.name for f in om_families(w.text)}
    mon.uninstall()
