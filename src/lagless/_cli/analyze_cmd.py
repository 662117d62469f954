"""``lagless analyze``: run the detectors over traces exported elsewhere (production, CI)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lagless._trace import Trace
from lagless.detectors._base import SEVERITIES
from lagless.errors import LaglessError

# Worst first, as the choices read in --help.
_SEVERITIES = tuple(reversed(SEVERITIES))


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "analyze",
        help="find latency problems in exported traces (lagless JSON or OpenTelemetry OTLP/JSON)",
        description=(
            "Run lagless's detectors over traces recorded elsewhere: lagless's own export "
            "(lagless.export_traces() or the LAGLESS_TRACE_FILE JSON-lines file) or "
            "OpenTelemetry OTLP/JSON span exports (the Collector's file exporter). By default "
            "the production thresholds apply (a problem must cost time as well as repeat); "
            "--mode doctor applies the count-only thresholds used on a laptop."
        ),
        epilog="example: lagless analyze traces.jsonl otel-export.json --html report.html",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="trace files to read")
    p.add_argument(
        "--mode",
        choices=("production", "doctor"),
        default="production",
        help="thresholds to apply (default: production)",
    )
    p.add_argument("--html", metavar="PATH", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="PATH", help="write the findings and figures as JSON")
    p.add_argument(
        "--fail-on",
        choices=_SEVERITIES,
        metavar="SEVERITY",
        help="exit 1 if any finding is this severe or worse",
    )
    p.add_argument(
        "--disable", action="append", default=[], metavar="CODE", help="switch a detector off"
    )
    p.set_defaults(func=run)


def load_any(path: str | Path) -> list[Trace]:
    """Traces from one file, lagless export or OTLP/JSON, told apart by their content."""
    from lagless._export import TraceFormatError, iter_trace_dicts, trace_from_dict
    from lagless._otlp import OTLPFormatError, is_otlp, parse_otlp

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise LaglessError(f"cannot read {p}: {exc.strerror or exc}") from None
    first = text.lstrip().split("\n", 1)[0]
    try:
        try:
            head: Any = json.loads(text)
        except json.JSONDecodeError:
            try:
                head = json.loads(first)
            except json.JSONDecodeError:
                raise LaglessError(
                    f"{p}: not JSON (expected a lagless or OTLP/JSON export)"
                ) from None
        if is_otlp(head):
            return parse_otlp(text, source=str(p))
        return [
            _lagless_trace(d, f"{p}: trace {i}", trace_from_dict)
            for i, d in enumerate(iter_trace_dicts(text, source=str(p)), 1)
        ]
    except (TraceFormatError, OTLPFormatError) as exc:
        raise LaglessError(str(exc)) from None
    except RecursionError:
        # json refuses nesting deeper than the interpreter's stack: no export looks like that.
        raise LaglessError(f"{p}: JSON nested too deeply to be a trace export") from None


_TEXT_FIELDS = ("method", "path")


def _lagless_trace(data: Any, where: str, build: Any) -> Trace:
    """One exported trace dict as a :class:`Trace`, after checking the types the detectors and
    the report rely on: a file from elsewhere is input, not trusted (a number where a route
    belongs would otherwise surface as a traceback from deep inside the report)."""
    if not isinstance(data, dict):
        raise LaglessError(f"{where}: must be a JSON object")
    for key in _TEXT_FIELDS:
        if key in data and not isinstance(data[key], str):
            raise LaglessError(f"{where}: {key!r} must be a string")
    if data.get("route") is not None and not isinstance(data["route"], str):
        raise LaglessError(f"{where}: 'route' must be a string or null")
    for key in ("request_headers", "response_headers"):
        headers = data.get(key)
        if headers is not None and not (
            isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
        ):
            raise LaglessError(f"{where}: {key!r} must map header names to strings")
    spans = data.get("spans")
    if spans is not None and not (
        isinstance(spans, list) and all(isinstance(sp, dict) for sp in spans)
    ):
        raise LaglessError(f"{where}: 'spans' must be a list of objects")
    try:
        trace: Trace = build(data)
    except (AttributeError, OverflowError, TypeError, ValueError) as exc:
        raise LaglessError(f"{where}: malformed trace: {exc}") from None
    return trace


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from lagless.detectors import DetectorSettings, analyze, severity_at_least
    from lagless.doctor._report import DoctorReport
    from lagless.doctor._runner import RunOptions, RunResult

    traces: list[Trace] = []
    for name in args.files:
        traces.extend(load_any(name))
    if not traces:
        raise LaglessError("no traces in " + ", ".join(args.files))
    settings = DetectorSettings(disabled=frozenset(args.disable)) if args.disable else None
    findings = analyze(traces, mode=args.mode, settings=settings)
    label = ", ".join(args.files) if len(args.files) <= 3 else f"{len(args.files)} files"
    result = RunResult(
        target=label,
        traces=traces,
        plan=[],
        skipped=[],
        failures=[],
        limited=False,
        elapsed_s=0.0,
        options=RunOptions(runs=0, warmup=0),
        source="analyze",
    )
    report = DoctorReport.build(result, findings)
    console = Console()
    report.print(console)
    if not findings and args.mode == "production":
        # A laptop's queries take microseconds: its N+1s repeat without costing enough time
        # for the production thresholds, which is exactly what the count-only mode is for.
        console.print(
            "Production thresholds (a problem must repeat and cost time); for traces recorded "
            "on a laptop or in tests, try [bold]--mode doctor[/] (counts only)."
        )
    if args.html:
        report.write_html(args.html)
        console.print(f"HTML report: {args.html}")
    if args.json:
        report.write_json(args.json)
        console.print(f"JSON report: {args.json}")
    if args.fail_on and any(severity_at_least(f.severity, args.fail_on) for f in findings):
        return 1
    return 0
