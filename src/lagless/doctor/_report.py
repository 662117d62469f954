"""The doctor's report: one object, three renderings (terminal, JSON, HTML in ``_html``).

The JSON shape is a contract for CI scripts: a top-level ``findings`` list (each with at least
``code``, ``severity``, ``route``, ``title``, ``evidence``, ``cost_ms`` and ``fix``) and a
``routes`` list with per-route percentiles. Add keys freely; never rename these.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lagless.detectors._base import SEVERITIES
from lagless.doctor._runner import RunResult
from lagless.doctor._stats import RouteStats, route_stats

if TYPE_CHECKING:
    from rich.console import Console

    from lagless.detectors import Finding

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "bold yellow",
    "low": "cyan",
    "info": "dim",
}
_SEVERITY_ORDER = tuple(reversed(SEVERITIES))  # worst first


@dataclasses.dataclass
class DoctorReport:
    """Everything a doctor run found. ``findings`` are ranked worst total cost first."""

    run: RunResult
    findings: list[Finding]
    routes: list[RouteStats]
    generated_at: str = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )

    @classmethod
    def build(cls, run: RunResult, findings: Sequence[Finding]) -> DoctorReport:
        return cls(run, list(findings), route_stats(run.traces))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = dict.fromkeys(_SEVERITY_ORDER, 0)
        for f in self.findings:
            out[f.severity] = out.get(f.severity, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        from lagless import __version__

        run = self.run
        return {
            "lagless": __version__,
            "target": run.target,
            "source": run.source,
            "generated_at": self.generated_at,
            "limited": run.limited,
            "settings": {
                "runs": run.options.runs,
                "warmup": run.options.warmup,
                "concurrency": run.options.concurrency,
            },
            "requests": len(run.traces),
            "elapsed_s": round(run.elapsed_s, 3),
            "summary": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "routes": [r.to_dict() for r in self.routes],
            "skipped": [dataclasses.asdict(s) for s in run.skipped],
            "failures": list(run.failures),
        }

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps(self.to_dict(), indent=2, default=str) + "\n", encoding="utf-8"
        )

    def write_html(self, path: str | Path) -> None:
        from lagless.doctor._html import render_html

        Path(path).write_text(render_html(self), encoding="utf-8")

    # -- terminal ------------------------------------------------------------------------------

    def print(self, console: Console, *, max_evidence: int = 3) -> None:
        from rich.markup import escape
        from rich.table import Table
        from rich.text import Text

        run = self.run
        if run.source == "analyze":
            console.print(
                f"[bold]lagless analyze[/] · {escape(run.target)} · "
                f"{plural(len(run.traces), 'trace')} over {plural(len(self.routes), 'route')}"
            )
        else:
            console.print(
                f"[bold]lagless doctor[/] · {escape(run.target)} · "
                f"{plural(len(run.traces), 'measured request')} over "
                f"{plural(len(self.routes), 'route')} in {run.elapsed_s:.1f} s"
            )
        if run.limited:
            console.print(
                "[yellow]URL target: findings are limited to what responses show (caching, "
                "payload, compression, static assets) and Server-Timing. For query-level "
                "findings run the app in process (module:app) or export traces with "
                "LAGLESS_TRACE_FILE and use `lagless analyze`.[/]"
            )
        table = Table(title="Latency per route (server-side)", title_justify="left")
        for col, justify in (
            ("method", "left"),
            ("route", "left"),
            ("req", "right"),
            ("p50 ms", "right"),
            ("p95 ms", "right"),
            ("p99 ms", "right"),
            ("queries", "right"),
            ("size", "right"),
        ):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for r in self.routes:
            table.add_row(
                r.method,
                r.route,
                str(r.requests),
                f"{r.p50_ms:.1f}",
                f"{r.p95_ms:.1f}",
                f"{r.p99_ms:.1f}",
                f"{r.mean_queries:.0f}",
                human_bytes(r.mean_bytes),
            )
        console.print(table)
        if not self.findings:
            console.print("[bold green]No findings.[/] Nothing to fix on the routes exercised.")
        else:
            console.print(f"\n[bold]Findings[/] (worst total cost first): {len(self.findings)}\n")
        for i, f in enumerate(self.findings, 1):
            head = Text(f"{i:>2}. ")
            head.append(f" {f.severity.upper()} ", style=SEVERITY_STYLE.get(f.severity, ""))
            head.append(f" {f.code} ", style="bold")
            head.append(f"{f.method} {f.route}")
            head.append(f"  ~{f.cost_ms:.1f} ms/request x {f.requests}", style="dim")
            console.print(head)
            console.print(Text(f"    {f.title}"))
            for item in f.evidence[:max_evidence]:
                console.print(Text("      · " + evidence_line(item), style="dim"))
            if len(f.evidence) > max_evidence:
                console.print(Text(f"      · … {len(f.evidence) - max_evidence} more", style="dim"))
            console.print(Text("    fix: ", style="green").append(f.fix, style=""))
        if run.skipped:
            console.print(f"\n[bold]Skipped[/] {plural(len(run.skipped), 'route')}:")
            for s in run.skipped:
                console.print(Text(f"  {s.method} {s.route}: {s.reason}"))
        if run.failures:
            console.print(f"\n[bold red]Failed requests[/] ({len(run.failures)}):")
            for line in _dedupe(run.failures)[:10]:
                console.print(Text(f"  {line}"))
        counts = self.counts()
        summary = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
        console.print(f"\n[bold]Summary:[/] {summary or 'no findings'}")


def evidence_line(item: dict[str, Any], width: int = 110) -> str:
    """One evidence dict as a line: what, how many times, how long."""
    what = item.get("statement") or item.get("call") or item.get("name") or ""
    what = " ".join(str(what).split())
    parts = []
    if "count" in item:
        parts.append(f"{item['count']}x")
    if "total_ms" in item:
        # The time of all ``count`` occurrences together ("5x 20.3 ms" read as 20.3 ms each).
        parts.append(f"{float(item['total_ms']):.1f} ms total")
    extra = [
        f"{k}={v}"
        for k, v in item.items()
        if k not in ("statement", "call", "name", "count", "total_ms") and v is not None
    ]
    line = (", ".join(parts) + ": " if parts else "") + what
    if extra:
        line += "  (" + ", ".join(extra)[:80] + ")"
    return line if len(line) <= width else line[: width - 1] + "…"


def plural(n: int, noun: str) -> str:
    """``1 route``, ``2 routes``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} MB"


def _dedupe(lines: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    for line in lines:
        counts[line] = counts.get(line, 0) + 1
    return [f"{line} (x{n})" if n > 1 else line for line, n in counts.items()]
