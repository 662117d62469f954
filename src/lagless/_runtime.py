"""The process-wide lagless state: settings in force, recent traces, and who hears of each
finished trace.

One per process, like logging's root logger, because drivers are patched process-wide and a
trace is process-local anyway. Framework middleware calls :meth:`Runtime.start_trace` (cheap)
and :meth:`Runtime.finish_trace` once the response is complete; everything that reads traces
(the ring, the slow-request log, the JSON-lines file, metrics, the doctor, the pytest plugin)
subscribes with :meth:`Runtime.add_listener`.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from lagless._config import Config, load_config
from lagless._guard import report_internal_error
from lagless._trace import Trace

logger = logging.getLogger("lagless")

TraceListener = Callable[[Trace], None]


class Runtime:
    """Settings, the ring of recent traces and the listeners. See :func:`get_runtime`."""

    def __init__(self, config: Config | None = None) -> None:
        # Re-entrant: configure() removes the old file sink while holding it.
        self._lock = threading.RLock()
        self._listeners: tuple[TraceListener, ...] = ()
        self._file_sink: Any = None
        self.config: Config = config if config is not None else load_config()
        self.ring: collections.deque[Trace] = collections.deque(maxlen=self.config.ring_size)
        self._apply()

    # -- settings ------------------------------------------------------------------------------

    def configure(self, config: Config | None = None, **changes: Any) -> Config:
        """Replace the settings (validated) and re-derive what depends on them."""
        with self._lock:
            base = config if config is not None else self.config
            self.config = base.replace(**changes) if changes else base
            if self.ring.maxlen != self.config.ring_size:
                self.ring = collections.deque(self.ring, maxlen=self.config.ring_size)
            self._apply()
            return self.config

    def _apply(self) -> None:
        cfg = self.config
        self.enabled: bool = cfg.enabled
        self.server_timing: bool = cfg.server_timing
        self.middleware_timing: bool = cfg.middleware_timing
        self.body_digest: bool = cfg.body_digest
        self.max_spans: int = cfg.max_spans
        # Read per statement by the driver integrations (``_db.record_params``).
        self.record_params: bool = bool(cfg.values.get("record_params", False))
        Trace.max_spans = cfg.max_spans
        self.loop_lag_probe: bool = bool(cfg.values.get("loop_lag_probe", False))
        self._slow_ns = int(cfg.slow_request_ms * 1_000_000) if cfg.slow_request_ms else 0
        if self._file_sink is not None and self._file_sink.path != cfg.trace_file:
            self.remove_listener(self._file_sink)
            self._file_sink.close()
            self._file_sink = None
        if cfg.trace_file and self._file_sink is None:
            from lagless._export import JsonLinesSink

            self._file_sink = JsonLinesSink(cfg.trace_file, record_params=cfg.record_params)
            self._listeners = (*self._listeners, self._file_sink)

    # -- listeners -----------------------------------------------------------------------------

    def add_listener(self, listener: TraceListener) -> None:
        """Call ``listener(trace)`` for every finished trace. Idempotent. A listener that raises
        is reported as an internal error; it never fails the request."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: TraceListener) -> None:
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item is not listener)

    # -- the request lifecycle -----------------------------------------------------------------

    def finish_trace(self, trace: Trace) -> None:
        """Hand a finished trace to the ring, the slow log and every listener."""
        spans = trace.spans
        if len(spans) > self.max_spans:
            # Most are dropped as they are added (Trace.add_span); this catches spans appended
            # directly at the end of a request (handler spans) and a lowered setting.
            attrs = trace.attrs
            attrs["dropped_spans"] = attrs.get("dropped_spans", 0) + len(spans) - self.max_spans
            del spans[self.max_spans :]
        self.ring.append(trace)
        if self._slow_ns and trace.duration_ns >= self._slow_ns:
            self._log_slow(trace)
        for listener in self._listeners:
            try:
                listener(trace)
            except Exception as exc:
                report_internal_error(f"listener:{getattr(listener, '__name__', listener)}", exc)

    def _log_slow(self, trace: Trace) -> None:
        try:
            layers: dict[str, float] = {}
            for span in trace.spans:
                layers[span.kind] = layers.get(span.kind, 0.0) + span.duration_ns / 1e6
            detail = " ".join(f"{k}={v:.1f}ms" for k, v in sorted(layers.items()))
            logger.warning(
                "lagless: slow request %s %s -> %s took %.1f ms (%d spans%s%s)",
                trace.method,
                trace.route_or_path,
                trace.status,
                trace.duration_ns / 1e6,
                len(trace.spans),
                ": " if detail else "",
                detail,
            )
        except Exception as exc:
            report_internal_error("slow-log", exc)

    def recent_traces(self) -> list[Trace]:
        """A snapshot of the ring, oldest first."""
        return list(self.ring)

    def clear(self) -> None:
        self.ring.clear()


_runtime: Runtime | None = None
_runtime_lock = threading.Lock()


def get_runtime() -> Runtime:
    """The process's runtime, created from the environment and pyproject.toml on first use."""
    global _runtime
    rt = _runtime
    if rt is None:
        with _runtime_lock:
            if _runtime is None:
                _runtime = Runtime()
            rt = _runtime
    return rt


def configure(**settings: Any) -> Config:
    """Change lagless's settings for this process (validated; see ``lagless config``).

    >>> lagless.configure(slow_request_ms=250, record_params=False)
    """
    return get_runtime().configure(**settings)


def recent_traces() -> list[Trace]:
    """The most recent finished traces in this process, oldest first (``ring_size`` of them)."""
    return get_runtime().recent_traces()
