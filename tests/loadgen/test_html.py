from __future__ import annotations

import math

from lagless.loadgen import check_budgets, compare
from lagless.loadgen._budget import parse_budgets
from lagless.loadgen._html import over_time_svg, percentile_points, percentile_svg, render_html
from lagless.loadgen._results import Interval
from tests.loadgen._synthetic import hist, lognormal, result


def test_percentile_points_reach_as_deep_as_the_samples_allow() -> None:
    pts = percentile_points(hist(lognormal(1000, 10.0)))
    assert pts[0][0] == 0.0
    assert math.isclose(pts[-1][0], 3.0)  # 1000 samples: down to p99.9
    ys = [y for _, y in pts]
    assert ys == sorted(ys)
    assert percentile_points(hist([])) == []


def test_plots_are_inline_svg_with_a_legend() -> None:
    svg = percentile_svg([("naive", hist(lognormal(500, 50.0))), ("tuned", hist([2.0] * 500))])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert ">naive<" in svg and ">tuned<" in svg
    assert "log scale" in svg  # 2 ms vs ~50 ms+ spans more than 20x
    r = result({"GET /": [1.0] * 10})
    r.timeline = [Interval(5, 0, hist([1.0, 2.0])), Interval(5, 0, hist([900.0]))]
    timeline = over_time_svg([r])
    assert "run p50" in timeline and "run p99" in timeline
    assert "no data" in percentile_svg([("empty", hist([]))])


def test_report_includes_comparison_and_budgets() -> None:
    old = result({"GET /<b>": lognormal(3000, 10.0, seed=1)}, label="old")
    new = result({"GET /<b>": lognormal(3000, 20.0, seed=2)}, label="new", invalid=["slow gen"])
    budgets = check_budgets(new, parse_budgets("[defaults]\np90_ms = 15\n"))
    page = render_html([old, new], comparison=compare(old, new), budgets=budgets)
    assert page.startswith("<!doctype html>")
    assert "GET /&lt;b&gt;" in page and "GET /<b>" not in page
    assert "Invalid run" in page and "slow gen" in page
    assert "Comparison: regressed" in page
    assert "BROKEN" in page
