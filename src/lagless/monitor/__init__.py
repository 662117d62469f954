"""Monitoring in production: per-route percentiles, Prometheus and OpenTelemetry export, slow-
request samples, on-demand profiling, a live dashboard and browser timing.

One call wraps an instrumented app::

    import lagless
    from lagless.monitor import monitor

    app = lagless.instrument(app)
    app = monitor(app, metrics=True, dashboard=True, dashboard_token=TOKEN)

Everything is off until a setting turns it on (``metrics``, ``dashboard``, ``browser_timing``,
``profile_token``, ``otel``); the settings are ordinary lagless settings, so
``LAGLESS_DASHBOARD_TOKEN`` or ``[tool.lagless] metrics = true`` work too. docs/monitoring.md
is the guide.
"""

from __future__ import annotations

import inspect
from typing import Any

from lagless.monitor._asgi import MetricsApp, MonitorMiddleware
from lagless.monitor._monitor import Monitor, get_monitor, start, stop
from lagless.monitor._otel import OTelExporter
from lagless.monitor._wsgi import MonitorWSGIMiddleware, metrics_wsgi_app

__all__ = [
    "MetricsApp",
    "Monitor",
    "MonitorMiddleware",
    "MonitorWSGIMiddleware",
    "OTelExporter",
    "get_monitor",
    "metrics_wsgi_app",
    "monitor",
    "start",
    "stop",
]


def _is_asgi(app: Any) -> bool:
    if inspect.iscoroutinefunction(app):
        return True
    return callable(app) and inspect.iscoroutinefunction(type(app).__call__)


def monitor(app: Any, **settings: Any) -> Any:
    """Serve the monitor's endpoints in front of ``app`` (ASGI or WSGI) and start recording.

    ``settings`` are lagless settings applied process-wide (``metrics=True``,
    ``dashboard=True``, ``dashboard_token=...``, ``browser_timing=True``,
    ``profile_token=...``, ``otel=True``, ``max_routes=...``). Returns the wrapped app; a Flask
    app keeps its identity (its ``wsgi_app`` is wrapped instead).
    """
    mon = start(**settings)
    if hasattr(app, "wsgi_app") and not _is_asgi(app):
        app.wsgi_app = MonitorWSGIMiddleware(app.wsgi_app, monitor=mon)
        return app
    if _is_asgi(app):
        return MonitorMiddleware(app, monitor=mon)
    return MonitorWSGIMiddleware(app, monitor=mon)
