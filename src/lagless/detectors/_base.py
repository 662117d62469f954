"""What every detector shares: the :class:`Finding` it emits, the thresholds it reads, the
registry it is listed in, and :func:`analyze`, which runs them all.

A detector is a pure function of traces: it reads spans and attributes and returns findings, it
does no I/O and it gives the same answer for the same traces, so it is tested on hand-built
traces with explicit times. Two shapes exist:

- *per trace* (``per_trace(trace, ctx)``): looks at one request (an N+1 is visible in one);
- *per route* (``per_route(traces, ctx)``): needs several requests of one route (identical
  responses that were never cacheable, a new connection opened by *every* request).

:func:`analyze` groups traces by ``(method, route)``, runs every enabled detector, merges the
per-trace findings of a route into one finding that counts the requests showing it, and ranks
the result worst total cost first (``cost_ms * requests``).

The only detector that needs facts the trace cannot hold, ``missing-index``, reads them from an
:class:`~lagless._explain.Explainer`'s cache; :func:`analyze` asks the explainer to plan the
candidate statements first, after the requests, never on their hot path.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar, get_args

from lagless.errors import ConfigError

if TYPE_CHECKING:
    from lagless._explain import Explainer
    from lagless._trace import Trace

#: How bad a finding is; ``lagless doctor --fail-on`` and the pytest plugin compare against it.
Severity = Literal["critical", "high", "medium", "low", "info"]
Mode = Literal["doctor", "production"]

#: Severities from least to most severe; the index is the rank.
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "low", "medium", "high", "critical")
_RANK: Final[dict[str, int]] = {name: i for i, name in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """``info`` is 0, ``critical`` 4. An unknown name raises ``ValueError`` naming the choices."""
    try:
        return _RANK[severity]
    except KeyError:
        raise ValueError(
            f"unknown severity {severity!r}; expected one of {', '.join(reversed(SEVERITIES))}"
        ) from None


def severity_at_least(severity: str, threshold: str) -> bool:
    """Whether ``severity`` is ``threshold`` or worse (``--fail-on high`` fails on critical)."""
    return severity_rank(severity) >= severity_rank(threshold)


def max_severity(*severities: Severity) -> Severity:
    return max(severities, key=severity_rank)


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Finding:
    """One problem a detector found on one route.

    ``evidence`` lists the offending statements or calls, each a dict with at least
    ``statement`` (SQL, literals redacted) or ``call`` (an HTTP call, cache command, middleware,
    span), ``count`` and ``total_ms``. ``cost_ms`` estimates what the problem costs each request
    that shows it; ``requests`` counts those requests. ``potential`` marks circumstantial
    evidence, and then the title says "Potential ...".
    """

    code: str
    title: str
    severity: Severity
    route: str
    method: str
    evidence: tuple[dict[str, Any], ...]
    cost_ms: float
    fix: str
    potential: bool = False
    requests: int = 1
    details: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    @property
    def total_cost_ms(self) -> float:
        """What the problem cost over every request that showed it (the ranking key)."""
        return self.cost_ms * self.requests

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the ``findings`` items of ``lagless doctor --json``)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "route": self.route,
            "method": self.method,
            "title": self.title,
            "evidence": [dict(item) for item in self.evidence],
            "cost_ms": round(self.cost_ms, 3),
            "total_cost_ms": round(self.total_cost_ms, 3),
            "fix": self.fix,
            "potential": self.potential,
            "requests": self.requests,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class DetectorSettings:
    """Thresholds of every detector, and the codes switched off.

    Defaults come from public anchors (docs/detectors.md says which): Sentry's performance
    issue detectors, Scout APM, django-debug-toolbar and pghero. Override any by keyword::

        DetectorSettings(n_plus_one_min_repeats=3, disabled=frozenset({"sequential-io"}))
        settings.replace(large_payload_bytes=500_000)

    ``production`` mode requires both a count and a time threshold; ``doctor`` mode (tiny
    durations on a laptop database) applies the count thresholds alone and ranks by measured
    cost.
    """

    #: Sentry N+1 DB queries and Scout APM: 5 repeats of one statement shape.
    n_plus_one_min_repeats: int = 5
    #: Sentry: the repeated spans add up to >= 50 ms (Scout uses 150 ms) -- production only.
    n_plus_one_min_ms: float = 50.0
    #: django-debug-toolbar: an identical statement with identical parameters run twice.
    duplicate_min_repeats: int = 2
    #: Time the extra runs must waste, production only.
    duplicate_min_ms: float = 5.0
    #: Sentry slow DB query: a SELECT this slow is a missing-index candidate on its own.
    slow_query_ms: float = 500.0
    #: pghero: no index advice for tables under 500 rows.
    min_table_rows: int = 500
    #: Most statement shapes to EXPLAIN per :func:`analyze` call (bounded work).
    max_explain: int = 50
    #: A SELECT without LIMIT returning this many rows is an unbounded list query.
    over_fetch_rows: int = 1000
    #: A SELECT listing this many columns reads "all columns of a wide table".
    wide_select_columns: int = 20
    #: Time the over-fetching statement must take, production only.
    over_fetch_min_ms: float = 50.0
    #: Sentry consecutive DB queries: parallelising must save >= 100 ms (production).
    sequential_min_saving_ms: float = 100.0
    #: Consecutive independent calls that make a run (production; doctor runs need 3).
    sequential_min_calls: int = 2
    sequential_doctor_min_calls: int = 3
    #: Synchronous I/O on the event loop: total per request, production only.
    blocking_min_ms: float = 10.0
    #: asyncio debug mode's ``slow_callback_duration`` (100 ms): measured loop lag.
    loop_lag_ms: float = 100.0
    #: Loop lag in doctor runs (one request at a time, so lag is the request's own).
    loop_lag_doctor_ms: float = 20.0
    #: Share of a route's requests that open a new database connection.
    new_connection_share: float = 0.5
    #: Mean connect time per request, production only.
    new_connection_min_ms: float = 1.0
    #: Pool-acquire wait as a share of the request.
    pool_wait_share: float = 0.2
    #: Pool wait time, production only.
    pool_wait_min_ms: float = 20.0
    #: A middleware's own time as a share of the request.
    middleware_share: float = 0.2
    #: A middleware's own time in production (and a 1 ms floor in doctor runs).
    middleware_min_ms: float = 10.0
    middleware_doctor_min_ms: float = 1.0
    #: Identical GET responses seen before "no HTTP caching" is reported.
    http_caching_min_identical: int = 2
    #: Mean request duration a cache would save, production only.
    http_caching_min_ms: float = 20.0
    #: Sentry large HTTP payload: 300 KB.
    large_payload_bytes: int = 300_000
    #: Below one Ethernet MTU compression saves no round trip.
    compress_min_bytes: int = 1400
    #: Bandwidth assumed to turn bytes into milliseconds (a good mobile link).
    client_mbps: float = 10.0
    #: Serialization's share of the request...
    serialization_share: float = 0.2
    #: ...and its time (production; doctor runs need 1 ms).
    serialization_min_ms: float = 10.0
    serialization_doctor_min_ms: float = 1.0
    #: A static asset is "far-future cached" with at least this max-age (one week).
    static_min_max_age_s: int = 7 * 24 * 3600
    #: Detector codes switched off.
    disabled: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        disabled = frozenset(self.disabled)
        object.__setattr__(self, "disabled", disabled)
        unknown = sorted(code for code in disabled if code not in DETECTORS)
        if unknown:
            _ensure_loaded()
            unknown = sorted(code for code in disabled if code not in DETECTORS)
        if unknown:
            raise ConfigError(
                f"unknown detector code(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(DETECTORS))}"
            )
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "disabled" and (isinstance(value, bool) or value < 0):
                raise ConfigError(f"detector threshold {f.name}={value!r} must be a number >= 0")

    def replace(self, **changes: Any) -> DetectorSettings:
        """A copy with ``changes``; an unknown name raises :class:`ConfigError` with a hint."""
        names = {f.name for f in dataclasses.fields(self)}
        for key in changes:
            if key not in names:
                hint = difflib.get_close_matches(key, names, n=1)
                extra = f"; did you mean {hint[0]!r}?" if hint else ""
                raise ConfigError(f"unknown detector setting {key!r}{extra}")
        if "disabled" in changes:
            changes["disabled"] = frozenset(changes["disabled"])
        return dataclasses.replace(self, **changes)

    def enabled(self, code: str) -> bool:
        return code not in self.disabled


@dataclass(frozen=True)
class Context:
    """What a detector may read besides traces: the mode, the settings, the explainer cache."""

    mode: Mode
    settings: DetectorSettings
    explainer: Explainer | None = None

    @property
    def doctor(self) -> bool:
        return self.mode == "doctor"


PerTrace = Callable[["Trace", Context], Iterable[Finding]]
PerRoute = Callable[[list["Trace"], Context], Iterable[Finding]]


@dataclass(frozen=True)
class Detector:
    """A registered detector: its stable ``code``, a one-line summary, and its function."""

    code: str
    summary: str
    per_trace: PerTrace | None = None
    per_route: PerRoute | None = None


#: Every detector, by code, in registration order.
DETECTORS: dict[str, Detector] = {}


def register(
    code: str,
    summary: str,
    *,
    per_trace: PerTrace | None = None,
    per_route: PerRoute | None = None,
) -> Detector:
    if code in DETECTORS:
        raise ValueError(f"detector code {code!r} registered twice")
    detector = Detector(code, summary, per_trace, per_route)
    DETECTORS[code] = detector
    return detector


def _ensure_loaded() -> None:
    import lagless.detectors  # noqa: F401  (importing registers every detector)


# -- helpers detectors share -----------------------------------------------------------------


def ms(ns: int) -> float:
    return ns / 1_000_000


T = TypeVar("T")


def median_sample(samples: list[T], key: Callable[[T], float]) -> T:
    """The sample at the median of ``key`` (the lower middle one for an even count), so a
    per-route detector judges a route by its typical request, not by one outlier."""
    ordered = sorted(samples, key=key)
    return ordered[(len(ordered) - 1) // 2]


def route_key(trace: Trace) -> tuple[str, str]:
    return trace.method.upper(), trace.route_or_path


def finding_key(finding: Finding) -> tuple[Any, ...]:
    """Findings with the same key on one route are one problem seen by several requests."""
    subject = finding.details.get("key")
    if subject is None:
        subject = tuple(
            str(item.get("statement", item.get("call", ""))) for item in finding.evidence
        )
    return finding.code, finding.method, finding.route, subject


def _merge(findings: list[Finding]) -> Finding:
    """One finding for a problem several requests of a route showed.

    The evidence and title come from the strongest request (non-potential first, then the
    costliest); the cost is the mean over the requests that showed it; the severity the worst.
    """
    best = max(findings, key=lambda f: (not f.potential, f.cost_ms))
    requests = sum(f.requests for f in findings)
    cost = sum(f.cost_ms * f.requests for f in findings) / requests
    severity = max_severity(*(f.severity for f in findings))
    return dataclasses.replace(best, requests=requests, cost_ms=cost, severity=severity)


def rank_key(finding: Finding) -> tuple[float, int, str, str, str]:
    return (
        -finding.total_cost_ms,
        -severity_rank(finding.severity),
        finding.code,
        finding.route,
        finding.method,
    )


def analyze(
    traces: Iterable[Trace],
    *,
    mode: Mode = "production",
    settings: DetectorSettings | None = None,
    explainer: Explainer | None = None,
) -> list[Finding]:
    """Run every enabled detector over ``traces`` and return the findings, worst total first.

    ``mode="doctor"`` is for a diagnostic run on a developer's machine (count thresholds only);
    ``"production"`` for traces from real traffic (count and time thresholds). With an
    ``explainer`` the ``missing-index`` detector plans the candidate SELECTs first (on the
    explainer's own connection, cached per statement shape, at most ``settings.max_explain``).
    """
    if mode not in get_args(Mode):
        raise ValueError(f"mode must be 'doctor' or 'production', not {mode!r}")
    _ensure_loaded()
    settings = settings or DetectorSettings()
    by_route: dict[tuple[str, str], list[Trace]] = {}
    for trace in traces:
        by_route.setdefault(route_key(trace), []).append(trace)
    ctx = Context(mode, settings, explainer)
    if explainer is not None and settings.enabled("missing-index"):
        from lagless.detectors.missing_index import explain_candidates

        explain_candidates([t for group in by_route.values() for t in group], ctx)
    active = [d for code, d in DETECTORS.items() if settings.enabled(code)]
    merged: dict[tuple[Any, ...], list[Finding]] = {}
    for group in by_route.values():
        for detector in active:
            if detector.per_trace is not None:
                for trace in group:
                    for finding in detector.per_trace(trace, ctx):
                        merged.setdefault(finding_key(finding), []).append(finding)
            if detector.per_route is not None:
                for finding in detector.per_route(group, ctx):
                    merged.setdefault(finding_key(finding), []).append(finding)
    out = [_merge(items) if len(items) > 1 else items[0] for items in merged.values()]
    out.sort(key=rank_key)
    return out
