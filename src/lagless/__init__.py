"""lagless: find and remove latency in Python web APIs.

Trace every request layer by layer with one line::

    import lagless
    app = lagless.instrument(app)          # FastAPI, Starlette, Litestar, Flask, any ASGI/WSGI

or, for Django, ``"lagless.django.LaglessMiddleware"`` first in ``MIDDLEWARE``. Each response
then carries a ``Server-Timing`` header, recent traces are kept in memory
(:func:`recent_traces`), and :func:`span` times your own code.
"""

from __future__ import annotations

import importlib
import typing as _typing

from lagless._config import Config, load_config
from lagless._export import export_traces, load_traces
from lagless._instrument import instrument
from lagless._runtime import configure, get_runtime, recent_traces
from lagless._spans import span
from lagless._trace import SPAN_KINDS, Span, SpanKind, Trace, current_trace
from lagless.errors import ConfigError, IntegrationNotAvailable, LaglessError
from lagless.integrations._base import install_integrations, uninstall_integrations

if _typing.TYPE_CHECKING:
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

# The cache, detectors, monitor and payload parts load on first use (PEP 562): ``import
# lagless`` stays cheap for an app that only traces, and for every pytest run (the plugin).
_LAZY: dict[str, tuple[str, str]] = {
    **{
        name: ("lagless.cache", name)
        for name in (
            "Cache",
            "CachePolicies",
            "CachePolicy",
            "ConditionalMiddleware",
            "MemoryBackend",
            "RedisBackend",
            "ResponseCacheMiddleware",
            "TieredBackend",
            "cached",
        )
    },
    "Finding": ("lagless.detectors", "Finding"),
    "Severity": ("lagless.detectors", "Severity"),
    "detect": ("lagless.detectors", "analyze"),
    **{
        name: ("lagless.monitor", name)
        for name in (
            "MetricsApp",
            "Monitor",
            "MonitorMiddleware",
            "MonitorWSGIMiddleware",
            "OTelExporter",
            "metrics_wsgi_app",
        )
    },
    **{
        name: ("lagless.payload", name)
        for name in (
            "CompressionMiddleware",
            "Manifest",
            "StaticApp",
            "StaticMiddleware",
            "WSGICompressionMiddleware",
        )
    },
}


def __getattr__(name: str) -> _typing.Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'lagless' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


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
