from __future__ import annotations

import json

import pytest

from lagless.errors import LaglessError
from lagless.loadgen import load_result, merge_results
from lagless.loadgen._results import BenchResult, Interval, RouteStats
from tests.loadgen._synthetic import hist, lognormal, result


def test_route_histograms_merge_exactly() -> None:
    a_values = lognormal(3000, 5.0, seed=1)
    b_values = lognormal(2000, 40.0, seed=2)
    a = result({"GET /": a_values}, errors={"GET /": 3})
    b = result({"GET /": b_values, "GET /x": [1.0, 2.0]})
    merged = merge_results([a, b], label="both")
    whole = hist(a_values + b_values)
    route = merged.routes["GET /"]
    assert route.histogram.counts == whole.counts
    assert route.histogram.count == 5000
    for q in (0.5, 0.9, 0.99, 0.999):
        assert route.histogram.quantile(q) == whole.quantile(q)
    assert route.statuses[500] == 3
    assert merged.routes["GET /x"].histogram.count == 2
    assert merged.duration_s == 20.0
    assert merged.label == "both"


def test_json_round_trip_keeps_full_histograms(tmp_path) -> None:
    r = result({"GET /a": lognormal(500, 3.0)}, invalid=["generator fell behind"])
    r.routes["GET /a"].errors["timeout"] = 2
    r.timeline = [Interval(10, 1, hist([1.0, 2.0])), Interval()]
    path = tmp_path / "r.json"
    r.write_json(path)
    data = json.loads(path.read_text())
    assert data["format"] == "lagless-bench"
    assert data["routes"]["GET /a"]["summary_ms"]["p99"] == pytest.approx(
        r.routes["GET /a"].histogram.quantile(0.99), rel=1e-3
    )
    back = load_result(path)
    assert back.routes["GET /a"].histogram.counts == r.routes["GET /a"].histogram.counts
    assert back.routes["GET /a"].timeouts == 2
    assert back.timeline[0].histogram.count == 2
    assert not back.valid
    assert back.invalid_reasons == ["generator fell behind"]


def test_error_rate_counts_failures_and_4xx_5xx() -> None:
    s = RouteStats("GET /")
    s.statuses.update({200: 90, 404: 4, 503: 2})
    s.errors["timeout"] = 4
    assert s.requests == 100
    assert s.error_count == 10
    assert s.error_rate == 0.1
    assert s.timeouts == 4


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "not JSON"),
        ('{"format": "something-else"}', "not a lagless bench result"),
        ('{"format": "lagless-bench", "version": 99}', "newer"),
        ('{"format": "lagless-bench", "version": 1}', "malformed"),
    ],
)
def test_bad_result_files_are_explained(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(LaglessError, match=message):
        load_result(path)
    with pytest.raises(LaglessError, match="no such file"):
        load_result(tmp_path / "absent.json")


def test_total_merges_routes() -> None:
    r = result({"GET /a": [1.0] * 10, "GET /b": [100.0] * 10})
    assert r.total.histogram.count == 20
    assert isinstance(r, BenchResult)
    assert r.achieved_rate == 2.0


def test_terminal_table_keeps_every_figure_on_80_columns() -> None:
    from rich.console import Console

    from lagless.loadgen._report import result_table

    res = result(
        {
            "GET /api/books/by-isbn/{isbn}": [2520.0] * 30,
            "GET /api/reviews/recent": [301.0] * 30,
        },
        errors={"GET /api/reviews/recent": 3},
    )
    console = Console(width=80, record=True)
    console.print(result_table(res))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    # The last columns (p99.9, max, errors) are whole, not cropped or ellipsized.
    assert "p99.9" in text and "errors" in text and "…" not in text
    assert "3 (9.1%)" in text and "2.52 s" in text and "301" in text
    assert '"s": seconds' in text
