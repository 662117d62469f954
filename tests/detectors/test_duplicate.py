from __future__ import annotations

from lagless.detectors import analyze

from ._build import db, make_trace

Q = "SELECT user.id, user.name FROM user WHERE user.id = %s"


def test_identical_statement_and_params_twice_is_a_duplicate():
    trace = make_trace("/me")
    db(trace, Q, 0, 3, params_hash=7)
    db(trace, Q, 5, 3, params_hash=7)
    [finding] = analyze([trace], mode="doctor")
    assert finding.code == "duplicate-query"
    assert finding.title == "Duplicate query: the same SELECT on user ran 2 times"
    assert finding.evidence[0]["count"] == 2 and finding.evidence[0]["total_ms"] == 6.0
    assert finding.cost_ms == 3.0  # the second run is waste
    assert finding.severity == "medium"


def test_different_params_are_not_duplicates():
    trace = make_trace("/me")
    db(trace, Q, 0, 3, params_hash=7)
    db(trace, Q, 5, 3, params_hash=8)
    assert analyze([trace], mode="doctor") == []


def test_unparameterised_identical_text_is_a_duplicate_but_differing_literals_are_not():
    trace = make_trace("/me")
    db(trace, "SELECT id FROM user WHERE id = 1", 0, 1)
    db(trace, "SELECT id FROM user WHERE id = 1", 2, 1)
    db(trace, "SELECT id FROM user WHERE id = 2", 4, 1)
    [finding] = analyze([trace], mode="doctor")
    assert finding.code == "duplicate-query" and finding.evidence[0]["count"] == 2


def test_several_duplicated_parameter_sets_of_one_shape_are_one_finding():
    trace = make_trace("/me")
    for i, p in enumerate([1, 1, 2, 2, 2]):
        db(trace, Q, i * 2, 1, params_hash=p)
    [finding] = analyze([trace], mode="doctor")
    assert finding.evidence[0]["count"] == 5 and finding.evidence[0]["duplicated_sets"] == 2
    assert finding.cost_ms == 3.0  # 1 + 2 extra runs
    assert finding.severity == "high"


def test_pings_and_writes_are_not_duplicates():
    trace = make_trace("/me")
    for i in range(3):
        db(trace, "SELECT 1", i * 3, 1)
        db(trace, "INSERT INTO log (msg) VALUES (%s)", i * 3 + 1, 1, params_hash=5)
    assert analyze([trace], mode="doctor") == []


def test_production_needs_wasted_time():
    trace = make_trace("/me")
    db(trace, Q, 0, 1, params_hash=7)
    db(trace, Q, 2, 1, params_hash=7)
    assert analyze([trace], mode="production") == []
    slow = make_trace("/me")
    db(slow, Q, 0, 8, params_hash=7)
    db(slow, Q, 9, 8, params_hash=7)
    assert [f.code for f in analyze([slow], mode="production")] == ["duplicate-query"]
