"""The bench's HTML report and its SVG plots, self-contained (inline SVG and CSS, no script, no
CDN), so the file opens offline and can be attached to a CI run.

Two plots: latency over time (p50 and p99 of the requests *scheduled* in each interval, so a
stall appears where it began) and the percentile distribution, HdrHistogram-style: the x axis
is ``-log10(1 - q)``, which spreads 90%, 99%, 99.9% evenly, where the tail lives. Both plot
several runs together (naive vs tuned, baseline vs new, A vs B).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lagless._histogram import ExpHistogram
from lagless.loadgen._report import fmt_latency
from lagless.loadgen._results import BenchResult

if TYPE_CHECKING:
    from lagless.loadgen._budget import BudgetReport
    from lagless.loadgen._compare import Comparison

COLOURS = ("#3b6fd8", "#d0577b", "#2e9e6a", "#c27c1a", "#7b4fc2", "#555b66")
_W, _H = 720, 300
_ML, _MR, _MT, _MB = 64, 16, 16, 40
_LEGEND_TOP, _LEGEND_ROW, _CHAR_W = 18, 16, 6.2  # legend band; _CHAR_W: 11px sans, average


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _tick(ms: float) -> str:
    return f"{ms / 1000:g} s" if ms >= 1000 else f"{ms:g}"


def _nice_ticks(lo: float, hi: float, log: bool) -> list[float]:
    if log:
        ticks = []
        e = math.floor(math.log10(lo))
        while 10**e <= hi * 1.0001:
            for m in (1, 2, 5):
                v = m * 10.0**e
                if lo * 0.9999 <= v <= hi * 1.0001:
                    ticks.append(v)
            e += 1
        return ticks
    span = hi - lo or 1.0
    step = 10 ** math.floor(math.log10(span / 5))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= 6:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _chart(
    series: Sequence[tuple[str, str, str, list[tuple[float, float]]]],
    *,
    x_ticks: list[tuple[float, str]],
    x_range: tuple[float, float],
    x_label: str,
    y_label: str,
    title: str,
) -> str:
    """An SVG line chart. ``series``: (label, colour, dash, points); y is log-scaled when
    the values span more than 20x (latencies usually do once a queue forms)."""
    ys = [y for *_, pts in series for _, y in pts if y > 0 and math.isfinite(y)]
    if not ys:
        return f'<p class="muted">{_e(title)}: no data</p>'
    y_lo, y_hi = min(ys), max(ys)
    log = y_hi / y_lo > 20
    if log:
        y_lo, y_hi = 10 ** math.floor(math.log10(y_lo)), 10 ** math.ceil(math.log10(y_hi))
    else:
        y_lo, y_hi = 0.0, y_hi * 1.1
    x_lo, x_hi = x_range
    pw, ph = _W - _ML - _MR, _H - _MT - _MB
    # The legend gets its own band above the plot (wrapping into rows as needed) and the
    # image grows by that much, so a legend never sits on top of the lines it explains.
    legend: list[tuple[float, float]] = []
    lx, row = 0.0, 0
    for label, *_ in series:
        width = 30 + len(label) * _CHAR_W + 16
        if lx and lx + width > pw:
            lx, row = 0.0, row + 1
        legend.append((_ML + lx, _LEGEND_TOP + row * _LEGEND_ROW))
        lx += width
    mt = _LEGEND_TOP + (row + 1) * _LEGEND_ROW + 2
    height = mt + ph + _MB

    def sx(x: float) -> float:
        return _ML + (x - x_lo) / ((x_hi - x_lo) or 1.0) * pw

    def sy(y: float) -> float:
        if log:
            f = (math.log10(max(y, y_lo)) - math.log10(y_lo)) / (
                math.log10(y_hi) - math.log10(y_lo)
            )
        else:
            f = (y - y_lo) / ((y_hi - y_lo) or 1.0)
        return mt + ph - f * ph

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" width="{_W}" '
        f'height="{height}" role="img" aria-label="{_e(title)}" '
        'font-family="system-ui, sans-serif" font-size="11">',
        f'<rect x="0" y="0" width="{_W}" height="{height}" fill="#ffffff"/>',
    ]
    for v in _nice_ticks(max(y_lo, 1e-9) if log else y_lo, y_hi, log):
        y = sy(v)
        out.append(
            f'<line x1="{_ML}" x2="{_W - _MR}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eceae4"/>'
            f'<text x="{_ML - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#646b78">'
            f"{_e(_tick(v))}</text>"
        )
    for v, label in x_ticks:
        x = sx(v)
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{mt}" y2="{mt + ph}" stroke="#f3f2ee"/>'
            f'<text x="{x:.1f}" y="{mt + ph + 15}" text-anchor="middle" fill="#646b78">'
            f"{_e(label)}</text>"
        )
    out.append(
        f'<line x1="{_ML}" x2="{_ML}" y1="{mt}" y2="{mt + ph}" stroke="#8a8f99"/>'
        f'<line x1="{_ML}" x2="{_W - _MR}" y1="{mt + ph}" y2="{mt + ph}" stroke="#8a8f99"/>'
        f'<text x="{_ML + pw / 2}" y="{height - 6}" text-anchor="middle" fill="#1c2230">'
        f"{_e(x_label)}</text>"
        f'<text x="14" y="{mt + ph / 2}" text-anchor="middle" fill="#1c2230" '
        f'transform="rotate(-90 14 {mt + ph / 2})">{_e(y_label)}'
        f"{' (log scale)' if log else ''}</text>"
    )
    for i, (label, colour, dash, pts) in enumerate(series):
        good = [(x, y) for x, y in pts if y > 0 and math.isfinite(y)]
        if not good:
            continue
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in good)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.8"'
            f"{dash_attr}/>"
        )
        lx, ly = legend[i]
        out.append(
            f'<line x1="{lx:.1f}" x2="{lx + 24:.1f}" y1="{ly - 4:.1f}" y2="{ly - 4:.1f}" '
            f'stroke="{colour}" stroke-width="2"{dash_attr}/>'
            f'<text x="{lx + 30:.1f}" y="{ly:.1f}" fill="#1c2230">{_e(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def percentile_points(h: ExpHistogram) -> list[tuple[float, float]]:
    """(``-log10(1-q)``, latency ms) from p0 up to the deepest quantile the samples support."""
    if not h.count:
        return []
    deepest = math.log10(h.count) if h.count > 1 else 0.0
    pts = []
    steps = max(int(deepest * 25), 1)
    for i in range(steps + 1):
        x = deepest * i / steps
        q = 1 - 10 ** (-x)
        pts.append((x, h.quantile(min(q, 1.0))))
    return pts


def percentile_svg(series: Sequence[tuple[str, ExpHistogram]], title: str = "") -> str:
    """The percentile distribution of one or more histograms (one line each)."""
    lines = [
        (label, COLOURS[i % len(COLOURS)], "", percentile_points(h))
        for i, (label, h) in enumerate(series)
    ]
    deepest = max((pts[-1][0] for *_, pts in lines if pts), default=1.0) or 1.0
    ticks = [(0.0, "p0"), (1.0, "p90"), (2.0, "p99"), (3.0, "p99.9"), (4.0, "p99.99")]
    ticks = [(x, label) for x, label in ticks if x <= deepest + 1e-9]
    return _chart(
        lines,
        x_ticks=ticks,
        x_range=(0.0, max(deepest, 1.0)),
        x_label="percentile",
        y_label="latency, ms",
        title=title or "percentile distribution",
    )


def over_time_svg(results: Sequence[BenchResult], title: str = "") -> str:
    """p50 (solid) and p99 (dashed) of each interval, per run."""
    lines: list[tuple[str, str, str, list[tuple[float, float]]]] = []
    x_hi = 1.0
    for i, r in enumerate(results):
        colour = COLOURS[i % len(COLOURS)]
        name = r.label or r.target
        p50, p99 = [], []
        for k, iv in enumerate(r.timeline):
            if iv.histogram.count:
                t = (k + 0.5) * r.interval_s
                p50.append((t, iv.histogram.quantile(0.5)))
                p99.append((t, iv.histogram.quantile(0.99)))
        x_hi = max(x_hi, len(r.timeline) * r.interval_s)
        lines.append((f"{name} p50", colour, "", p50))
        lines.append((f"{name} p99", colour, "5 3", p99))
    ticks = [(v, f"{v:g}s") for v in _nice_ticks(0.0, x_hi, False)]
    return _chart(
        lines,
        x_ticks=ticks,
        x_range=(0.0, x_hi),
        x_label="time of scheduled start (s after warm-up)",
        y_label="latency, ms",
        title=title or "latency over time",
    )


_CSS = """
:root { font-family: system-ui, -apple-system, sans-serif; color: #1c2230; background: #fafaf7; }
body { max-width: 64rem; margin: 0 auto; padding: 1.5rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.muted { color: #646b78; } .bad { background: #fbe3e1; padding: .6rem .9rem; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin: .6rem 0; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #eceae4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.regressed { color: #b3261e; font-weight: 600; } .improved { color: #2e7d32; }
.nowrap { white-space: nowrap; }
.budgets td, .budgets th { vertical-align: top; }
.budgets td:nth-child(4), .budgets th:nth-child(4) { text-align: center; }
.budgets .reason, .budgets th:last-child { text-align: left; color: #646b78; width: 45%; }
svg { max-width: 100%; height: auto; border: 1px solid #eceae4; border-radius: 6px; }
"""


def _result_table(r: BenchResult) -> str:
    rows = []
    for stats in [*r.routes.values(), *([r.total] if len(r.routes) > 1 else [])]:
        h = stats.histogram
        cells = "".join(
            f"<td>{_e(fmt_latency(h.quantile(q)) if h.count else '-')}</td>"
            for q in (0.5, 0.9, 0.99, 0.999)
        )
        rows.append(
            f"<tr><td>{_e(stats.name)}</td><td>{stats.requests:,}</td>"
            f"<td>{stats.requests / r.duration_s if r.duration_s else 0:,.1f}</td>{cells}"
            f"<td>{_e(fmt_latency(h.max) if h.count else '-')}</td>"
            f"<td>{stats.error_count} ({stats.error_rate:.1%})</td></tr>"
        )
    return (
        "<table><tr><th>route</th><th>requests</th><th>req/s</th><th>p50</th><th>p90</th>"
        "<th>p99</th><th>p99.9</th><th>max</th><th>errors</th></tr>" + "".join(rows) + "</table>"
    )


def render_html(
    results: Sequence[BenchResult],
    *,
    comparison: Comparison | None = None,
    budgets: BudgetReport | None = None,
    title: str = "lagless bench",
) -> str:
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>"
    ]
    for r in results:
        how = (
            f"open loop at {r.rate:g} req/s"
            if r.mode == "open" and r.rate
            else "open loop, staged rates"
            if r.mode == "open"
            else f"closed loop, {r.users} users"
            if r.mode == "closed"
            else r.mode
        )
        parts.append(
            f"<h2>{_e(r.label or r.target)}</h2><p class=muted>{_e(r.target)} · {_e(how)} · "
            f"{r.duration_s:g} s measured · {r.achieved_rate:,.1f} req/s · {_e(r.started_at)}</p>"
        )
        if not r.valid:
            parts.append(
                "<div class=bad><b>Invalid run:</b> "
                + "; ".join(_e(x) for x in r.invalid_reasons)
                + "</div>"
            )
        parts.append(_result_table(r))
        parts.extend(f"<p class=muted>note: {_e(n)}</p>" for n in r.notes)
    parts.append("<h2>Latency over time</h2>" + over_time_svg(results))
    parts.append(
        "<h2>Percentile distribution</h2>"
        + percentile_svg([(r.label or r.target, r.total.histogram) for r in results])
    )
    for r in results:
        if len(r.routes) > 1:
            parts.append(
                f"<h3>{_e(r.label or r.target)}, by route</h3>"
                + percentile_svg([(s.name, s.histogram) for s in r.routes.values()])
            )
    if comparison is not None:
        parts.append(
            f"<h2>Comparison: {_e(comparison.verdict)}</h2><table><tr><th>route</th>"
            "<th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>errors</th><th>verdict</th></tr>"
        )
        for rc in [*comparison.routes, comparison.total]:
            cells = "".join(
                f"<td class='{_e(q.verdict)}' title='{_e(q.reason)}'>"
                f"{_e(fmt_latency(q.old_ms))} → {_e(fmt_latency(q.new_ms))}</td>"
                for q in rc.quantiles
            )
            parts.append(
                f"<tr><td>{_e(rc.name)}</td>{cells}<td>{rc.old_error_rate:.1%} → "
                f"{rc.new_error_rate:.1%}</td>"
                f"<td class='{_e(rc.verdict)}'>{_e(rc.verdict)}</td></tr>"
            )
        parts.append("</table>")
        parts.extend(f"<p class=bad>{_e(w)}</p>" for w in comparison.warnings)
    if budgets is not None:
        parts.append(
            "<h2>Budgets</h2><table class=budgets><tr><th>route</th><th>limit</th><th>actual</th>"
            "<th>result</th><th>why</th></tr>"
        )
        for c in budgets.checks:
            actual = (
                "-"
                if c.actual is None
                else (f"{c.actual:.2%}" if c.metric == "error_rate" else fmt_latency(c.actual))
            )
            limit = (
                f"errors ≤ {c.limit:.2%}"
                if c.metric == "error_rate"
                else "-"
                if c.metric == "route"
                else f"{c.metric} ≤ {fmt_latency(c.limit)}"
            )
            verdict = "ok" if c.passed else "BROKEN"
            parts.append(
                f"<tr><td>{_e(c.route)}</td><td class=nowrap>{_e(limit)}</td>"
                f"<td class=nowrap>{_e(actual)}</td>"
                f"<td class='nowrap {'improved' if c.passed else 'regressed'}'>{verdict}</td>"
                f"<td class=reason>{'' if c.passed else _e(c.reason)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_html(path: str | Path, results: Sequence[BenchResult], **kwargs: Any) -> None:
    Path(path).write_text(render_html(results, **kwargs), encoding="utf-8")


def write_svg(path: str | Path, results: Sequence[BenchResult]) -> None:
    """The percentile-distribution plot alone (for a README)."""
    svg = percentile_svg([(r.label or r.target, r.total.histogram) for r in results])
    Path(path).write_text(svg + "\n", encoding="utf-8")
