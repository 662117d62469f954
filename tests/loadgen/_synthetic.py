"""Hand-built results for comparison and budget tests (no load, no clock)."""

from __future__ import annotations

import random
from collections.abc import Iterable

from lagless._histogram import ExpHistogram
from lagless.loadgen._results import BenchResult, RouteStats


def hist(values: Iterable[float]) -> ExpHistogram:
    h = ExpHistogram()
    h.record_many(values)
    return h


def lognormal(n: int, median_ms: float, sigma: float = 0.3, seed: int = 1) -> list[float]:
    rng = random.Random(seed)
    return [median_ms * rng.lognormvariate(0.0, sigma) for _ in range(n)]


def result(
    routes: dict[str, Iterable[float]],
    *,
    errors: dict[str, int] | None = None,
    label: str = "run",
    rate: float = 100.0,
    invalid: list[str] | None = None,
) -> BenchResult:
    out = BenchResult(target="http://127.0.0.1:1", mode="open", duration_s=10.0, rate=rate)
    out.label = label
    for name, values in routes.items():
        h = hist(values)
        method, _, path = name.partition(" ")
        stats = RouteStats(name, method, path, histogram=h)
        stats.statuses[200] = h.count
        if errors and name in errors:
            stats.statuses[500] = errors[name]
        out.routes[name] = stats
    out.invalid_reasons = list(invalid or [])
    return out
