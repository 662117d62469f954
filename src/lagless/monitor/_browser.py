"""What the user felt: browser Resource Timing beacons, validated, rate-limited and kept per route.

The snippet (``static/browser.js``, served at ``beacon_path + ".js"``) watches the page's
``fetch``/XHR calls to its own origin through a ``PerformanceObserver``, reads each entry's
phases and its ``serverTiming`` (the ``Server-Timing`` header lagless adds), and posts batches
with ``navigator.sendBeacon``. Here each entry is checked (shape, types, ranges, sizes), matched
to a route template the server knows, and recorded: the browser's total, the server's total as
the browser saw it, and the difference — network, queueing and download, the part no server
metric shows.

The endpoint takes anonymous input from the internet, so it is strict: bodies over
:data:`MAX_BODY` bytes are refused before they are parsed, at most :data:`MAX_ENTRIES` entries
per beacon, numbers must be finite and within ten minutes, and each client address gets a token
bucket (the bucket table itself is bounded).
"""

from __future__ import annotations

import collections
import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from lagless._histogram import ExpHistogram

MAX_BODY: Final = 16 * 1024
MAX_ENTRIES: Final = 50
MAX_URL: Final = 2048
MAX_MS: Final = 600_000.0
_PHASES: Final = ("duration", "blocked", "ttfb", "download")
_OPTIONAL: Final = ("server",)
_PARAM: Final = re.compile(r"\{[^{}/]+\}")


class BeaconError(ValueError):
    """A beacon refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _number(entry: Mapping[str, Any], key: str, *, required: bool) -> float | None:
    value = entry.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BeaconError(400, f"entry field {key!r} must be a number")
    number = float(value)
    if not math.isfinite(number) or number < 0 or number > MAX_MS:
        raise BeaconError(400, f"entry field {key!r} out of range [0, {MAX_MS:.0f}] ms")
    return number


def parse_beacon(body: bytes, content_type: str = "") -> list[dict[str, Any]]:
    """Validate a beacon body and return its entries (``path``, phases in ms, ``server``).

    ``sendBeacon`` with a string sends ``text/plain``; ``application/json`` is accepted too.
    """
    if len(body) > MAX_BODY:
        raise BeaconError(413, f"beacon larger than {MAX_BODY} bytes")
    media = content_type.split(";")[0].strip().lower()
    if media not in ("", "text/plain", "application/json"):
        raise BeaconError(415, "beacons are JSON sent as text/plain or application/json")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BeaconError(400, "beacon is not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise BeaconError(400, 'beacon must be an object with "v": 1')
    entries = doc.get("entries")
    if not isinstance(entries, list) or not entries:
        raise BeaconError(400, 'beacon needs a non-empty "entries" list')
    if len(entries) > MAX_ENTRIES:
        raise BeaconError(413, f"at most {MAX_ENTRIES} entries per beacon")
    out = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BeaconError(400, "each entry must be an object")
        url = entry.get("url")
        if not isinstance(url, str) or not url or len(url) > MAX_URL:
            raise BeaconError(400, f"entry url must be a string of 1..{MAX_URL} characters")
        # The snippet sends paths of same-origin calls only; a full or scheme-relative URL
        # is not something it produces.
        if not url.startswith("/") or url.startswith("//"):
            raise BeaconError(400, "entry url must be a same-origin path")
        path = urlsplit(url).path
        item: dict[str, Any] = {"path": path}
        for key in _PHASES:
            item[key] = _number(entry, key, required=True)
        for key in _OPTIONAL:
            item[key] = _number(entry, key, required=False)
        out.append(item)
    return out


class RateLimiter:
    """A token bucket per client key, ``rate`` per second with bursts of ``burst``; at most
    ``max_clients`` buckets (the least recently used is forgotten first)."""

    def __init__(
        self,
        *,
        rate: float = 2.0,
        burst: float = 10.0,
        max_clients: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            ok = tokens >= 1.0
            if ok:
                tokens -= 1.0
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
            return ok


class BrowserRoute:
    """Browser-side timings of one route's calls, in seconds."""

    __slots__ = ("blocked_sum", "count", "download_sum", "network", "server", "total")

    def __init__(self) -> None:
        self.total = ExpHistogram(4)
        self.server = ExpHistogram(4)
        self.network = ExpHistogram(4)  # total - server: what the server never sees
        self.count = 0
        self.blocked_sum = 0.0
        self.download_sum = 0.0

    def record(self, entry: Mapping[str, Any]) -> None:
        self.count += 1
        total = entry["duration"] / 1000.0
        self.total.record(total)
        server = entry.get("server")
        if server is not None:
            self.server.record(server / 1000.0)
            self.network.record(max(total - server / 1000.0, 0.0))
        self.blocked_sum += entry["blocked"] / 1000.0
        self.download_sum += entry["download"] / 1000.0

    def merge(self, other: BrowserRoute) -> None:
        self.total.merge(other.total)
        self.server.merge(other.server)
        self.network.merge(other.network)
        self.count += other.count
        self.blocked_sum += other.blocked_sum
        self.download_sum += other.download_sum

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total.to_dict(),
            "server": self.server.to_dict(),
            "network": self.network.to_dict(),
            "count": self.count,
            "blocked_sum": self.blocked_sum,
            "download_sum": self.download_sum,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BrowserRoute:
        br = cls()
        br.total = ExpHistogram.from_dict(data["total"])
        br.server = ExpHistogram.from_dict(data["server"])
        br.network = ExpHistogram.from_dict(data["network"])
        br.count = int(data["count"])
        br.blocked_sum = float(data["blocked_sum"])
        br.download_sum = float(data["download_sum"])
        return br


class BrowserStats:
    """Per-route browser timings, keyed by route template; only routes the server knows are
    kept (anything else is ``<unmatched>``), so the table is bounded like the server's."""

    def __init__(self, *, max_routes: int = 100) -> None:
        self.max_routes = max_routes
        self.routes: dict[str, BrowserRoute] = {}
        self.unmatched = 0
        self._patterns: dict[str, re.Pattern[str] | None] = {}
        self._lock = threading.Lock()

    def _pattern(self, template: str) -> re.Pattern[str] | None:
        if template not in self._patterns:
            if len(self._patterns) > 4 * self.max_routes:
                self._patterns.clear()
            if "{" not in template:
                self._patterns[template] = None
            else:
                parts = _PARAM.split(template)
                self._patterns[template] = re.compile(
                    "[^/]+".join(re.escape(p) for p in parts) + r"\Z"
                )
        return self._patterns[template]

    def match(self, path: str, templates: Iterable[str]) -> str | None:
        """The template ``path`` belongs to: a literal match first, else the one with the
        fewest parameters (``/books/by-isbn/{isbn}`` beats ``/books/{a}/{b}``)."""
        best: tuple[int, str] | None = None
        for template in templates:
            if template == path:
                return template
            pattern = self._pattern(template)
            if pattern is not None and pattern.match(path):
                rank = template.count("{")
                if best is None or rank < best[0]:
                    best = (rank, template)
        return best[1] if best is not None else None

    def record(self, entries: list[dict[str, Any]], templates: Iterable[str]) -> int:
        """Record validated entries; returns how many matched a known route."""
        known = [t for t in set(templates) if not t.startswith("<")]
        matched = 0
        with self._lock:
            for entry in entries:
                route = self.match(entry["path"], known)
                if route is None:
                    self.unmatched += 1
                    continue
                br = self.routes.get(route)
                if br is None:
                    if len(self.routes) >= self.max_routes:
                        self.unmatched += 1
                        continue
                    br = self.routes[route] = BrowserRoute()
                br.record(entry)
                matched += 1
        return matched

    def merge(self, other: BrowserStats) -> None:
        for route, br in list(other.routes.items()):
            mine = self.routes.get(route)
            if mine is None:
                if len(self.routes) >= self.max_routes:
                    continue
                mine = self.routes[route] = BrowserRoute()
            mine.merge(br)
        self.unmatched += other.unmatched

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "routes": {k: v.to_dict() for k, v in self.routes.items()},
                "unmatched": self.unmatched,
            }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, max_routes: int = 100) -> BrowserStats:
        bs = cls(max_routes=max_routes)
        for route, item in data.get("routes", {}).items():
            bs.routes[str(route)] = BrowserRoute.from_dict(item)
        bs.unmatched = int(data.get("unmatched", 0))
        return bs
