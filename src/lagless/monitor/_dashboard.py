"""The dashboard: access rules, the static page, and the JSON it refreshes from.

Off by default. On, it answers only

- a request carrying the ``dashboard_token`` (``?token=`` on the first visit, which sets an
  HttpOnly, SameSite=Strict cookie holding a digest of the token and redirects to a URL without
  it; or ``Authorization: Bearer <token>`` for scripts), or
- when no token is configured, a request from this machine to a loopback host name with no
  proxy headers (see :func:`~lagless.monitor._http.is_local`): a developer's laptop.

Everything else gets 401/403 and learns nothing. The page and its script and style ship in the
package (``static/``) and are served from here: no CDN, nothing fetched at run time. The charts
are hand-drawn SVG (sparklines, stacked layer bars, the waterfall), a few dozen lines of JS,
because a charting library would be the largest thing on the page.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Final

from lagless._histogram import ExpHistogram
from lagless.monitor._browser import BrowserStats
from lagless.monitor._http import (
    COOKIE,
    SECURITY_HEADERS,
    Request,
    Response,
    bearer,
    cookie_value,
    is_local,
    same_secret,
    text,
)
from lagless.monitor._stats import LAYERS, WINDOW_S, Stats

STATIC_DIR: Final = Path(__file__).parent / "static"
_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
#: Seconds over which the dashboard's throughput and error rate are computed.
RATE_WINDOW_S: Final = 10


def authorize(request: Request, token: str | None, base: str) -> Response | None:
    """``None`` if the request may see the dashboard, else the response refusing it (or the
    redirect that trades ``?token=`` for the cookie)."""
    if token is None:
        if is_local(request):
            return None
        return text(
            403,
            "lagless: the dashboard needs dashboard_token when not browsed from localhost",
        )
    given = request.param("token")
    if given is not None:
        if not same_secret(given, token):
            return text(401, "lagless: wrong dashboard token")
        secure = "; Secure" if request.scheme == "https" else ""
        return Response(
            303,
            b"",
            headers=[
                *SECURITY_HEADERS,
                ("location", base),
                (
                    "set-cookie",
                    f"{COOKIE}={cookie_value(token)}; Path={base}; HttpOnly; "
                    f"SameSite=Strict{secure}",
                ),
            ],
        )
    if same_secret(bearer(request), token):
        return None
    if same_secret(request.cookie(COOKIE), cookie_value(token)):
        return None
    return text(401, "lagless: this dashboard needs its token: open it with ?token=<token>")


def static_file(name: str) -> Response:
    """A file from ``static/`` (names are checked against the directory listing, so no path
    from the request ever reaches the file system)."""
    allowed = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
    path = allowed.get(name)
    if path is None:
        return text(404, "lagless: not found")
    content_type = _TYPES.get(path.suffix, "application/octet-stream")
    headers = [*SECURITY_HEADERS, ("content-security-policy", CSP)]
    return Response(200, path.read_bytes(), content_type, headers)


def json_response(data: Any, status: int = 200) -> Response:
    body = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    return Response(status, body, "application/json", [*SECURITY_HEADERS])


def _ms(value: float) -> float | None:
    return round(value * 1000.0, 3) if math.isfinite(value) else None


def _quantiles(hist: ExpHistogram) -> dict[str, float | None]:
    if not hist.count:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    return {
        "p50_ms": _ms(hist.quantile(0.5)),
        "p95_ms": _ms(hist.quantile(0.95)),
        "p99_ms": _ms(hist.quantile(0.99)),
        "max_ms": _ms(hist.max),
    }


def summary(
    stats: Stats,
    *,
    browser: BrowserStats | None,
    samples: list[dict[str, Any]],
    processes: int,
    now: int,
) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-ready data."""
    routes = []
    findings_by_route: dict[str, list[str]] = {}
    for (code, route), _n in stats.findings.items():
        findings_by_route.setdefault(route, []).append(code)
    for rs in stats.routes.values():
        count = rs.count
        if not count:
            continue
        recent, recent_errors = rs.window.totals(now, RATE_WINDOW_S)
        layers = {
            name: round(rs.layer_seconds[name] * 1000.0 / count, 3)
            for name in LAYERS
            if name in rs.layer_seconds
        }
        item: dict[str, Any] = {
            "method": rs.method,
            "route": rs.route,
            "count": count,
            **_quantiles(rs.duration),
            "mean_ms": _ms(rs.duration.mean),
            "rps": round(recent / RATE_WINDOW_S, 3),
            "series": rs.window.series(now),
            "errors": rs.errors,
            "error_rate": round((recent_errors / recent) if recent else (rs.errors / count), 4),
            "layers": layers,
            "queries_mean": round(rs.queries_sum / count, 2),
            "cache_hit_ratio": (
                round(rs.cache_hits / (rs.cache_hits + rs.cache_misses), 3)
                if rs.cache_hits + rs.cache_misses
                else None
            ),
            "findings": sorted(set(findings_by_route.get(rs.route, ()))),
            "browser": None,
        }
        br = browser.routes.get(rs.route) if browser is not None else None
        if br is not None and br.count:
            item["browser"] = {
                "count": br.count,
                **_quantiles(br.total),
                "server_p50_ms": _ms(br.server.quantile(0.5)) if br.server.count else None,
                "network_p50_ms": _ms(br.network.quantile(0.5)) if br.network.count else None,
                "blocked_mean_ms": round(br.blocked_sum * 1000.0 / br.count, 3),
                "download_mean_ms": round(br.download_sum * 1000.0 / br.count, 3),
            }
        routes.append(item)
    routes.sort(key=lambda r: -(r["p99_ms"] or 0.0) * max(r["count"], 1) ** 0.5)
    findings: dict[tuple[str, str, str], dict[str, Any]] = {}
    for sample in samples:
        for f in sample.get("findings", ()):
            key = (f.get("code", ""), f.get("method", ""), f.get("route", ""))
            seen = findings.get(key)
            if seen is None:
                findings[key] = {
                    "code": f.get("code"),
                    "severity": f.get("severity"),
                    "method": f.get("method"),
                    "route": f.get("route"),
                    "title": f.get("title"),
                    "fix": f.get("fix"),
                    "cost_ms": f.get("cost_ms"),
                    "samples": 1,
                }
            else:
                seen["samples"] += 1
                seen["cost_ms"] = max(seen["cost_ms"] or 0.0, f.get("cost_ms") or 0.0)
    counted = [
        {"code": code, "route": route, "count": n}
        for (code, route), n in sorted(stats.findings.items(), key=lambda kv: -kv[1])
    ]
    total = sum(rs.count for rs in stats.routes.values())
    recent_total = sum(rs.window.totals(now, RATE_WINDOW_S)[0] for rs in stats.routes.values())
    recent_err = sum(rs.window.totals(now, RATE_WINDOW_S)[1] for rs in stats.routes.values())
    return {
        "now": now,
        "processes": processes,
        "window_s": WINDOW_S,
        "rate_window_s": RATE_WINDOW_S,
        "requests": total,
        "rps": round(recent_total / RATE_WINDOW_S, 3),
        "error_rate": round(recent_err / recent_total, 4) if recent_total else 0.0,
        "max_routes": stats.max_routes,
        "folded": stats.folded,
        "relative_error": round(ExpHistogram(5).relative_error, 5),
        "routes": routes,
        "findings": sorted(findings.values(), key=lambda f: -(f["cost_ms"] or 0.0)),
        "finding_counts": counted,
        "slow": samples,
        "browser_unmatched": browser.unmatched if browser is not None else 0,
    }
