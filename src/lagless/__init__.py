"""lagless: find and remove latency in Python web APIs.

Trace every request layer by layer with one line::

    import lagless
    app = lagless.instrument(app)          # FastAPI, Starlette, Litestar, Flask, any ASGI/WSGI

or, for Django, ``"lagless.django.LaglessMiddleware"`` first in ``MIDDLEWARE``. Each response
then carries a ``Server-Timing`` header, recent traces are kept in memory
(:func:`recent_traces`), and :func:`span` times your own code.
"""

from __future__ import annotations

from lagless._config import Config, load_config
from lagless._export import export_traces, load_traces
from lagless._instrument import instrument
from lagless._runtime import configure, get_runtime, recent_traces
from lagless._spans import span
from lagless._trace import SPAN_KINDS, Span, SpanKind, Trace, current_trace
from lagless.cache import (
    Cache,
    CachePolicies,
    CachePolicy,
    ConditionalMiddleware,
    MemoryBackend,
    RedisBackend,
    ResponseCacheMiddleware,
    TieredBackend,
    cached,
)
from lagless.detectors import Finding, Severity
from lagless.detectors import analyze as detect
from lagless.errors import ConfigError, IntegrationNotAvailable, LaglessError
from lagless.integrations._base import install_integrations, uninstall_integrations
from lagless.monitor import (
    MetricsApp,
    Monitor,
    MonitorMiddleware,
    MonitorWSGIMiddleware,
    OTelExporter,
    metrics_wsgi_app,
)
from lagless.payload import (
    CompressionMiddleware,
    Manifest,
    StaticApp,
    StaticMiddleware,
    WSGICompressionMiddleware,
)

__version__ = "0.1.0"

__all__ = [
    "SPAN_KINDS",
    "Cache",
    "CachePolicies",
    "CachePolicy",
    "CompressionMiddleware",
    "ConditionalMiddleware",
    "Config",
    "ConfigError",
    "Finding",
    "IntegrationNotAvailable",
    "LaglessError",
    "Manifest",
    "MemoryBackend",
    "MetricsApp",
    "Monitor",
    "MonitorMiddleware",
    "MonitorWSGIMiddleware",
    "OTelExporter",
    "RedisBackend",
    "ResponseCacheMiddleware",
    "Severity",
    "Span",
    "SpanKind",
    "StaticApp",
    "StaticMiddleware",
    "TieredBackend",
    "Trace",
    "WSGICompressionMiddleware",
    "__version__",
    "cached",
    "configure",
    "current_trace",
    "detect",
    "export_traces",
    "get_runtime",
    "install_integrations",
    "instrument",
    "load_config",
    "load_traces",
    "metrics_wsgi_app",
    "recent_traces",
    "span",
    "uninstall_integrations",
]
