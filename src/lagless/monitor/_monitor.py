"""The :class:`Monitor`: statistics, slow samples, browser timings and the endpoints, in one
object per process, fed by a runtime listener."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from lagless._config import Config
from lagless._guard import report_internal_error
from lagless._runtime import Runtime, get_runtime
from lagless._trace import Trace
from lagless.monitor import _dashboard
from lagless.monitor._browser import BeaconError, BrowserStats, RateLimiter, parse_beacon
from lagless.monitor._http import Request, Response, check_token, text
from lagless.monitor._multiproc import SharedStats, shared_dir
from lagless.monitor._profiling import ProfileGate
from lagless.monitor._sampling import SlowSampler
from lagless.monitor._stats import Stats

#: Set in ``trace.attrs`` by the monitor's own endpoints so their requests (a Prometheus scrape
#: every 15 s, the dashboard's refreshes) never show up in the statistics they serve.
INTERNAL: Final = "lagless.monitor"
#: Slow samples copied into the shared file for other workers' dashboards.
_SHARED_SAMPLES: Final = 20
#: Set around a profiled request by the middleware outside lagless's tracing middleware, where
#: the trace does not exist yet: the profiler slows the request, so it must not be counted.
skip_traces: ContextVar[bool] = ContextVar("lagless_monitor_skip", default=False)

_BROWSER_JS: Final = _dashboard.STATIC_DIR / "browser.js"


_skip_get = skip_traces.get


def _prefix(path: str | None) -> str | None:
    if not path:
        return None
    return "/" + path.strip("/")


class Monitor:
    """Per-route latency statistics and the endpoints that show them, for one process.

    Most applications never build one: :func:`lagless.monitor.monitor` wraps an app and makes
    the process's monitor from the settings (``metrics``, ``dashboard``, ``dashboard_token``,
    ``profile_token``, ``browser_timing``, ``otel``, ...). Build one directly to inject clocks
    (tests) or a tracer provider::

        mon = Monitor(clock=fake_wall, background=False)
        mon.install()

    ``clock`` returns wall seconds (throughput windows), ``monotonic`` monotonic seconds (rate
    limits); ``background=False`` analyses slow samples only when :meth:`process_pending` is
    called; ``tracer_provider`` is handed to the OTel exporter when ``otel`` is on.
    """

    def __init__(
        self,
        *,
        runtime: Runtime | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        background: bool = True,
        tracer_provider: Any = None,
    ) -> None:
        self.runtime = runtime or get_runtime()
        cfg: Config = self.runtime.config
        self.config = cfg
        check_token("dashboard_token", cfg.dashboard_token)
        check_token("profile_token", cfg.profile_token)
        self.clock = clock
        self.stats = Stats(max_routes=cfg.max_routes, clock=clock)
        self.sampler = SlowSampler(
            threshold_ms=cfg.slow_sample_ms,
            capacity=cfg.slow_samples,
            rate=cfg.slow_sample_rate,
            clock=monotonic,
            wall=clock,
            on_findings=self.stats.add_findings,
            background=background,
        )
        self.browser: BrowserStats | None = (
            BrowserStats(max_routes=cfg.max_routes) if cfg.browser_timing else None
        )
        self.beacon_limiter = RateLimiter(clock=monotonic)
        self.profile = ProfileGate(cfg.profile_token)
        self.metrics_path = _prefix(cfg.metrics_path) if cfg.metrics else None
        self.dashboard_base = (_prefix(cfg.dashboard_path) or "/_lagless") + "/"
        self.dashboard_on = bool(cfg.dashboard)
        self.beacon_path = _prefix(cfg.beacon_path) if cfg.browser_timing else None
        directory = shared_dir(cfg.metrics_dir)
        self.shared: SharedStats | None = (
            SharedStats(directory, self.stats, extra=self._extra) if directory else None
        )
        self.multiproc_dir = directory
        self.otel: Any = None
        if cfg.otel:
            from lagless.monitor._otel import OTelExporter

            self.otel = OTelExporter(
                tracer_provider=tracer_provider, record_params=cfg.record_params
            )
        self._installed = False

    # -- recording (the hot path) --------------------------------------------------------------

    def observe(self, trace: Trace) -> None:
        """The runtime listener: record one finished trace."""
        attrs = trace.attrs
        if INTERNAL in attrs or _skip_get():
            return
        rs = self.stats.observe(trace)
        self.sampler.consider(trace, rs)
        otel = self.otel
        if otel is not None:
            try:
                otel.export(trace)
            except Exception as exc:
                report_internal_error("monitor:otel", exc)

    def install(self) -> Monitor:
        """Start listening to finished traces (and, with a shared directory, writing them)."""
        if not self._installed:
            self.runtime.add_listener(self.observe)
            if self.shared is not None:
                self.shared.start()
            _register_fork_hook(self)
            self._installed = True
        return self

    def uninstall(self) -> None:
        self.runtime.remove_listener(self.observe)
        _fork_hooked.discard(self)
        if self.shared is not None:
            self.shared.stop()
        self._installed = False

    def _after_fork(self) -> None:
        """In a forked worker: counts recorded before the fork belong to the parent."""
        self.stats = Stats(max_routes=self.stats.max_routes, clock=self.clock)
        self.sampler.on_findings = self.stats.add_findings
        self.sampler.after_fork()
        if self.browser is not None:
            self.browser = BrowserStats(max_routes=self.browser.max_routes)
        if self.shared is not None:
            self.shared.stats = self.stats
            self.shared.after_fork()

    def process_pending(self) -> int:
        """Analyse queued slow samples now (what the background thread does)."""
        return self.sampler.process_pending()

    # -- reading -------------------------------------------------------------------------------

    def _extra(self) -> dict[str, Any]:
        return {
            "browser": self.browser.to_dict() if self.browser is not None else None,
            "samples": [s.to_dict() for s in self.sampler.recent()[:_SHARED_SAMPLES]],
        }

    def merged(self) -> tuple[Stats, BrowserStats | None, list[dict[str, Any]], int]:
        """Statistics of every worker (or just this process), browser timings, slow samples
        (slowest first), and how many processes contributed."""
        samples = [s.to_dict() for s in self.sampler.recent()]
        if self.shared is None:
            return self.stats, self.browser, samples, 1
        stats, extras, processes = self.shared.merged()
        browser = None
        if self.browser is not None:
            browser = BrowserStats(max_routes=self.browser.max_routes)
            browser.merge(self.browser)
        for extra in extras:
            if browser is not None and extra.get("browser"):
                browser.merge(BrowserStats.from_dict(extra["browser"]))
            samples.extend(extra.get("samples") or ())
        samples.sort(key=lambda s: -s["duration_ms"])
        return stats, browser, samples[: self.sampler.capacity], processes

    # -- endpoints -----------------------------------------------------------------------------

    def owns(self, path: str) -> bool:
        """Whether ``path`` is one of the monitor's endpoints (checked on every request)."""
        if path == self.metrics_path:
            return True
        if self.beacon_path is not None and (
            path == self.beacon_path or path == self.beacon_path + ".js"
        ):
            return True
        return self.dashboard_on and (
            path.startswith(self.dashboard_base) or path == self.dashboard_base[:-1]
        )

    def handle(self, request: Request) -> Response:
        """Answer a request for one of the monitor's endpoints (see :meth:`owns`)."""
        try:
            return self._route(request)
        except Exception as exc:
            report_internal_error("monitor:endpoint", exc)
            return text(500, "lagless: internal error in the monitor endpoint")

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == self.metrics_path:
            if request.method not in ("GET", "HEAD"):
                return text(405, "lagless: GET only", ("allow", "GET, HEAD"))
            return self.metrics(request.headers.get("accept", ""))
        if self.beacon_path is not None:
            if path == self.beacon_path + ".js":
                return _dashboard.static_file(_BROWSER_JS.name)
            if path == self.beacon_path:
                return self.beacon(request)
        if not self.dashboard_on:
            return text(404, "lagless: not found")
        base = self.dashboard_base
        refusal = _dashboard.authorize(request, self.config.dashboard_token, base)
        if refusal is not None:
            return refusal
        if path == base[:-1]:
            return Response(308, headers=[("location", base)])
        rest = path[len(base) :]
        if request.method not in ("GET", "HEAD"):
            return text(405, "lagless: GET only", ("allow", "GET, HEAD"))
        if rest in ("", "index.html"):
            return _dashboard.static_file("dashboard.html")
        if rest == "api/summary":
            stats, browser, samples, processes = self.merged()
            return _dashboard.json_response(
                _dashboard.summary(
                    stats,
                    browser=browser,
                    samples=samples,
                    processes=processes,
                    now=int(self.clock()),
                )
            )
        if rest.startswith("static/"):
            return _dashboard.static_file(rest[len("static/") :])
        return text(404, "lagless: not found")

    def metrics(self, accept: str = "") -> Response:
        """The ``/metrics`` response (content negotiated from ``accept``)."""
        from lagless.monitor._prometheus import render

        def source() -> Stats:
            return merged[0]

        merged = self.merged()
        body, content_type = render(
            source,
            accept,
            bucket_scale=self.config.metrics_bucket_scale,
            browser=lambda: merged[1],
            multiproc_dir=self.multiproc_dir,
        )
        return Response(200, body, content_type, [("cache-control", "no-store")])

    def beacon(self, request: Request) -> Response:
        """Accept one browser beacon: rate-limited, size-limited, validated."""
        if request.method != "POST":
            return text(405, "lagless: POST beacons here", ("allow", "POST"))
        if not self.beacon_limiter.allow(request.client or "?"):
            return text(429, "lagless: too many beacons", ("retry-after", "5"))
        try:
            entries = parse_beacon(request.body, request.headers.get("content-type", ""))
        except BeaconError as exc:
            return text(exc.status, f"lagless: {exc}")
        browser = self.browser
        if browser is None:  # pragma: no cover - beacon_path is only routed when on
            return text(404, "lagless: not found")
        # This worker's routes: reading every worker's file per beacon would cost more than
        # the beacon is worth, and each worker soon sees every route a page calls.
        templates = [route for (_m, route) in list(self.stats.routes)]
        browser.record(entries, templates)
        self.stats.updates += 1  # the shared file carries browser timings too
        return Response(204)


# -- the process's monitor ------------------------------------------------------------------------

_current: Monitor | None = None
_current_lock = threading.Lock()
_fork_hooked: weakref.WeakSet[Monitor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for mon in list(_fork_hooked):
        try:
            mon._after_fork()
        except Exception as exc:
            report_internal_error("monitor:after-fork", exc)


_fork_registered = False


def _register_fork_hook(mon: Monitor) -> None:
    global _fork_registered
    _fork_hooked.add(mon)
    if not _fork_registered and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _fork_registered = True


def get_monitor() -> Monitor | None:
    """The process's monitor, if :func:`lagless.monitor.monitor` (or :func:`start`) made one."""
    return _current


def start(**settings: Any) -> Monitor:
    """Apply ``settings`` and make (or remake) the process's monitor, installed."""
    global _current
    with _current_lock:
        rt = get_runtime()
        if settings:
            rt.configure(**settings)
        mon = _current
        if mon is not None and mon.runtime is rt and mon.config is rt.config:
            return mon
        if mon is not None:
            mon.uninstall()
        _current = Monitor(runtime=rt).install()
        return _current


def stop() -> None:
    """Uninstall the process's monitor."""
    global _current
    with _current_lock:
        if _current is not None:
            _current.uninstall()
            _current = None
