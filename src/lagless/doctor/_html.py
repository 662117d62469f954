"""The doctor's HTML report: one self-contained file (inline CSS and a few lines of inline JS,
no external resource), so it opens offline, attaches to a CI run, and cannot leak a request to
a CDN. Every value from the app (routes, SQL, headers) is HTML-escaped.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from lagless._sql import redact
from lagless._trace import Trace

if TYPE_CHECKING:
    from lagless.doctor._report import DoctorReport

_KIND_COLOURS = {
    "db": "#3b6fd8",
    "pool": "#7b9be0",
    "cache": "#2e9e6a",
    "http": "#c27c1a",
    "serialize": "#a04ec2",
    "middleware": "#7a7f8c",
    "handler": "#b8bcc6",
    "custom": "#d0577b",
}
_MAX_WATERFALL_SPANS = 150

_CSS = """
:root { font-family: system-ui, -apple-system, sans-serif; color: #1c2230; background: #fafaf7; }
body { max-width: 78rem; margin: 0 auto; padding: 1.5rem; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ddd; }
.muted { color: #646b78; } .warn { background: #fff4d6; padding: .6rem .9rem; border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { padding: .35rem .55rem; border-bottom: 1px solid #eceae4; text-align: left;
  vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #e7e9ef; height: .55rem; border-radius: 3px; min-width: 2px; }
.bar > span { display: block; height: 100%; background: #3b6fd8; border-radius: 3px; }
.sev { display: inline-block; padding: .05rem .45rem; border-radius: 4px; font-size: .78rem;
  font-weight: 600; text-transform: uppercase; }
.sev-critical { background: #c62828; color: #fff; }
.sev-high { background: #f4c7c3; color: #8c1c13; }
.sev-medium { background: #fbe7b5; color: #7a5300; }
.sev-low { background: #d7ecf7; color: #114f6e; }
.sev-info { background: #ececec; color: #555; }
details.finding { background: #fff; border: 1px solid #e4e2dc; border-radius: 8px; margin: .6rem 0;
  padding: .5rem .9rem; }
details.finding summary { cursor: pointer; font-weight: 600; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85rem; }
pre { background: #f3f2ee; padding: .6rem; border-radius: 6px; white-space: pre-wrap; }
.wf { position: relative; height: 1.1rem; background: #f1f1ed; border-radius: 3px; }
.wf > span { position: absolute; top: 0; bottom: 0; border-radius: 3px; min-width: 1px; }
.wf-label { font-family: ui-monospace, monospace; font-size: .78rem; white-space: nowrap;
  overflow: hidden; text-overflow: ellipsis; max-width: 34rem; }
.legend span { display: inline-block; margin-right: .8rem; font-size: .8rem; }
.legend i { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px;
  margin-right: .25rem; vertical-align: middle; }
.filters button { margin-right: .3rem; }
"""

_JS = """
document.querySelectorAll('.filters button').forEach(function (b) {
  b.addEventListener('click', function () {
    var sev = b.getAttribute('data-sev');
    document.querySelectorAll('details.finding').forEach(function (d) {
      d.style.display = (sev === 'all' || d.getAttribute('data-sev') === sev) ? '' : 'none';
    });
  });
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _routes_table(report: DoctorReport) -> str:
    worst = max((r.p95_ms for r in report.routes), default=0.0) or 1.0
    rows = []
    for r in report.routes:
        width = max(r.p95_ms / worst * 100, 0.5)
        rows.append(
            "<tr>"
            f"<td>{_e(r.method)}</td><td><code>{_e(r.route)}</code></td>"
            f"<td class=num>{r.requests}</td><td class=num>{r.p50_ms:.1f}</td>"
            f"<td class=num>{r.p95_ms:.1f}</td><td class=num>{r.p99_ms:.1f}</td>"
            f"<td class=num>{r.max_ms:.1f}</td><td class=num>{r.mean_queries:.0f}</td>"
            f"<td class=num>{r.mean_bytes:,.0f}</td>"
            f'<td style="width:14rem"><div class=bar>'
            f'<span style="width:{width:.1f}%"></span></div></td>'
            "</tr>"
        )
    return (
        "<table><thead><tr><th>method</th><th>route</th><th class=num>requests</th>"
        "<th class=num>p50 ms</th><th class=num>p95 ms</th><th class=num>p99 ms</th>"
        "<th class=num>max ms</th><th class=num>queries</th><th class=num>bytes</th>"
        "<th>p95</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _evidence_table(evidence: tuple[dict[str, Any], ...]) -> str:
    if not evidence:
        return ""
    keys: list[str] = []
    for item in evidence:
        for k, v in item.items():
            # An unknown value (a driver that does not report row counts) is left blank,
            # not printed as "None".
            if k not in keys and v is not None:
                keys.append(k)
    head = "".join(f"<th>{_e(k)}</th>" for k in keys)
    rows = []
    for item in evidence[:50]:
        cells = []
        for k in keys:
            v = item.get(k)
            v = "" if v is None else v
            text = f"{v:.2f}" if isinstance(v, float) else str(v)
            cells.append(
                f"<td><code>{_e(text)}</code></td>"
                if k in ("statement", "call")
                else f"<td>{_e(text)}</td>"
            )
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = f"<p class=muted>… {len(evidence) - 50} more</p>" if len(evidence) > 50 else ""
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{more}"


def _findings(report: DoctorReport) -> str:
    if not report.findings:
        return "<p><strong>No findings.</strong> Nothing to fix on the routes exercised.</p>"
    out = ['<p class="filters">Show: <button data-sev="all">all</button>']
    for sev, n in report.counts().items():
        if n:
            out.append(f'<button data-sev="{_e(sev)}">{_e(sev)} ({n})</button>')
    out.append("</p>")
    for i, f in enumerate(report.findings):
        opened = " open" if i < 5 else ""
        potential = " <span class=muted>(potential)</span>" if f.potential else ""
        out.append(
            f'<details class="finding" data-sev="{_e(f.severity)}"{opened}><summary>'
            f'<span class="sev sev-{_e(f.severity)}">{_e(f.severity)}</span> '
            f"<code>{_e(f.code)}</code> · {_e(f.method)} <code>{_e(f.route)}</code> · "
            f"~{f.cost_ms:.1f} ms/request x {f.requests}{potential}</summary>"
            f"<p>{_e(f.title)}</p>{_evidence_table(f.evidence)}"
            f"<p><strong>Fix</strong></p><pre>{_e(f.fix)}</pre></details>"
        )
    return "".join(out)


def waterfall(trace: Trace) -> str:
    """A representative request's spans on a time axis (HTML, escaped)."""
    total = max(trace.duration_ns, 1)
    spans = trace.ordered_spans()
    rows = []
    for span in spans[:_MAX_WATERFALL_SPANS]:
        left = max((span.start_ns - trace.start_ns) / total * 100, 0.0)
        width = max(span.duration_ns / total * 100, 0.15)
        width = min(width, 100 - min(left, 99.85))
        colour = _KIND_COLOURS.get(span.kind, "#888")
        name = redact(span.name) if span.kind == "db" else span.name
        rows.append(
            "<tr>"
            f"<td>{_e(span.kind)}</td>"
            f'<td><div class="wf-label" title="{_e(name)}">{_e(name)}</div></td>'
            f"<td class=num>{trace.offset_ms(span):.2f}</td>"
            f"<td class=num>{span.duration_ms:.2f}</td>"
            f'<td style="width:40%"><div class=wf><span style="left:{left:.2f}%;width:{width:.2f}%;'
            f'background:{colour}"></span></div></td></tr>'
        )
    more = ""
    if len(spans) > _MAX_WATERFALL_SPANS:
        more = f"<p class=muted>… {len(spans) - _MAX_WATERFALL_SPANS} more spans</p>"
    if not rows:
        return (
            f"<p class=muted>{trace.duration_ms:.2f} ms, no spans recorded"
            + (" (URL target: the server keeps them)" if trace.attrs.get("source") else "")
            + ".</p>"
        )
    return (
        f"<p class=muted>{_e(trace.method)} {_e(trace.path)} → {trace.status}, "
        f"{trace.duration_ms:.2f} ms, {len(spans)} spans</p>"
        "<table><thead><tr><th>kind</th><th>span</th><th class=num>start ms</th>"
        "<th class=num>ms</th><th>timeline</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + more
    )


def _waterfalls(report: DoctorReport) -> str:
    legend = "".join(
        f'<span><i style="background:{c}"></i>{_e(k)}</span>' for k, c in _KIND_COLOURS.items()
    )
    parts = [f'<p class="legend">{legend}</p>']
    for i, r in enumerate(report.routes):
        opened = " open" if i == 0 else ""
        parts.append(
            f"<details{opened}><summary>{_e(r.method)} <code>{_e(r.route)}</code> "
            f"(median request, p50 {r.p50_ms:.1f} ms)</summary>"
            f"{waterfall(r.representative)}</details>"
        )
    return "".join(parts)


def render_html(report: DoctorReport) -> str:
    run = report.run
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n) or "no findings"
    limited = (
        '<p class="warn">URL target: findings are limited to what responses show (caching, '
        "payload, compression, static assets). Run the app in process for query-level findings.</p>"
        if run.limited
        else ""
    )
    skipped = ""
    if run.skipped:
        items = "".join(
            f"<li>{_e(s.method)} <code>{_e(s.route)}</code>: {_e(s.reason)}</li>"
            for s in run.skipped
        )
        skipped = f"<h2>Skipped routes</h2><ul>{items}</ul>"
    failures = ""
    if run.failures:
        items = "".join(f"<li>{_e(line)}</li>" for line in run.failures[:50])
        failures = f"<h2>Failed requests</h2><ul>{items}</ul>"
    if run.source == "analyze":
        about = f"{len(run.traces)} traces read from files"
    else:
        about = (
            f"{len(run.traces)} measured requests ({run.options.runs} runs per route, "
            f"{run.options.warmup} warm-up, concurrency {run.options.concurrency}) · "
            f"{run.elapsed_s:.1f} s"
        )
    title = "lagless analyze" if run.source == "analyze" else "lagless doctor"
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        f"<title>{title}: {_e(run.target)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{title}</h1><p class=muted>{_e(run.target)} · {_e(about)} · "
        f"{_e(report.generated_at)}</p>"
        f"{limited}<p><strong>{_e(counts)}</strong></p>"
        f"<h2>Findings</h2>{_findings(report)}"
        f"<h2>Latency per route</h2>{_routes_table(report)}"
        f"<h2>Waterfalls</h2>{_waterfalls(report)}{skipped}{failures}"
        f"<script>{_JS}</script></body></html>\n"
    )
