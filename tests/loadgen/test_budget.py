from __future__ import annotations

import pytest

from lagless.loadgen import check_budgets, load_budgets
from lagless.loadgen._budget import BudgetError, parse_budgets
from tests.loadgen._synthetic import result

BUDGETS = """\
[defaults]
p95_ms = 50
error_rate = 0.01

[routes."GET /api/books"]
p95_ms = 20
"p99.9_ms" = 400

[total]
p99_ms = 100
"""


def test_parse_budgets() -> None:
    b = parse_budgets(BUDGETS, source="b.toml")
    assert [(lim.metric, lim.value) for lim in b.defaults] == [("p95", 50.0), ("error_rate", 0.01)]
    assert [(lim.metric, lim.quantile) for lim in b.routes["GET /api/books"]] == [
        ("p95", 0.95),
        ("p99.9", pytest.approx(0.999)),
    ]
    assert b.total[0].metric == "p99"
    assert b.routes["GET /api/books"][0].line == 6


def test_budgets_pass_and_break() -> None:
    b = parse_budgets(BUDGETS, source="b.toml")
    good = result({"GET /api/books": [10.0] * 20000, "GET /api/stats": [30.0] * 400})
    report = check_budgets(good, b)
    assert report.passed
    assert {(c.route, c.metric) for c in report.checks} == {
        ("GET /api/books", "p95"),
        ("GET /api/books", "p99.9"),
        ("GET /api/books", "error_rate"),  # from [defaults]
        ("GET /api/stats", "p95"),
        ("GET /api/stats", "error_rate"),
        ("all routes", "p99"),
    }
    slow = result(
        {"GET /api/books": [10.0] * 18000 + [30.0] * 2000, "GET /api/stats": [30.0] * 400},
        errors={"GET /api/stats": 40},
    )
    report = check_budgets(slow, b)
    assert not report.passed
    broken = {(c.route, c.metric) for c in report.broken}
    assert broken == {("GET /api/books", "p95"), ("GET /api/stats", "error_rate")}


def test_too_few_requests_for_a_percentile_is_not_a_pass() -> None:
    b = parse_budgets("[defaults]\np99_ms = 1000\n")
    report = check_budgets(result({"GET /": [1.0] * 300}), b)
    assert not report.passed
    assert "needs 1000, had 300" in report.broken[0].reason


def test_an_invalid_run_does_not_pass() -> None:
    b = parse_budgets("[defaults]\np50_ms = 1000\n")
    report = check_budgets(result({"GET /": [1.0] * 300}, invalid=["saturated"]), b)
    assert not report.broken
    assert not report.passed


def test_a_budget_for_an_unknown_route_is_broken() -> None:
    b = parse_budgets('[routes."GET /nope"]\np50_ms = 1\n', source="b.toml")
    report = check_budgets(result({"GET /": [1.0] * 300}), b)
    assert not report.passed
    assert report.broken[0].reason == "b.toml:1: no such route in the run"


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("[defaults]\np95_ms = 1\np95 = 3\n", "b.toml:3", "unknown limit 'p95'"),
        ("[defaults]\nmax_ms = 10\n", "b.toml:2", "max_ms is not a budget"),
        ('[routes."GET /"]\n\np99_ms = "fast"\n', "b.toml:3", "must be a number"),
        ("[defaults]\nerror_rate = 5\n", "b.toml:2", "error_rate is a fraction"),
        ("[defaults]\np95_ms = 1\n\n[limits]\np99_ms = 1\n", "b.toml:4", "unknown table"),
        ("[defaults]\np95_ms = = 1\n", "b.toml:2", "invalid TOML"),
        ("[defaults]\np100_ms = 1\n", "b.toml:2", "unknown limit"),
    ],
)
def test_budget_errors_name_file_and_line(text: str, where: str, message: str) -> None:
    with pytest.raises(BudgetError) as info:
        parse_budgets(text, source="b.toml")
    assert str(info.value).startswith(where + ": ")
    assert message in str(info.value)


def test_load_budgets_from_a_file(tmp_path) -> None:
    path = tmp_path / "budgets.toml"
    path.write_text(BUDGETS)
    assert load_budgets(path).source == str(path)
    with pytest.raises(BudgetError, match="cannot read"):
        load_budgets(tmp_path / "absent.toml")
