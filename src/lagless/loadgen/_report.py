"""Terminal output of ``lagless bench``: the live progress bar and the result tables (rich)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from lagless.loadgen._engine import Snapshot
from lagless.loadgen._results import BenchResult, RouteStats

if TYPE_CHECKING:
    from lagless.loadgen._budget import BudgetReport
    from lagless.loadgen._compare import ABReport, Comparison

_UNITS = 'latency in ms ("s": seconds)'
_QS = ((0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9"))


def fmt_ms(value: float | None) -> str:
    if value is None or math.isnan(value) or math.isinf(value):
        return "-"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def fmt_latency(value: float | None) -> str:
    """:func:`fmt_ms` with its unit always written: ``"301 ms"``, ``"2.52 s"``, ``"-"``."""
    text = fmt_ms(value)
    return text if text == "-" or text.endswith(" s") else f"{text} ms"


@contextmanager
def live_progress(console: Console, enabled: bool) -> Iterator[Callable[[Snapshot], None] | None]:
    """A progress bar showing elapsed time, the current rate, p50/p99 and errors, or ``None``
    (no terminal, or ``--quiet``)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[stats]}"),
        console=console,
        transient=True,
        auto_refresh=False,
    )
    task = progress.add_task("warm-up", total=1.0, stats="")

    def hook(snap: Snapshot) -> None:
        stats = (
            f"{snap.rate:7.0f} req/s  p50 {fmt_ms(snap.p50_ms):>6} ms  "
            f"p99 {fmt_ms(snap.p99_ms):>6} ms  errors {snap.errors}  in flight {snap.in_flight}"
        )
        progress.update(
            task,
            completed=min(snap.elapsed_s / snap.total_s, 1.0) if snap.total_s else 0.0,
            description="warm-up" if snap.warming_up else "loading",
            stats=stats,
        )
        progress.refresh()

    with progress:
        yield hook


def _route_row(stats: RouteStats, duration: float) -> list[str]:
    h = stats.histogram
    cells = [fmt_ms(h.quantile(q)) if h.count else "-" for q, _ in _QS]
    errors = stats.error_count
    err = f"{errors} ({stats.error_rate:.1%})" if errors else "0"
    return [
        stats.name,
        f"{stats.requests:,}",
        f"{stats.requests / duration:,.1f}" if duration else "-",
        *cells,
        fmt_ms(h.max) if h.count else "-",
        err,
    ]


def result_table(result: BenchResult, title: str | None = None) -> Table:
    table = Table(
        title=title,
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        caption=_UNITS,
        padding=(0, 1, 0, 0),  # one space between columns, not two: room for the figures
        caption_justify="left",
    )
    longest = max((len(name) for name in result.routes), default=10)
    # On a narrow terminal (80 columns, or a CI log) the route names fold onto more lines and
    # every figure stays whole: a number cut to "4.5" or a column cropped off the edge
    # (errors) would be read wrongly or not at all.
    table.add_column("route", overflow="fold", min_width=min(longest, 8))
    table.add_column("req", justify="right", no_wrap=True)
    table.add_column("req/s", justify="right", no_wrap=True)
    for _, name in _QS:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("max", justify="right", no_wrap=True)
    table.add_column("errors", justify="right", no_wrap=True)
    for stats in result.routes.values():
        table.add_row(*_route_row(stats, result.duration_s))
    if len(result.routes) > 1:
        table.add_row(*_route_row(result.total, result.duration_s), style="bold")
    return table


def print_result(console: Console, result: BenchResult) -> None:
    if result.mode == "open":
        how = f"open loop at {result.rate:g} req/s" if result.rate else "open loop, staged rates"
        how += ", latency from each request's scheduled start"
    elif result.mode == "closed":
        how = f"closed loop, {result.users} users (latency from the actual send)"
    else:
        how = result.mode
    console.print(
        f"[bold]{result.label or result.target}[/]: {how}; {result.duration_s:g} s measured"
        + (f" after {result.warmup_s:g} s warm-up" if result.warmup_s else "")
        + f", {result.achieved_rate:,.1f} req/s achieved"
    )
    console.print(result_table(result))
    errors: dict[str, int] = {}
    for stats in result.routes.values():
        for reason, n in stats.errors.items():
            errors[reason] = errors.get(reason, 0) + n
        for status, n in stats.statuses.items():
            if status >= 400:
                errors[f"HTTP {status}"] = errors.get(f"HTTP {status}", 0) + n
    if errors:
        console.print(
            "[red]errors:[/] " + ", ".join(f"{k} x{v}" for k, v in sorted(errors.items()))
        )
    gen = result.generator
    if gen.dispatch_lateness.count:
        console.print(
            f"[dim]generator: dispatch lateness p99 {fmt_ms(gen.dispatch_lateness.quantile(0.99))}"
            f" ms, {gen.late_dispatches} later than {gen.late_tolerance_ms:g} ms"
            + (f"; CPU {gen.cpu_fraction:.0%} of a core" if gen.cpu_fraction is not None else "")
            + "[/]"
        )
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]")
    if not result.valid:
        console.print(
            "[bold red]INVALID RUN[/] (the figures above include the generator's own delay):"
        )
        for reason in result.invalid_reasons:
            console.print(f"  [red]- {reason}[/]")


_VERDICT_STYLE = {
    "regressed": "bold red",
    "improved": "green",
    "unchanged": "",
    "too few samples": "dim",
}


def print_comparison(console: Console, cmp: Comparison, title: str = "") -> None:
    table = Table(
        title=title or f"{cmp.new_label} against baseline {cmp.old_label}",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        # Cells read "602 → 1.98 s": a header saying "ms" would contradict the seconds.
        caption=_UNITS,
        caption_justify="left",
    )
    table.add_column("route", overflow="fold")
    for _, name in _QS:
        table.add_column(name, justify="right")
    table.add_column("errors", justify="right")
    table.add_column("p", justify="right")
    table.add_column("verdict")
    for rc in [*cmp.routes, cmp.total]:
        cells = []
        for qv in rc.quantiles:
            style = _VERDICT_STYLE[qv.verdict]
            text = f"{fmt_ms(qv.old_ms)} → {fmt_ms(qv.new_ms)}"
            if qv.verdict == "too few samples":
                text += " ?"
            cells.append(f"[{style}]{text}[/]" if style else text)
        err = f"{rc.old_error_rate:.1%} → {rc.new_error_rate:.1%}"
        p = f"{rc.p_value:.2g}" if rc.p_value is not None else ""
        style = _VERDICT_STYLE[rc.verdict]
        table.add_row(rc.name, *cells, err, p, f"[{style}]{rc.verdict}[/]" if style else rc.verdict)
    console.print(table)
    console.print(
        f"[dim]thresholds: +{cmp.thresholds.rel:.0%} and +{cmp.thresholds.abs_ms:g} ms, "
        f"non-overlapping 95% intervals, {cmp.thresholds.min_tail} samples beyond each "
        "quantile; '?' = too few samples to judge; max is never judged[/]"
    )
    for w in cmp.warnings:
        console.print(f"[yellow]warning: {w}[/]")
    for name in cmp.only_old:
        console.print(f"[dim]only in the baseline: {name}[/]")
    for name in cmp.only_new:
        console.print(f"[dim]new route: {name}[/]")
    style = _VERDICT_STYLE[cmp.verdict]
    console.print(f"verdict: [{style or 'bold'}]{cmp.verdict}[/]")


def print_ab(console: Console, report: ABReport) -> None:
    print_result(console, report.a)
    print_result(console, report.b)
    print_comparison(
        console,
        report.comparison,
        title=f"B ({report.b.label}) against A ({report.a.label}), {report.rounds} interleaved "
        "rounds each",
    )
    console.print(
        f"[dim]B's median was above A's in {report.b_slower_rounds} of {report.rounds} rounds[/]"
    )


def print_budgets(console: Console, report: BudgetReport) -> None:
    table = Table(title="budgets", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("route", overflow="fold")
    table.add_column("limit")
    table.add_column("actual", justify="right")
    table.add_column("")
    for c in report.checks:
        if c.metric == "error_rate":
            limit, actual = (
                f"errors ≤ {c.limit:.2%}",
                (f"{c.actual:.2%}" if c.actual is not None else "-"),
            )
        elif c.metric == "route":
            limit, actual = "-", "-"
        else:
            limit, actual = f"{c.metric} ≤ {fmt_latency(c.limit)}", fmt_latency(c.actual)
        mark = "[green]ok[/]" if c.passed else f"[bold red]BROKEN[/] {c.reason}"
        table.add_row(c.route, limit, actual, mark)
    console.print(table)
    if report.invalid_run:
        console.print("[bold red]not passed: the run is invalid (generator saturated)[/]")
    elif report.passed:
        console.print("[green]all budgets met[/]")
    else:
        console.print(f"[bold red]{len(report.broken)} budget(s) broken[/]")
