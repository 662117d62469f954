"""Detectors: turn request traces into findings with a cost and a concrete fix.

Each module holds the detectors for one kind of problem and registers them, by stable code, in
:data:`DETECTORS`; :func:`analyze` (exported as :func:`lagless.detect`) runs every enabled one.
Thresholds and the codes switched off live in :class:`DetectorSettings`. docs/detectors.md lists
every code with its threshold and why.

>>> from lagless.detectors import analyze, DetectorSettings
>>> quiet = DetectorSettings(disabled={"sequential-io"})
>>> findings = analyze(lagless.recent_traces(), settings=quiet)
"""

from __future__ import annotations

from lagless.detectors import (  # noqa: F401  (importing a module registers its detectors)
    blocking,
    connection_reuse,
    duplicate,
    http_caching,
    missing_index,
    n_plus_one,
    over_fetching,
    payload,
    sequential_io,
    slow_middleware,
    static_assets,
)
from lagless.detectors._base import (
    DETECTORS,
    SEVERITIES,
    Context,
    Detector,
    DetectorSettings,
    Finding,
    Mode,
    Severity,
    analyze,
    max_severity,
    severity_at_least,
    severity_rank,
)

__all__ = [
    "DETECTORS",
    "SEVERITIES",
    "Context",
    "Detector",
    "DetectorSettings",
    "Finding",
    "Mode",
    "Severity",
    "analyze",
    "max_severity",
    "severity_at_least",
    "severity_rank",
]
