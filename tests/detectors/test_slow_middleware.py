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


def test_the_routes_median_request_decides_not_one_outlier():
    traces = []
    for own_ms in (40, 0.2, 0.3, 0.2, 0.25):  # a slow first request (a cold import), then fast
        trace = make_trace("/x", duration_ms=60, attrs={"framework": "starlette"})
        add(trace, "middleware", "GZipMiddleware", 0, own_ms)
        traces.append(trace)
    assert analyze(traces, mode="doctor") == []
    traces[1].spans[0].duration_ns = 30_000_000
    assert analyze(traces, mode="doctor") == []  # 2 slow of 5: the median is still fast
    traces[2].spans[0].duration_ns = 30_000_000
    [finding] = analyze(traces, mode="doctor")
    assert finding.requests == 5 and finding.evidence[0]["median_of"] == 5
    assert finding.cost_ms == 30.0
