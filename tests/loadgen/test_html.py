from __future__ import annotations

import math
import re

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


def test_legend_sits_above_the_plot_area_not_on_the_lines() -> None:
    names = [f"GET /api/route/number/{i}" for i in range(8)]
    svg = percentile_svg([(n, hist(lognormal(200, 5.0 + i, seed=i))) for i, n in enumerate(names)])
    legend_ys = [
        float(m) for m in re.findall(r'<text x="[\d.]+" y="([\d.]+)" fill="#1c2230">GET', svg)
    ]
    assert len(legend_ys) == len(names)
    assert len(set(legend_ys)) > 1  # eight long labels wrap into several rows
    axis_top = float(re.search(r'<line x1="64" x2="64" y1="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    line_ys = [
        float(y)
        for points in re.findall(r'<polyline points="([^"]+)"', svg)
        for y in re.findall(r",([\d.]+)", points)
    ]
    assert max(legend_ys) < axis_top <= min(line_ys)
    height = int(re.search(r'height="(\d+)"', svg).group(1))  # type: ignore[union-attr]
    assert height > 300  # the image grew to make room for the legend rows


def test_budget_reasons_get_their_own_column() -> None:
    r = result({"GET /": [1.0] * 10})
    budgets = check_budgets(r, parse_budgets("[defaults]\np95_ms = 15\n"))
    page = render_html([r], budgets=budgets)
    assert "<th>why</th>" in page
    assert "regressed'>BROKEN</td><td class=reason>too few requests" in page
