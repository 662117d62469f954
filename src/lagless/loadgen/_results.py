"""What a bench run measured, per route and over time, and its JSON form.

Latency is kept in :class:`~lagless._histogram.ExpHistogram` (milliseconds, ±1.09%), never as
a list of samples: memory stays bounded however long the run, histograms of several runs or
processes merge exactly, and the JSON file carries the full distribution, so a later
``--baseline`` comparison or ``--budget`` check recomputes any quantile instead of trusting a
few summary numbers.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

from lagless._histogram import ExpHistogram
from lagless.errors import LaglessError

FORMAT = "lagless-bench"
VERSION = 1
#: Quantiles shown in tables and stored as summaries (the histograms hold the rest).
QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)


def is_error(status: int) -> bool:
    """Whether a response counts as an error: no response at all, or a 4xx/5xx status (a load
    test that draws 404s is measuring the wrong thing, so those count too)."""
    return status == 0 or status >= 400


@dataclasses.dataclass
class RouteStats:
    """One route's outcomes. ``histogram`` holds latencies of completed requests (ms), errors
    included; ``errors`` counts failed exchanges by reason (``timeout``, connect errors...)."""

    name: str
    method: str = "GET"
    path: str = "/"
    weight: float = 1.0
    histogram: ExpHistogram = dataclasses.field(default_factory=ExpHistogram)
    statuses: Counter[int] = dataclasses.field(default_factory=Counter)
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def requests(self) -> int:
        """Every request whose outcome is known (answered or failed)."""
        return sum(self.statuses.values()) + sum(self.errors.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + sum(n for s, n in self.statuses.items() if s >= 400)

    @property
    def error_rate(self) -> float:
        return self.error_count / self.requests if self.requests else 0.0

    @property
    def timeouts(self) -> int:
        return self.errors.get("timeout", 0)

    def merge(self, other: RouteStats) -> None:
        self.histogram.merge(other.histogram)
        self.statuses.update(other.statuses)
        self.errors.update(other.errors)
        self.bytes_in += other.bytes_in
        self.bytes_out += other.bytes_out

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "path": self.path,
            "weight": self.weight,
            "requests": self.requests,
            "errors_total": self.error_count,
            "error_rate": self.error_rate,
            "summary_ms": _summary(self.histogram),
            "histogram": self.histogram.to_dict(),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": dict(sorted(self.errors.items())),
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RouteStats:
        return cls(
            name=str(data["name"]),
            method=str(data.get("method", "GET")),
            path=str(data.get("path", "/")),
            weight=float(data.get("weight", 1.0)),
            histogram=ExpHistogram.from_dict(data["histogram"]),
            statuses=Counter({int(k): int(v) for k, v in data.get("statuses", {}).items()}),
            errors=Counter({str(k): int(v) for k, v in data.get("errors", {}).items()}),
            bytes_in=int(data.get("bytes_in", 0)),
            bytes_out=int(data.get("bytes_out", 0)),
        )


def _summary(h: ExpHistogram) -> dict[str, float | None]:
    def f(v: float) -> float | None:
        return None if math.isnan(v) or math.isinf(v) else round(v, 4)

    out: dict[str, float | None] = {
        f"p{_qname(q)}": f(h.quantile(q)) if h.count else None for q in QUANTILES
    }
    out["max"] = f(h.max) if h.count else None
    out["mean"] = f(h.mean) if h.count else None
    return out


def _qname(q: float) -> str:
    """0.5 -> "50", 0.999 -> "99.9"."""
    return f"{q * 100:.4f}".rstrip("0").rstrip(".")


@dataclasses.dataclass
class Interval:
    """Requests *scheduled* in one slice of the run (so a stall shows where it began)."""

    sent: int = 0
    errors: int = 0
    histogram: ExpHistogram = dataclasses.field(default_factory=ExpHistogram)

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "errors": self.errors, "histogram": self.histogram.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interval:
        return cls(
            int(data["sent"]), int(data["errors"]), ExpHistogram.from_dict(data["histogram"])
        )


@dataclasses.dataclass
class Generator:
    """How the generator itself kept up: its lateness against the schedule and its CPU."""

    #: Scheduler wake-up lateness (ms): how late the generator *dispatched* each request.
    dispatch_lateness: ExpHistogram = dataclasses.field(default_factory=ExpHistogram)
    #: Write lateness (ms): dispatch plus any wait for a free connection.
    send_lateness: ExpHistogram = dataclasses.field(default_factory=ExpHistogram)
    late_tolerance_ms: float = 10.0
    late_dispatches: int = 0
    cpu_fraction: float | None = None
    cpu_rule: bool = True
    queued_for_connection: int = 0
    connections: int = 0
    connect_errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "dispatch_lateness_ms": self.dispatch_lateness.to_dict(),
            "send_lateness_ms": self.send_lateness.to_dict(),
            "late_tolerance_ms": self.late_tolerance_ms,
            "late_dispatches": self.late_dispatches,
            "cpu_fraction": self.cpu_fraction,
            "cpu_rule": self.cpu_rule,
            "queued_for_connection": self.queued_for_connection,
            "connections": self.connections,
            "connect_errors": self.connect_errors,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Generator:
        return cls(
            dispatch_lateness=ExpHistogram.from_dict(data["dispatch_lateness_ms"]),
            send_lateness=ExpHistogram.from_dict(data["send_lateness_ms"]),
            late_tolerance_ms=float(data.get("late_tolerance_ms", 10.0)),
            late_dispatches=int(data.get("late_dispatches", 0)),
            cpu_fraction=data.get("cpu_fraction"),
            cpu_rule=bool(data.get("cpu_rule", True)),
            queued_for_connection=int(data.get("queued_for_connection", 0)),
            connections=int(data.get("connections", 0)),
            connect_errors=int(data.get("connect_errors", 0)),
        )


@dataclasses.dataclass
class BenchResult:
    """A whole run: routes, timeline, the generator's health and whether the run is valid.

    ``mode`` is ``"open"`` (arrival rate; latency from each request's scheduled start),
    ``"closed"`` (N users back to back; latency from the actual send) or ``"locust"``.
    """

    target: str
    mode: str
    duration_s: float
    routes: dict[str, RouteStats] = dataclasses.field(default_factory=dict)
    timeline: list[Interval] = dataclasses.field(default_factory=list)
    interval_s: float = 1.0
    rate: float | None = None
    users: int | None = None
    warmup_s: float = 0.0
    stages: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    generator: Generator = dataclasses.field(default_factory=Generator)
    invalid_reasons: list[str] = dataclasses.field(default_factory=list)
    started_at: str = ""
    label: str = ""
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.invalid_reasons

    @property
    def total(self) -> RouteStats:
        """Every route merged."""
        out = RouteStats("all routes", method="", path="")
        for r in self.routes.values():
            out.merge(r)
        return out

    @property
    def achieved_rate(self) -> float:
        return self.total.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "label": self.label,
            "target": self.target,
            "mode": self.mode,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "rate": self.rate,
            "users": self.users,
            "stages": [list(s) for s in self.stages],
            "achieved_rate": self.achieved_rate,
            "valid": self.valid,
            "invalid_reasons": self.invalid_reasons,
            "notes": self.notes,
            "generator": self.generator.to_dict(),
            "routes": {name: r.to_dict() for name, r in self.routes.items()},
            "timeline": {
                "interval_s": self.interval_s,
                "points": [i.to_dict() for i in self.timeline],
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<result>") -> BenchResult:
        if data.get("format") != FORMAT:
            raise LaglessError(f"{source}: not a lagless bench result (no 'format': '{FORMAT}')")
        if int(data.get("version", 0)) > VERSION:
            raise LaglessError(
                f"{source}: result format version {data.get('version')} is newer than this "
                f"lagless understands ({VERSION}); upgrade lagless"
            )
        timeline = data.get("timeline", {})
        return cls(
            target=str(data["target"]),
            mode=str(data["mode"]),
            duration_s=float(data["duration_s"]),
            routes={k: RouteStats.from_dict(v) for k, v in data.get("routes", {}).items()},
            timeline=[Interval.from_dict(p) for p in timeline.get("points", [])],
            interval_s=float(timeline.get("interval_s", 1.0)),
            rate=data.get("rate"),
            users=data.get("users"),
            warmup_s=float(data.get("warmup_s", 0.0)),
            stages=[(float(a), float(b), float(c)) for a, b, c in data.get("stages", [])],
            generator=Generator.from_dict(data["generator"])
            if "generator" in data
            else Generator(),
            invalid_reasons=list(data.get("invalid_reasons", [])),
            started_at=str(data.get("started_at", "")),
            label=str(data.get("label", "")),
            notes=list(data.get("notes", [])),
        )

    def write_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n", encoding="utf-8")


def load_result(path: str | Path) -> BenchResult:
    """Read a result written by ``lagless bench --json``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LaglessError(f"{p}: no such file") from None
    except ValueError as exc:
        raise LaglessError(f"{p}: not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise LaglessError(f"{p}: not a lagless bench result")
    try:
        return BenchResult.from_dict(data, source=str(p))
    except (KeyError, TypeError, ValueError) as exc:
        raise LaglessError(f"{p}: malformed bench result ({type(exc).__name__}: {exc})") from None


def merge_results(results: list[BenchResult], *, label: str = "") -> BenchResult:
    """Several runs (processes, or the rounds of an A/B run) as one: histograms and counters
    add; durations add, so the rate stays requests per second of measuring."""
    if not results:
        raise LaglessError("nothing to merge")
    first = results[0]
    out = BenchResult(
        target=first.target,
        mode=first.mode,
        duration_s=sum(r.duration_s for r in results),
        rate=first.rate,
        users=first.users,
        warmup_s=first.warmup_s,
        stages=first.stages,
        interval_s=first.interval_s,
        started_at=first.started_at,
        label=label or first.label,
    )
    for r in results:
        for name, stats in r.routes.items():
            mine = out.routes.get(name)
            if mine is None:
                mine = out.routes[name] = RouteStats(name, stats.method, stats.path, stats.weight)
            mine.merge(stats)
        out.timeline.extend(r.timeline)
        g = r.generator
        out.generator.dispatch_lateness.merge(g.dispatch_lateness)
        out.generator.send_lateness.merge(g.send_lateness)
        out.generator.late_dispatches += g.late_dispatches
        out.generator.late_tolerance_ms = g.late_tolerance_ms
        out.generator.queued_for_connection += g.queued_for_connection
        out.generator.connect_errors += g.connect_errors
        out.generator.connections = max(out.generator.connections, g.connections)
        if g.cpu_fraction is not None:
            out.generator.cpu_fraction = max(out.generator.cpu_fraction or 0.0, g.cpu_fraction)
        out.invalid_reasons.extend(x for x in r.invalid_reasons if x not in out.invalid_reasons)
        out.notes.extend(x for x in r.notes if x not in out.notes)
    return out
