"""The Django views: /metrics, the dashboard and the beacon through Django's test client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("django")
pytest.importorskip("prometheus_client")

import django
from django.conf import settings
from django.test import Client, override_settings
from django.urls import clear_url_caches
from prometheus_client.parser import text_string_to_metric_families

import lagless.monitor._monitor as monitor_mod
from lagless._runtime import Runtime
from lagless.monitor import start, stop
from lagless.monitor.django import monitor_urls
from tests.monitor import django_urls
from tests.monitor._traces import make_trace

TOKEN = "j" * 24


@pytest.fixture
def dj(fresh_runtime: Runtime) -> Iterator[Any]:
    """Django configured if no other suite did; this suite's URLs and middleware per test."""
    if not settings.configured:
        settings.configure(
            SECRET_KEY="lagless-monitor-tests",
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF="tests.monitor.django_urls",
            MIDDLEWARE=[],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
        )
        django.setup()
    mon = start(
        metrics=True,
        dashboard=True,
        dashboard_token=TOKEN,
        browser_timing=True,
    )
    django_urls.urlpatterns[:] = monitor_urls()
    clear_url_caches()
    with override_settings(
        ROOT_URLCONF="tests.monitor.django_urls",
        MIDDLEWARE=[
            "lagless.django.LaglessMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
        ],
        ALLOWED_HOSTS=["*"],
    ):
        yield mon
    stop()
    assert monitor_mod._current is None
    clear_url_caches()


def test_metrics_view(dj: Any) -> None:
    dj.observe(make_trace("/orders/{id}"))
    response = Client().get("/metrics")
    assert response.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    counts = [
        s.value
        for s in families["lagless_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    ]
    assert counts == [1.0]  # the scrape itself is not counted


def test_dashboard_view_needs_the_token(dj: Any) -> None:
    client = Client()
    assert client.get("/_lagless/").status_code == 401
    ok = client.get("/_lagless/api/summary", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert ok.status_code == 200
    assert json.loads(ok.content)["max_routes"] == 100
    first = client.get(f"/_lagless/?token={TOKEN}")
    assert first.status_code == 303
    assert client.get("/_lagless/").status_code == 200  # the cookie now


def test_beacon_view_without_csrf_token(dj: Any) -> None:
    dj.observe(make_trace("/orders/{id}"))
    client = Client(enforce_csrf_checks=True)
    body = {
        "v": 1,
        "entries": [
            {
                "url": "/orders/3",
                "duration": 30,
                "blocked": 1,
                "ttfb": 20,
                "download": 2,
                "server": 10,
            }
        ],
    }
    r = client.post("/_lagless/beacon", data=json.dumps(body), content_type="text/plain")
    assert r.status_code == 204
    assert dj.browser.routes["/orders/{id}"].count == 1
    assert client.post("/_lagless/beacon", data="{", content_type="text/plain").status_code == 400
    big = client.post("/_lagless/beacon", data="x" * 20_000, content_type="text/plain")
    assert big.status_code == 413
    assert client.get("/_lagless/beacon.js").status_code == 200
