from __future__ import annotations

from lagless.detectors import DetectorSettings, analyze

from ._build import add, make_trace


def test_middleware_with_a_large_share():
    trace = make_trace("/x", duration_ms=100, attrs={"framework": "fastapi"})
    add(trace, "middleware", "AuthMiddleware", 0, 35)
    add(trace, "middleware", "CORSMiddleware", 35, 1)
    [finding] = analyze([trace], mode="production")
    assert finding.code == "slow-middleware"
    assert finding.title == "Slow middleware: AuthMiddleware takes 35.0 ms (35% of the request)"
    assert finding.evidence[0]["share"] == 0.35
    assert "pure ASGI middleware" in finding.fix


def test_cheap_middleware_is_fine():
    trace = make_trace("/x", duration_ms=100)
    add(trace, "middleware", "CORSMiddleware", 0, 5)
    assert analyze([trace], mode="production") == []


def test_doctor_floor_keeps_sub_millisecond_layers_out():
    tiny = make_trace("/x", duration_ms=1.0)
    add(tiny, "middleware", "SessionMiddleware", 0, 0.5)
    assert analyze([tiny], mode="doctor") == []
    small = make_trace("/x", duration_ms=5.0, attrs={"framework": "django"})
    add(small, "middleware", "SessionMiddleware", 0, 3)
    [finding] = analyze([small], mode="doctor")
    assert finding.severity == "high" and "settings.MIDDLEWARE" in finding.fix
    assert analyze([small], mode="production") == []  # 3 ms is under the 10 ms floor
    lower = DetectorSettings(middleware_min_ms=2.0)
    assert len(analyze([small], mode="production", settings=lower)) == 1
