"""requests capture against a real HTTP server on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("requests")

import requests
import requests.sessions

import lagless.integrations.requests as requests_integration
from lagless._trace import Trace
from lagless.integrations import get_integration
from tests.integrations.clients.conftest import JSON_BODY


@pytest.fixture
def installed() -> Iterator[None]:
    integ = get_integration("requests")
    integ.install()
    yield
    integ.uninstall()


def http_spans(trace: Trace) -> list[Any]:
    return [s for s in trace.spans if s.kind == "http"]


def test_install_is_idempotent_and_uninstall_restores_exactly() -> None:
    original = requests.sessions.Session.__dict__["send"]
    integ = get_integration("requests")
    integ.install()
    integ.install()
    assert requests.Session.send.__wrapped__ is original
    integ.uninstall()
    assert requests.sessions.Session.__dict__["send"] is original


def test_get_with_module_function(http_server: str, installed: None, trace: Trace) -> None:
    port = http_server.rsplit(":", 1)[1]
    response = requests.get(f"{http_server}/users/7", params={"token": "s3cret"}, timeout=5)
    assert response.content == JSON_BODY
    (span,) = http_spans(trace)
    assert span.name == f"GET http://127.0.0.1:{port}/users/{{}}"
    assert "s3cret" not in repr(span)
    assert span.get("method") == "GET"
    assert span.get("host") == f"127.0.0.1:{port}"
    assert span.get("status") == 200
    assert span.get("bytes") == len(JSON_BODY)
    assert span.get("driver") == "requests"
    assert span.get("on_loop") is None


def test_session_redirect_status_post_and_stream(
    http_server: str, installed: None, trace: Trace
) -> None:
    with requests.Session() as session:
        redirected = session.get(f"{http_server}/redirect", timeout=5)
        assert redirected.status_code == 200 and len(redirected.history) == 1
        assert session.get(f"{http_server}/status/404", timeout=5).status_code == 404
        assert session.post(f"{http_server}/echo", data=b"hello", timeout=5).content == b"hello"
        with session.get(f"{http_server}/json", stream=True, timeout=5) as streamed:
            assert streamed.raw.read() == JSON_BODY
    redirect, missing, post, stream = http_spans(trace)
    # The redirect hop re-enters Session.send; it is not recorded a second time.
    assert redirect.name.endswith("/redirect")
    assert redirect.get("status") == 200
    assert missing.get("status") == 404
    assert post.name.startswith("POST ")
    assert post.get("status") == 201
    assert post.get("bytes") == 5
    assert stream.get("bytes") == len(JSON_BODY)


def test_connection_refused_recorded_and_raised(
    closed_url: str, installed: None, trace: Trace
) -> None:
    with pytest.raises(requests.ConnectionError):
        requests.get(closed_url, timeout=5)
    (span,) = http_spans(trace)
    assert span.get("error").startswith("ConnectionError")
    assert span.get("status") is None


def test_nothing_recorded_without_a_trace(
    http_server: str, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(requests_integration, "_record", lambda *a: calls.append(a))
    assert requests.get(f"{http_server}/json", timeout=5).content == JSON_BODY
    assert calls == []


async def test_on_loop_and_worker_threads(http_server: str, installed: None, trace: Trace) -> None:
    requests.get(f"{http_server}/json", timeout=5)  # blocks the running loop
    # The right way: in worker threads, which carry the request's context along.
    await asyncio.gather(
        *(asyncio.to_thread(requests.get, f"{http_server}/users/{i}", timeout=5) for i in range(3))
    )
    blocking, *threaded = http_spans(trace)
    assert blocking.get("on_loop") is True
    assert len(threaded) == 3
    assert all(s.get("on_loop") is None for s in threaded)


def test_requests_inside_httpx_records_once(
    http_server: str, installed: None, trace: Trace
) -> None:
    httpx = pytest.importorskip("httpx")
    get_integration("httpx").install()

    class ViaRequests(httpx.BaseTransport):
        def handle_request(self, request: Any) -> Any:
            relayed = requests.get(str(request.url), timeout=5)
            return httpx.Response(relayed.status_code, content=relayed.content)

    with httpx.Client(transport=ViaRequests()) as client:
        assert client.get(f"{http_server}/json").content == JSON_BODY
    (span,) = http_spans(trace)
    assert span.get("driver") == "httpx"
