from __future__ import annotations

from lagless.detectors import analyze
from lagless.detectors.static_assets import max_age

from ._build import make_trace


def asset(path="/static/app.js", cache_control=None, encoding=None, size=80_000, **kw):
    headers = {"content-type": "text/javascript"}
    if cache_control:
        headers["cache-control"] = cache_control
    if encoding:
        headers["content-encoding"] = encoding
    return make_trace(
        "/static/{path}",
        path=path,
        duration_ms=4,
        response_bytes=size,
        response_headers=headers,
        request_headers={"accept-encoding": "gzip, br"},
        **kw,
    )


def test_static_asset_without_caching_or_compression():
    [finding] = analyze([asset()], mode="doctor")
    assert finding.code == "static-no-cache"
    assert finding.title == (
        "Static asset served by the app with no far-future caching and uncompressed"
    )
    assert finding.cost_ms == 68.0  # the 4 ms request + 80 KB at 10 Mbit/s
    assert "immutable" in finding.fix and "WhiteNoise" in finding.fix


def test_short_max_age_is_not_far_future():
    [finding] = analyze([asset(cache_control="public, max-age=600", encoding="br")], mode="doctor")
    assert finding.title == "Static asset served by the app with no far-future caching"


def test_well_served_assets_are_fine():
    good = asset(cache_control="public, max-age=31536000, immutable", encoding="br")
    png = asset("/static/logo.png", cache_control="max-age=604800", size=30_000)
    png.response_headers = {"content-type": "image/png", "cache-control": "max-age=604800"}
    assert analyze([good, png], mode="doctor") == []


def test_api_responses_are_not_static_assets():
    api = make_trace(
        "/api/items",
        duration_ms=4,
        response_bytes=10,
        response_headers={"content-type": "application/json"},
    )
    assert analyze([api], mode="doctor") == []


def test_max_age_parsing():
    assert max_age("public, max-age=60, s-maxage=600") == 60
    assert max_age('max-age="120"') == 120
    assert max_age("no-cache") is None
