from __future__ import annotations

from lagless.detectors import analyze

from ._build import add, db, make_trace


def async_trace(**attrs):
    return make_trace("/dashboard", duration_ms=500, attrs={"async_handler": True, **attrs})


def test_consecutive_independent_reads_in_async_handler():
    trace = async_trace()
    db(trace, "SELECT id FROM orders WHERE user_id = $1", 0, 80, params_hash=1)
    add(trace, "http", "GET https://weather.example/today", 81, 120, url_hash=2)
    add(trace, "cache", "GET", 202, 10, key="banner", key_hash=3)
    [finding] = analyze([trace], mode="doctor")
    assert finding.code == "sequential-io" and finding.potential
    assert finding.title.startswith("Potential sequential I/O: 3 independent-looking calls")
    assert finding.cost_ms == 90.0  # 210 ms in all; gathered, the 120 ms call bounds it
    assert [e["kind"] for e in finding.evidence] == ["db", "http", "cache"]
    assert "asyncio.gather" in finding.fix
    assert finding.severity == "low"  # under Sentry's 100 ms saving: doctor runs only
    assert analyze([trace], mode="production") == []


def test_production_reports_runs_saving_100_ms():
    trace = async_trace()
    db(trace, "SELECT a FROM x WHERE id = $1", 0, 130, params_hash=1)
    db(trace, "SELECT b FROM y WHERE id = $1", 131, 150, params_hash=1)
    [finding] = analyze([trace], mode="production")
    assert finding.cost_ms == 130.0 and finding.severity == "medium"


def test_overlapping_calls_are_already_concurrent():
    trace = async_trace()
    db(trace, "SELECT a FROM x WHERE id = $1", 0, 150, params_hash=1)
    db(trace, "SELECT b FROM y WHERE id = $1", 10, 150, params_hash=1)
    assert analyze([trace], mode="production") == []


def test_sync_handlers_are_not_reported():
    trace = make_trace("/dashboard", duration_ms=500, attrs={"async_handler": False})
    db(trace, "SELECT a FROM x WHERE id = %s", 0, 150, params_hash=1)
    db(trace, "SELECT b FROM y WHERE id = %s", 151, 150, params_hash=1)
    assert analyze([trace], mode="production") == []


def test_writes_break_a_run():
    trace = async_trace()
    db(trace, "SELECT a FROM x WHERE id = $1", 0, 150, params_hash=1)
    db(trace, "UPDATE x SET seen = true WHERE id = $1", 151, 5, params_hash=1)
    db(trace, "SELECT b FROM y WHERE id = $1", 157, 150, params_hash=1)
    assert analyze([trace], mode="production") == []


def test_asgi_framework_counts_as_async_when_the_handler_kind_is_unknown():
    trace = make_trace("/dashboard", duration_ms=500, attrs={"framework": "fastapi"})
    db(trace, "SELECT a FROM x WHERE id = $1", 0, 150, params_hash=1)
    db(trace, "SELECT b FROM y WHERE id = $1", 151, 150, params_hash=1)
    assert [f.code for f in analyze([trace], mode="production")] == ["sequential-io"]
    trace.attrs["framework"] = "flask"
    assert analyze([trace], mode="production") == []
    trace.attrs.update(framework="fastapi", async_handler=False)  # a def endpoint
    assert analyze([trace], mode="production") == []


def test_doctor_runs_need_three_calls_in_a_row():
    trace = async_trace()
    db(trace, "SELECT a FROM x WHERE id = $1", 0, 1, params_hash=1)
    db(trace, "SELECT b FROM y WHERE x_id = $1", 1.5, 1, params_hash=2)
    assert analyze([trace], mode="doctor") == []  # parent then children: the common case
    db(trace, "SELECT c FROM z WHERE id = $1", 3, 1, params_hash=3)
    [finding] = analyze([trace], mode="doctor")
    assert finding.severity == "low" and len(finding.evidence) == 3


def test_production_needs_a_tenth_of_the_run_saved():
    trace = async_trace()
    db(trace, "SELECT a FROM x WHERE id = $1", 0, 2000, params_hash=1)
    db(trace, "SELECT b FROM y WHERE id = $1", 2001, 150, params_hash=1)
    assert analyze([trace], mode="production") == []  # saves 150 of 2150 ms: 7 %
