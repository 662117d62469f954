"""Baseline verdicts and the Mann-Whitney test on hand-built histograms."""

from __future__ import annotations

import itertools
import math
import re

import pytest

from lagless.loadgen import ab_test, compare
from lagless.loadgen._compare import (
    Thresholds,
    judge_quantile,
    mann_whitney,
    min_samples,
    quantile_ci,
)
from tests.loadgen._synthetic import hist, lognormal, result


def test_min_samples_per_quantile() -> None:
    assert [min_samples(q) for q in (0.5, 0.9, 0.99, 0.999)] == [20, 100, 1000, 10000]
    # As a budget's "p99.9_ms" or "p95_ms" computes them (pct / 100: float error included).
    assert [min_samples(p / 100) for p in (99.9, 95.0, 99.99)] == [10000, 200, 100000]


def test_a_clear_slowdown_is_a_regression() -> None:
    old = result({"GET /": lognormal(5000, 10.0, seed=1)}, label="old")
    new = result({"GET /": lognormal(5000, 14.0, seed=2)}, label="new")
    cmp = compare(old, new)
    route = cmp.routes[0]
    assert [q.verdict for q in route.quantiles[:3]] == ["regressed"] * 3
    assert route.quantiles[3].verdict == "too few samples"  # p99.9 needs 10,000
    assert route.verdict == "regressed"
    assert cmp.verdict == "regressed"
    assert cmp.regressions == [route]


def test_the_same_distribution_resampled_is_unchanged() -> None:
    old = result({"GET /": lognormal(5000, 10.0, seed=1)})
    new = result({"GET /": lognormal(5000, 10.0, seed=7)})
    cmp = compare(old, new)
    assert cmp.verdict == "unchanged"
    assert all(q.verdict in ("unchanged", "too few samples") for q in cmp.routes[0].quantiles)


def test_improvement_is_reported() -> None:
    old = result({"GET /": lognormal(3000, 20.0, seed=1)})
    new = result({"GET /": lognormal(3000, 8.0, seed=2)})
    assert compare(old, new).routes[0].verdict == "improved"


def test_a_large_relative_change_below_the_absolute_threshold_is_not_a_regression() -> None:
    # 0.2 ms -> 0.3 ms is +50% but a tenth of a millisecond.
    old = result({"GET /": lognormal(5000, 0.2, sigma=0.05, seed=1)})
    new = result({"GET /": lognormal(5000, 0.3, sigma=0.05, seed=2)})
    assert compare(old, new).verdict == "unchanged"
    strict = compare(old, new, Thresholds(abs_ms=0.05))
    assert strict.verdict == "regressed"


def test_a_large_absolute_change_below_the_relative_threshold_is_not_a_regression() -> None:
    old = result({"GET /": lognormal(5000, 500.0, sigma=0.01, seed=1)})
    new = result({"GET /": lognormal(5000, 520.0, sigma=0.01, seed=2)})  # +20 ms, +4%
    assert compare(old, new).verdict == "unchanged"


def test_max_is_never_judged() -> None:
    base = [10.0] * 2000
    old = result({"GET /": base})
    new = result({"GET /": [*base[:-1], 5000.0]})  # one terrible request
    cmp = compare(old, new)
    assert cmp.verdict == "unchanged"
    assert [q.q for q in cmp.routes[0].quantiles] == [0.5, 0.9, 0.99, 0.999]


def test_few_samples_are_not_judged() -> None:
    old = result({"GET /": [10.0] * 15})
    new = result({"GET /": [30.0] * 15})  # tripled, but 15 requests cannot show it
    route = compare(old, new).routes[0]
    assert {q.verdict for q in route.quantiles} == {"too few samples"}
    assert route.verdict == "too few samples"
    assert "needs 20" in route.quantiles[0].reason


def test_overlapping_confidence_intervals_are_noise() -> None:
    # p99 of 1000 samples rests on ~10 values: a tail this noisy cannot convict.
    old_values = [10.0] * 985 + [20 + i * 180 / 14 for i in range(15)]
    new_values = [10.0] * 985 + [20 + i * 240 / 14 for i in range(15)]
    v = judge_quantile(hist(old_values), hist(new_values), 0.99)
    assert v.new_ms > 1.2 * v.old_ms  # +20%, tens of ms: past both thresholds...
    assert v.verdict == "unchanged"  # ... yet within the noise of ten samples
    assert "noise" in v.reason
    # The same shift with a hundred times the data is a regression.
    v = judge_quantile(hist(old_values * 100), hist(new_values * 100), 0.99)
    assert v.verdict == "regressed"


def test_quantile_ci_brackets_the_estimate() -> None:
    h = hist(lognormal(2000, 10.0))
    lo, hi = quantile_ci(h, 0.9)
    assert lo < h.quantile(0.9) < hi


def test_error_rate_regression() -> None:
    values = lognormal(2000, 10.0)
    old = result({"GET /": values}, errors={"GET /": 2})
    new = result({"GET /": values}, errors={"GET /": 200})
    route = compare(old, new).routes[0]
    assert route.error_verdict == "regressed"
    assert route.verdict == "regressed"


def test_warnings_for_incomparable_runs() -> None:
    old = result({"GET /": [1.0] * 50, "GET /gone": [1.0]}, rate=100)
    new = result({"GET /": [1.0] * 50, "GET /new": [1.0]}, rate=200, invalid=["saturated"])
    cmp = compare(old, new)
    assert any("arrival rate" in w for w in cmp.warnings)
    assert any("invalid" in w for w in cmp.warnings)
    assert cmp.only_old == ["GET /gone"]
    assert cmp.only_new == ["GET /new"]


def _brute_u(a: list[float], b: list[float]) -> float:
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x, y in itertools.product(a, b))


def test_mann_whitney_matches_a_brute_force_count_on_bucketed_values() -> None:
    a_vals = lognormal(120, 10.0, seed=1)
    b_vals = lognormal(150, 12.0, seed=2)
    a, b = hist(a_vals), hist(b_vals)

    def bucket(v: float) -> int:
        return math.ceil(math.log2(v) * 32) - 1

    u, p, prob = mann_whitney(a, b)
    assert u == _brute_u([bucket(v) for v in a_vals], [bucket(v) for v in b_vals])
    assert 0 < p < 1
    assert prob == pytest.approx(1 - u / (120 * 150))


def test_mann_whitney_significance() -> None:
    same_a = hist(lognormal(2000, 10.0, seed=1))
    same_b = hist(lognormal(2000, 10.0, seed=2))
    assert mann_whitney(same_a, same_b)[1] > 0.01
    slower = hist(lognormal(2000, 11.0, seed=3))
    _u, p, prob = mann_whitney(same_a, slower)
    assert p < 1e-6
    assert prob > 0.55
    assert math.isnan(mann_whitney(hist([]), same_a)[1])


def test_ab_requires_significance_and_thresholds() -> None:
    rounds_a = [result({"GET /": lognormal(800, 10.0, seed=i)}, label="A") for i in range(4)]
    rounds_b = [result({"GET /": lognormal(800, 13.0, seed=10 + i)}, label="B") for i in range(4)]
    report = ab_test(rounds_a, rounds_b)
    assert report.verdict == "regressed"
    assert report.b_slower_rounds == 4
    assert report.comparison.routes[0].p_value is not None
    assert report.comparison.routes[0].p_value < 1e-6
    same_b = [result({"GET /": lognormal(800, 10.0, seed=20 + i)}, label="B") for i in range(4)]
    assert ab_test(rounds_a, same_b).verdict == "unchanged"
    assert report.to_dict()["rounds"] == 4


def test_comparison_table_headers_do_not_claim_ms_over_seconds() -> None:
    from rich.console import Console

    from lagless.loadgen._report import print_comparison

    old = result({"GET /a": lognormal(400, 600.0)}, label="main")
    new = result({"GET /a": lognormal(400, 2000.0, seed=2)}, label="change")
    console = Console(width=160, record=True)
    print_comparison(console, compare(old, new))
    text = console.export_text()
    assert re.search(r"→ \d\.\d\d s", text)  # values past 1 s are printed in seconds
    assert "p50 ms" not in text and 'latency in ms ("s": seconds)' in text
