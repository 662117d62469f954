"""Static assets served by the app without far-future caching or compression.

A response is a static asset when the middleware marked it (``trace.attrs["static"]``), when
its path ends in an asset extension, or when it sits under ``/static/`` or ``/assets/``. It is
reported when it is not cacheable for at least ``static_min_max_age_s`` (a week; fingerprinted
asset names allow a year and ``immutable``, RFC 8246), and when a compressible asset (CSS, JS,
SVG, JSON, fonts other than WOFF2) goes out uncompressed to a client accepting compression.
Every page view then re-fetches or revalidates each asset through the Python app.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from lagless._trace import Trace
from lagless.detectors._base import Context, Finding, register
from lagless.detectors._hints import compression_tool
from lagless.detectors.payload import (
    accepts_compression,
    extension,
    is_compressible,
    is_static,
    transfer_ms,
)

_COMPRESSIBLE_EXT: Final = frozenset({"css", "js", "mjs", "map", "svg", "ttf", "otf", "eot"})
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)", re.I)


def max_age(cache_control: str) -> int | None:
    """The ``max-age`` of a Cache-Control value (RFC 9111 §5.2.2.1): what browsers keep.
    ``s-maxage`` only governs shared caches, so it does not spare the page view a request."""
    ages = [int(m) for m in _MAX_AGE.findall(cache_control)]
    return max(ages) if ages else None


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _static(trace: Trace, ctx: Context) -> Iterator[Finding]:
    s = ctx.settings
    if trace.method.upper() not in ("GET", "HEAD") or trace.status != 200 or not is_static(trace):
        return
    headers = trace.response_headers
    cache_control = headers.get("cache-control", "").lower()
    age = max_age(cache_control)
    problems: list[str] = []
    if (
        "no-store" in cache_control
        or "no-cache" in cache_control
        or ("immutable" not in cache_control and (age is None or age < s.static_min_max_age_s))
    ):
        problems.append("no far-future caching")
    content_type = headers.get("content-type", "")
    compressible = is_compressible(content_type) or extension(trace.path) in _COMPRESSIBLE_EXT
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if (
        compressible
        and encoding in ("", "identity")
        and trace.response_bytes >= s.compress_min_bytes
        and accepts_compression(trace.request_headers.get("accept-encoding", ""))
    ):
        problems.append("uncompressed")
    if not problems:
        return
    cost = 0.0
    if "no far-future caching" in problems:
        cost += trace.duration_ms + transfer_ms(trace.response_bytes, ctx)
    elif "uncompressed" in problems:
        cost += transfer_ms(int(trace.response_bytes * 0.75), ctx)
    framework = str(trace.attrs.get("framework") or "")
    fixes = []
    if "no far-future caching" in problems:
        fixes.append(
            "serve fingerprinted file names (Django ManifestStaticFilesStorage, or a bundler's "
            "[hash] names) with Cache-Control: public, max-age=31536000, immutable -- WhiteNoise "
            "does this for Django and any WSGI app; better, let a CDN or nginx serve them"
        )
    if "uncompressed" in problems:
        fixes.append(f"compress them ({compression_tool(framework)}; WhiteNoise pre-compresses)")
    yield Finding(
        code="static-no-cache",
        title=f"Static asset served by the app with {' and '.join(problems)}",
        severity="medium" if "no far-future caching" in problems else "low",
        route=trace.route_or_path,
        method=trace.method.upper(),
        evidence=(
            {
                "call": f"{trace.method.upper()} {trace.path}",
                "count": 1,
                "total_ms": round(trace.duration_ms, 3),
                "response_bytes": trace.response_bytes,
                "cache_control": headers.get("cache-control"),
                "content_encoding": headers.get("content-encoding"),
            },
        ),
        cost_ms=cost,
        fix=_sentence("; ".join(fixes)),
        details={"key": tuple(problems)},
    )


register(
    "static-no-cache",
    "Static assets served by the app without far-future caching or compression",
    per_trace=_static,
)
