"""Prometheus exposition of the per-route statistics, through prometheus-client.

A custom :class:`~prometheus_client.registry.Collector` turns :class:`Stats` into metric
families at scrape time, so recording a request touches no prometheus-client object (its
``Histogram.observe`` takes a lock and walks the bucket list: ~1.5 µs with labels).

Metrics (all labelled by ``method`` and ``route``, the route *template*, bounded by
``max_routes``):

- ``lagless_http_request_duration_seconds`` — histogram. Classic ``le`` buckets lie on the base-2
  grid at ``metrics_bucket_scale`` (2: four per doubling, 19% apart, 1 ms to 32 s), so
  ``histogram_quantile(0.99, ...)`` is within one 19% step, where a 0.1/0.5/1 s histogram can
  only say "between 100 ms and 500 ms". The same bounds are Prometheus native-histogram bucket
  boundaries (schema = scale), so ``convert_classic_histograms_to_nhcb`` keeps them exact; a
  scraper that asks for OpenMetrics 2.0 also gets the native histogram itself (schema 5).
- ``lagless_http_requests_total{status_class}`` — counter (``5xx`` is the error rate).
- ``lagless_http_layer_seconds_total{layer}`` — counter of time spent per layer (db, cache,
  http, serialize, mw, app); divided by the request count it is the mean per request.
- ``lagless_http_db_queries`` — histogram of queries per request.
- ``lagless_cache_requests_total{result="hit"|"miss"}`` — counter.
- ``lagless_findings_total{code}`` — counter of detector findings on sampled slow requests.
- ``lagless_browser_request_duration_seconds`` — histogram of what the browser measured.
- ``lagless_monitor_routes`` / ``lagless_monitor_folded_requests_total`` — the cardinality cap
  at work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from lagless._histogram import ExpHistogram
from lagless.monitor._stats import LAYERS, QUERY_BOUNDS, Stats

if TYPE_CHECKING:
    from lagless.monitor._browser import BrowserStats

#: Classic buckets span 2**-10 s (~1 ms) to 2**5 s (32 s).
LOW_EXP: Final = -10
HIGH_EXP: Final = 5


def classic_bounds(scale: int) -> list[float]:
    """``le`` bounds on the base-2 grid at ``scale``: ``2 ** (k / 2**scale)`` seconds."""
    step = 2**scale
    return [2.0 ** (k / step) for k in range(LOW_EXP * step, HIGH_EXP * step + 1)]


def cumulative(hist: ExpHistogram, scale: int) -> list[tuple[float, int]]:
    """``(bound, count <= bound)`` for each classic bound, in one pass over the buckets.

    A bound ``2**(k/2**scale)`` is the upper edge of bucket ``k * 2**(hist.scale-scale) - 1``
    of ``hist``, so each count is exact when ``scale <= hist.scale``; a finer bucket scale than
    the histogram's falls back to :meth:`ExpHistogram.count_le` (never over-counts).
    """
    bounds = classic_bounds(scale)
    if scale > hist.scale:
        return [(b, hist.count_le(b)) for b in bounds]
    ratio = 2 ** (hist.scale - scale)
    items = sorted(hist.counts.items())
    out: list[tuple[float, int]] = []
    total = hist.zero_count
    i = 0
    step = 2**scale
    for k, bound in zip(range(LOW_EXP * step, HIGH_EXP * step + 1), bounds, strict=True):
        edge = k * ratio  # buckets with idx + 1 <= edge lie at or below the bound
        while i < len(items) and items[i][0] + 1 <= edge:
            total += items[i][1]
            i += 1
        out.append((bound, total))
    return out


def native_histogram(hist: ExpHistogram) -> Any:
    """The histogram as a Prometheus native histogram sample (schema = scale).

    OpenTelemetry's bucket ``i`` is ``(base**i, base**(i+1)]``; Prometheus numbers the same
    bucket ``i + 1``. Spans and deltas follow the native-histogram encoding: each span's offset
    is the gap from the previous span, each delta the change from the previous bucket's count.
    """
    from prometheus_client.samples import BucketSpan, NativeHistogram

    spans: list[BucketSpan] = []
    deltas: list[int] = []
    prev_idx: int | None = None
    prev_count = 0
    offset = length = 0
    for idx, n in sorted(hist.counts.items()):
        pidx = idx + 1
        if prev_idx is None:
            offset, length = pidx, 1
        elif pidx == prev_idx + 1:
            length += 1
        else:
            spans.append(BucketSpan(offset, length))
            offset, length = pidx - prev_idx - 1, 1
        deltas.append(n - prev_count)
        prev_count = n
        prev_idx = pidx
    if prev_idx is not None:
        spans.append(BucketSpan(offset, length))
    return NativeHistogram(
        count_value=hist.count,
        sum_value=hist.sum,
        schema=hist.scale,
        zero_threshold=0.0,
        zero_count=hist.zero_count,
        pos_spans=spans or None,
        pos_deltas=deltas or None,
    )


def _fmt(bound: float) -> str:
    from prometheus_client.utils import floatToGoString

    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]


def _histogram(
    family: Any,
    labels: list[str],
    hist: ExpHistogram,
    scale: int,
    *,
    native: bool = False,
) -> None:
    buckets = [(_fmt(b), float(n)) for b, n in cumulative(hist, scale)]
    buckets.append(("+Inf", float(hist.count)))
    family.add_metric(labels, buckets, sum_value=hist.sum)
    if native:
        names = dict(zip(family._labelnames, labels, strict=True))
        family.add_sample(family.name, names, 0.0, native_histogram=native_histogram(hist))


class LaglessCollector:
    """Yields lagless's metric families from whatever ``source()`` returns at scrape time
    (this process's :class:`Stats`, or every worker's merged)."""

    def __init__(
        self,
        source: Callable[[], Stats],
        *,
        bucket_scale: int = 2,
        native: bool = False,
        browser: Callable[[], BrowserStats | None] | None = None,
    ) -> None:
        self.source = source
        self.bucket_scale = min(bucket_scale, 5)
        self.native = native
        self.browser = browser

    def describe(self) -> Iterable[Any]:
        return ()  # collected lazily; nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.metrics_core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        stats = self.source()
        routes = sorted(stats.routes.values(), key=lambda r: (r.route, r.method))
        duration = HistogramMetricFamily(
            "lagless_http_request_duration_seconds",
            "Request duration by route template, as the server measured it.",
            labels=["method", "route"],
        )
        requests = CounterMetricFamily(
            "lagless_http_requests",
            "Requests by route template and status class.",
            labels=["method", "route", "status_class"],
        )
        layers = CounterMetricFamily(
            "lagless_http_layer_seconds",
            "Time spent in each layer (db, cache, http, serialize, mw, app), summed over "
            "requests; over lagless_http_requests_total it is the mean per request.",
            labels=["method", "route", "layer"],
        )
        queries = HistogramMetricFamily(
            "lagless_http_db_queries",
            "Database queries per request.",
            labels=["method", "route"],
        )
        cache = CounterMetricFamily(
            "lagless_cache_requests",
            "Cache lookups by result.",
            labels=["method", "route", "result"],
        )
        for rs in routes:
            base = [rs.method, rs.route]
            _histogram(duration, base, rs.duration, self.bucket_scale, native=self.native)
            for sc, n in sorted(rs.status_classes().items()):
                requests.add_metric([*base, sc], float(n))
            for layer in LAYERS:
                seconds = rs.layer_seconds.get(layer)
                if seconds is not None:
                    layers.add_metric([*base, layer], seconds)
            running = 0
            qbuckets: list[tuple[str, float]] = []
            for bound, n in zip(QUERY_BOUNDS, rs.queries, strict=False):
                running += n
                qbuckets.append((_fmt(float(bound)), float(running)))
            qbuckets.append(("+Inf", float(sum(rs.queries))))
            queries.add_metric(base, qbuckets, sum_value=float(rs.queries_sum))
            if rs.cache_hits or rs.cache_misses:
                cache.add_metric([*base, "hit"], float(rs.cache_hits))
                cache.add_metric([*base, "miss"], float(rs.cache_misses))
        yield duration
        yield requests
        yield layers
        yield queries
        yield cache
        findings = CounterMetricFamily(
            "lagless_findings",
            "Detector findings on sampled slow requests, by code and route.",
            labels=["code", "route"],
        )
        for (code, route), n in sorted(stats.findings.items()):
            findings.add_metric([code, route], float(n))
        yield findings
        browser = self.browser() if self.browser is not None else None
        if browser is not None:
            client = HistogramMetricFamily(
                "lagless_browser_request_duration_seconds",
                "API call duration as the browser measured it (Resource Timing), by route.",
                labels=["route"],
            )
            for route, bs in sorted(browser.routes.items()):
                _histogram(client, [route], bs.total, self.bucket_scale)
            yield client
        yield GaugeMetricFamily(
            "lagless_monitor_routes",
            "Distinct (method, route) pairs tracked (bounded by max_routes).",
            value=float(len(stats.routes)),
        )
        yield CounterMetricFamily(
            "lagless_monitor_folded_requests",
            "Requests counted under route '<other>' because max_routes was reached.",
            value=float(stats.folded),
        )


class _Delegate:
    """Lets a fresh registry include another registry's (or collector's) metrics."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Any]:
        yield from self.inner.collect()


def render(
    stats_source: Callable[[], Stats],
    accept: str = "",
    *,
    bucket_scale: int = 2,
    browser: Callable[[], BrowserStats | None] | None = None,
    multiproc_dir: str | None = None,
    include_default: bool = True,
) -> tuple[bytes, str]:
    """The ``/metrics`` body and its content type, negotiated from ``accept``.

    Besides lagless's own families the output carries the application's prometheus-client
    metrics: the default registry's in a single process, or — when ``PROMETHEUS_MULTIPROC_DIR``
    is set — prometheus-client's :class:`MultiProcessCollector` over that directory, as its
    documentation prescribes for gunicorn-style workers.
    """
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept)
    native = "application/openmetrics-text" in accept and "version=2" in accept
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        LaglessCollector(stats_source, bucket_scale=bucket_scale, native=native, browser=browser)
    )
    if include_default:
        if multiproc_dir:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
        else:
            registry.register(_Delegate(REGISTRY))
    return encoder(registry), content_type
