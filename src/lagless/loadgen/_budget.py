"""Latency budgets for CI: ``--budget budgets.toml`` exits non-zero when one is broken.

::

    # budgets.toml
    [defaults]                    # every route, unless its own table says otherwise
    p95_ms = 250
    error_rate = 0.01             # at most 1% of requests failing (no response, 4xx or 5xx)

    [routes."GET /api/books"]     # a route by its name in the results
    p95_ms = 50
    p99_ms = 120

    [total]                       # all routes together
    "p99.9_ms" = 800

Limits are ``pNN_ms`` (any percentile: ``p50_ms``, ``p99_ms``, ``"p99.9_ms"`` or
``p99_9_ms``) and ``error_rate``. ``max_ms`` is refused: the maximum is one request. A
percentile is only checked with enough requests behind it (10 beyond it: p95 needs 200); with
fewer the budget is reported broken, because a gate that cannot tell must not pass. A run
whose generator was saturated is not a pass either (see :func:`judge_generator`).
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lagless.errors import LaglessError
from lagless.loadgen._compare import min_samples
from lagless.loadgen._results import BenchResult, RouteStats

_LIMIT = re.compile(r"^p(\d{1,2}(?:[._]\d+)?)_ms$")
_TOP = frozenset({"defaults", "routes", "total"})


class BudgetError(LaglessError):
    """A budgets file that cannot be used; the message names the file and line."""

    def __init__(self, message: str, *, source: str, line: int | None = None) -> None:
        self.source = source
        self.line = line
        super().__init__(f"{source}:{line}: {message}" if line else f"{source}: {message}")


@dataclasses.dataclass(frozen=True)
class Limit:
    metric: str  # "p95" / "p99.9" / "error_rate"
    quantile: float | None  # None for error_rate
    value: float
    line: int | None = None


@dataclasses.dataclass(frozen=True)
class Budgets:
    defaults: tuple[Limit, ...] = ()
    routes: Mapping[str, tuple[Limit, ...]] = dataclasses.field(default_factory=dict)
    total: tuple[Limit, ...] = ()
    source: str = "<budgets>"
    route_lines: Mapping[str, int | None] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Check:
    route: str
    metric: str
    limit: float
    actual: float | None
    passed: bool
    reason: str = ""


@dataclasses.dataclass
class BudgetReport:
    checks: list[Check]
    invalid_run: list[str]

    @property
    def broken(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def passed(self) -> bool:
        return not self.broken and not self.invalid_run

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "invalid_run": self.invalid_run,
            "checks": [dataclasses.asdict(c) for c in self.checks],
        }


def _line_finder(text: str) -> Any:
    lines = text.splitlines()
    headers: dict[str, int] = {}
    for i, raw in enumerate(lines, 1):
        m = re.match(r"\s*\[\s*(.+?)\s*\]\s*(#.*)?$", raw)
        if m:
            name = re.sub(r"\s*\.\s*", ".", m.group(1))
            headers[name.replace("'", '"')] = i

    def table(*parts: str) -> int | None:
        keys = [parts[0]] + [f'"{p}"' if not re.fullmatch(r"[\w-]+", p) else p for p in parts[1:]]
        return headers.get(".".join(keys))

    def key(start: int | None, name: str) -> int | None:
        if start is None:
            return None
        pat = re.compile(rf"\s*[\"']?{re.escape(name)}[\"']?\s*=")
        for i in range(start, len(lines)):
            if i > start and re.match(r"\s*\[", lines[i]):
                break
            if pat.match(lines[i]):
                return i + 1
        return start + 1

    return table, key


def parse_budgets(text: str, *, source: str = "<budgets>") -> Budgets:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        found = re.search(r"\s*\(at line (\d+), column \d+\)$", msg)
        line = int(found.group(1)) if found else None
        raise BudgetError(
            f"invalid TOML: {msg[: found.start()] if found else msg}", source=source, line=line
        ) from None
    table, key = _line_finder(text)
    for name in data:
        if name not in _TOP:
            raise BudgetError(
                f'unknown table {name!r} (expected [defaults], [routes."NAME"] or [total])',
                source=source,
                line=table(name) or key(0, name),
            )

    def limits(raw: Any, where: tuple[str, ...]) -> tuple[Limit, ...]:
        start = table(*where)
        if not isinstance(raw, Mapping):
            raise BudgetError(
                f"[{'.'.join(where)}] must be a table of limits", source=source, line=start
            )
        out = []
        for name, value in raw.items():
            line = key(start - 1 if start else None, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise BudgetError(
                    f"{name} must be a number >= 0, got {value!r}", source=source, line=line
                )
            if name == "error_rate":
                if value > 1:
                    raise BudgetError(
                        f"error_rate is a fraction (0.01 = 1%), got {value!r}",
                        source=source,
                        line=line,
                    )
                out.append(Limit("error_rate", None, float(value), line))
                continue
            m = _LIMIT.match(name)
            if name == "max_ms":
                raise BudgetError(
                    "max_ms is not a budget: the maximum is a single request; use "
                    '"p99.9_ms" or p99_ms',
                    source=source,
                    line=line,
                )
            if not m:
                raise BudgetError(
                    f"unknown limit {name!r} (use pNN_ms such as p95_ms, or error_rate)",
                    source=source,
                    line=line,
                )
            pct = float(m.group(1).replace("_", "."))
            if not 0 < pct < 100:
                raise BudgetError(
                    f"{name}: percentile must be in (0, 100)", source=source, line=line
                )
            out.append(Limit(f"p{m.group(1).replace('_', '.')}", pct / 100.0, float(value), line))
        return tuple(out)

    routes_raw = data.get("routes", {})
    if not isinstance(routes_raw, Mapping):
        raise BudgetError('[routes] must hold tables: [routes."GET /path"]', source=source)
    return Budgets(
        defaults=limits(data.get("defaults", {}), ("defaults",)),
        routes={name: limits(v, ("routes", name)) for name, v in routes_raw.items()},
        total=limits(data.get("total", {}), ("total",)),
        source=source,
        route_lines={name: table("routes", name) for name in routes_raw},
    )


def load_budgets(path: str | Path) -> Budgets:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BudgetError(f"cannot read: {exc.strerror or exc}", source=str(p)) from None
    return parse_budgets(text, source=str(p))


def _check(route: str, stats: RouteStats, limit: Limit) -> Check:
    if limit.quantile is None:
        rate = stats.error_rate
        return Check(route, "error_rate", limit.value, rate, rate <= limit.value)
    h = stats.histogram
    need = min_samples(limit.quantile)
    if h.count < need:
        return Check(
            route,
            limit.metric,
            limit.value,
            None,
            False,
            f"too few requests to judge {limit.metric} (needs {need}, had {h.count}): "
            "run longer or at a higher rate",
        )
    actual = h.quantile(limit.quantile)
    return Check(route, limit.metric, limit.value, actual, actual <= limit.value)


def _find(result: BenchResult, name: str) -> RouteStats | None:
    if name in result.routes:
        return result.routes[name]
    for stats in result.routes.values():
        if f"{stats.method} {stats.path}" == name:
            return stats
    return None


def check_budgets(result: BenchResult, budgets: Budgets) -> BudgetReport:
    """Every limit of ``budgets`` checked against ``result``."""
    checks: list[Check] = []
    named = set()
    for name, limits in budgets.routes.items():
        stats = _find(result, name)
        if stats is None:
            line = budgets.route_lines.get(name)
            where = f"{budgets.source}:{line}" if line else budgets.source
            checks.append(
                Check(name, "route", math.nan, None, False, f"{where}: no such route in the run")
            )
            continue
        named.add(stats.name)
        own = {lim.metric for lim in limits}
        merged = [*limits, *(d for d in budgets.defaults if d.metric not in own)]
        checks.extend(_check(stats.name, stats, lim) for lim in merged)
    for stats in result.routes.values():
        if stats.name not in named:
            checks.extend(_check(stats.name, stats, lim) for lim in budgets.defaults)
    total = result.total
    checks.extend(_check("all routes", total, lim) for lim in budgets.total)
    return BudgetReport(checks, list(result.invalid_reasons))
