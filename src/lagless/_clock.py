"""The one clock lagless reads.

Every duration in a trace is an integer count of nanoseconds from ``time.perf_counter_ns``:
monotonic, the finest resolution the platform offers, and an int (no float rounding, cheap to
subtract). Wall-clock time (``time.time``) is read once per request, only to label a trace.

Tests that need a controlled clock build traces by hand with explicit numbers (detectors take
plain values); hot-path modules bind ``perf_counter_ns`` directly because a module-attribute
lookup per call costs measurable time at the volume a busy server sees.
"""

from __future__ import annotations

import time

now_ns = time.perf_counter_ns
wall_time = time.time

NS_PER_MS = 1_000_000


def ns_to_ms(ns: int) -> float:
    """Nanoseconds as milliseconds, rounded to the microsecond (what humans and JSON want)."""
    return round(ns / NS_PER_MS, 3)
