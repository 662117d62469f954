"""What per-route monitoring costs a request, and what it holds in memory.

    python bench/monitoring.py            # full run, about a minute and a half
    python bench/monitoring.py --quick    # a rough pass in about twenty seconds
    python bench/monitoring.py --check    # exit 1 when a target is missed

Part 1, cost per request. One FastAPI app (``GET /items/{item_id}``: one sqlite3 query, a small
JSON body) in four arms built side by side in this process and called as raw ASGI callables,
one request of each arm in turn, each timed on its own:

- ``bare``: no instrumentation;
- ``lagless``: ``lagless.instrument(app)`` behind ``lagless.monitor.monitor(app, metrics=True)``:
  a trace per request with the query as a span, Server-Timing, and the per-route request
  histogram, layer histograms, status counts, throughput window and slow-sample check that
  ``/metrics`` and the dashboard read;
- ``lagless, tracing only``: the same without the monitor, for reference (the difference is
  what the per-route statistics cost);
- ``instrumentator``: prometheus-fastapi-instrumentator's defaults
  (``Instrumentator().instrument(app)``: request count, duration and size metrics per handler);
- ``otel``: OpenTelemetry's ASGI middleware with the SDK's tracer provider (batch processor,
  an exporter that drops spans) and meter provider (its request-duration histogram).

Part 2, memory. 1,000,000 traces recorded through the monitor's listener over 10,000 distinct
route templates (the worst case: a route table that never stops growing; unknown *paths* fold
into ``<unmatched>`` anyway), then the monitor's retained size is measured by walking its
objects (``sys.getsizeof`` over the whole graph) and the process's RSS growth is printed as a
cross-check. The same run with the route cap lifted shows what the cap saves.

Targets (issue 6): lagless with metrics costs less per request than either peer; the memory held
after a million requests over 10,000 paths is bounded (stated in MB; target < 50 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import random
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _apps import ASGIProbe, fetch_item, make_db
from _common import alternate, otel_tracer_provider, verdict
from rich.console import Console
from rich.table import Table

import lagless
from lagless._runtime import get_runtime
from lagless._trace import Trace

console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
TARGET_MEMORY_MB = 50.0
ROUTES = 10_000
REQUESTS = 1_000_000


def fastapi_app(conn: Callable[[], Any]) -> Any:
    """The app; ``conn()`` gives its database (so lagless's arm can make its own after
    ``instrument()`` installed the sqlite3 integration)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, Any]:
        return fetch_item(conn(), item_id)

    return app


def _db(plain: bool) -> Callable[[], Any]:
    conn = make_db(plain=plain)
    return lambda: conn


def build_arms(loop: asyncio.AbstractEventLoop) -> tuple[dict[str, ASGIProbe], list[str]]:
    """The four arms, and notes on what could not be built."""
    notes: list[str] = []
    arms: dict[str, ASGIProbe] = {"bare": ASGIProbe(fastapi_app(_db(plain=True)), loop)}

    from lagless.monitor import monitor

    get_runtime().configure(metrics=True, slow_request_ms=0)
    holder: list[Any] = []
    instrumented = lagless.instrument(fastapi_app(lambda: holder[0]))
    # Made after instrument() installed the sqlite3 integration, so its queries are traced.
    holder.append(make_db())
    arms["lagless"] = ASGIProbe(monitor(instrumented), loop)

    # For reference: lagless's tracing alone, on a runtime of its own with no monitor listening,
    # so the difference to "lagless" is what the per-route statistics cost.
    from lagless._config import load_config
    from lagless._runtime import Runtime
    from lagless.integrations.starlette import instrument_starlette

    bare_rt = Runtime(load_config(pyproject=False, env={}, slow_request_ms=0))
    traced_only = instrument_starlette(fastapi_app(lambda: holder[0]), runtime=bare_rt)
    arms["lagless, tracing only"] = ASGIProbe(traced_only, loop)

    try:
        from prometheus_fastapi_instrumentator import Instrumentator

        app = fastapi_app(_db(plain=True))
        Instrumentator().instrument(app)
        arms["instrumentator"] = ASGIProbe(app, loop)
    except ImportError:
        notes.append("prometheus-fastapi-instrumentator is not installed: arm skipped")

    otel = otel_tracer_provider()
    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    except ImportError:
        otel = None
    if otel is None:
        notes.append("opentelemetry-instrumentation-asgi / SDK not installed: arm skipped")
    else:
        provider, _count = otel
        meters = MeterProvider(metric_readers=[InMemoryMetricReader()])
        arms["otel"] = ASGIProbe(
            OpenTelemetryMiddleware(
                fastapi_app(_db(plain=True)), tracer_provider=provider, meter_provider=meters
            ),
            loop,
        )
    return arms, notes


def check_arms(arms: dict[str, ASGIProbe], loop: asyncio.AbstractEventLoop) -> None:
    """Each arm must really do its work before it is timed."""
    from lagless.monitor import get_monitor

    mon = get_monitor()
    assert mon is not None
    for name, probe in arms.items():
        loop.run_until_complete(probe.once())
        assert probe.status == 200, (name, probe.status)
    rs = mon.stats.routes[("GET", "/items/{item_id}")]
    assert rs.count == 1, "only the lagless arm reaches the monitor"
    assert rs.count >= 1 and rs.queries_sum >= 1, "lagless arm records nothing"
    if "instrumentator" in arms:
        from prometheus_client import REGISTRY

        value = REGISTRY.get_sample_value(
            "http_requests_total", {"handler": "/items/{item_id}", "method": "GET", "status": "2xx"}
        )
        assert value and value >= 1, "instrumentator arm records nothing"


def per_request(iterations: int) -> tuple[Table, dict[str, float], list[str]]:
    loop = asyncio.new_event_loop()
    arms, notes = build_arms(loop)
    check_arms(arms, loop)
    result = alternate(
        {name: probe.once for name, probe in arms.items()}, iterations=iterations, loop=loop
    )
    loop.close()
    table = Table(title=f"Cost per request, in process ({iterations:,} requests per arm)")
    table.add_column("arm")
    table.add_column("median µs/request", justify="right")
    table.add_column("added over bare, µs", justify="right")
    added: dict[str, float] = {}
    for name in arms:
        extra = result.added(name, "bare") if name != "bare" else 0.0
        added[name] = extra
        table.add_row(
            name, f"{result.median(name):.1f}", "-" if name == "bare" else f"{extra:+.1f}"
        )
    return table, added, notes


# -- memory ----------------------------------------------------------------------------------------


def deep_size(root: Any) -> int:
    """Bytes held by ``root`` and everything reachable from it that it owns (modules, classes
    and functions are shared, not counted)."""
    seen: set[int] = set()
    stack = [root]
    total = 0
    skip = (type, type(sys), type(deep_size), type(len))
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, skip):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif hasattr(obj, "__dict__") or hasattr(type(obj), "__slots__"):
            if hasattr(obj, "__dict__"):
                stack.append(vars(obj))
            for cls in type(obj).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    value = getattr(obj, slot, None)
                    if value is not None and not callable(value):
                        stack.append(value)
    return total


def _rss() -> int:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except ImportError:
        import resource

        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def record_many(requests: int, routes: int, *, max_routes: int) -> tuple[float, float, float, int]:
    """Record ``requests`` traces over ``routes`` templates through a fresh monitor; returns
    (held MB, RSS growth MB, µs per recorded trace, routes tracked)."""
    from lagless.monitor import Monitor

    rt = get_runtime()
    rt.configure(metrics=True, max_routes=max_routes, slow_sample_ms=500.0)
    gc.collect()
    rss0 = _rss()
    mon = Monitor(runtime=rt, background=False)
    rnd = random.Random(1)
    durations = [rnd.lognormvariate(math.log(0.02), 1.0) for _ in range(4096)]
    start = 0
    spent = 0
    for i in range(requests):
        trace = Trace("GET", f"/r{i % routes}/7", route=f"/r{i % routes}/{{id}}", start_ns=start)
        d = int(durations[i & 4095] * 1e9)
        trace.add_span("db", "SELECT 1", start + d // 10, start + d // 3, None)
        trace.add_span("cache", "GET k", start + d // 2, start + d // 2 + 1000, {"hit": i % 3 > 0})
        trace.status = 200 if i % 50 else 500
        trace.duration_ns = d
        t0 = time.perf_counter_ns()
        mon.observe(trace)
        spent += time.perf_counter_ns() - t0
    gc.collect()
    held = deep_size(mon.stats) + deep_size(mon.sampler.samples)
    return held / 1e6, (_rss() - rss0) / 1e6, spent / requests / 1000, len(mon.stats.routes)


def memory(requests: int, full: bool) -> tuple[Table, float]:
    table = Table(title=f"Memory after {requests:,} requests over {ROUTES:,} distinct routes")
    table.add_column("monitor")
    table.add_column("routes tracked", justify="right")
    table.add_column("held, MB", justify="right")
    table.add_column("RSS growth, MB", justify="right")
    table.add_column("µs per record", justify="right")
    held, rss, us, tracked = record_many(requests, ROUTES, max_routes=100)
    table.add_row(
        "lagless (max_routes=100, default)",
        f"{tracked:,}",
        f"{held:.1f}",
        f"{rss:.1f}",
        f"{us:.2f}",
    )
    if full:
        h2, r2, us2, t2 = record_many(requests // 4, ROUTES, max_routes=ROUTES + 10)
        table.add_row(
            f"lagless, cap lifted ({requests // 4:,} requests)",
            f"{t2:,}",
            f"{h2:.1f}",
            f"{r2:.1f}",
            f"{us2:.2f}",
        )
    return table, held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a rough pass (~20 s)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(
        f"load average {load:.2f} on {os.cpu_count()} CPUs; Python {sys.version.split()[0]}"
    )
    iterations = 3000 if args.quick else 15000
    requests = 200_000 if args.quick else REQUESTS
    table, added, notes = per_request(iterations)
    console.print(table)
    peers = {k: v for k, v in added.items() if k in ("instrumentator", "otel")}
    cheaper = all(added["lagless"] < v for v in peers.values()) if peers else None
    for peer, cost in peers.items():
        ratio = cost / added["lagless"] if added["lagless"] > 0 else float("inf")
        console.print(f"  {peer} adds {ratio:.1f}x what lagless with metrics adds")
    console.print(f"lagless with metrics cheaper than every peer: {verdict(cheaper)}")
    mem_table, held = memory(requests, full=not args.quick)
    console.print(mem_table)
    bounded = held < TARGET_MEMORY_MB
    console.print(
        f"memory held after {requests:,} requests: {held:.1f} MB "
        f"(target < {TARGET_MEMORY_MB:.0f} MB): {verdict(bounded)}"
    )
    for note in notes:
        console.print(f"[dim]note: {note}[/dim]")
    ok = bool(cheaper) and bounded
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
