"""httpx capture against a real HTTP server on a loopback port: sync and async clients,
statuses, redirects, streaming, transport errors, and exact uninstall."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("httpx")

import httpx

import lagless
import lagless.integrations.httpx as httpx_integration
from lagless._spans import params_fingerprint
from lagless._trace import Trace, _current_trace
from lagless.integrations import get_integration
from tests.integrations.clients.conftest import JSON_BODY


@pytest.fixture
def installed() -> Iterator[None]:
    integ = get_integration("httpx")
    integ.install()
    yield
    integ.uninstall()


def http_spans(trace: Trace) -> list[Any]:
    return [s for s in trace.spans if s.kind == "http"]


def test_install_is_idempotent_and_uninstall_restores_exactly() -> None:
    sync_send = httpx.Client.__dict__["send"]
    async_send = httpx.AsyncClient.__dict__["send"]
    integ = get_integration("httpx")
    integ.install()
    integ.install()
    assert httpx.Client.send.__wrapped__ is sync_send  # wrapped once, not twice
    assert httpx.AsyncClient.send.__wrapped__ is async_send
    integ.uninstall()
    assert httpx.Client.__dict__["send"] is sync_send
    assert httpx.AsyncClient.__dict__["send"] is async_send


def test_sync_get(http_server: str, installed: None, trace: Trace) -> None:
    port = http_server.rsplit(":", 1)[1]
    with httpx.Client() as client:
        response = client.get(f"{http_server}/json", params={"token": "s3cret"})
    assert response.status_code == 200
    assert response.content == JSON_BODY
    (span,) = http_spans(trace)
    assert span.name == f"GET http://127.0.0.1:{port}/json"  # query string dropped
    assert "s3cret" not in repr(span)
    assert span.get("method") == "GET"
    assert span.get("host") == f"127.0.0.1:{port}"
    assert span.get("status") == 200
    assert span.get("bytes") == len(JSON_BODY)
    assert span.get("driver") == "httpx"
    assert span.get("url_hash") == params_fingerprint(str(response.request.url))
    assert span.get("error") is None
    assert span.get("on_loop") is None


def test_path_folding_status_and_record_params(
    http_server: str, installed: None, trace: Trace
) -> None:
    with httpx.Client(base_url=http_server) as client:
        client.get("/users/42")
        client.get("/users/43")
        assert client.get("/status/503").status_code == 503
        lagless.configure(record_params=True)
        client.get("/users/44")
    first, second, failed, raw = http_spans(trace)
    assert first.name.endswith("/users/{}") and first.name == second.name
    assert first.get("url_hash") != second.get("url_hash")
    assert failed.get("status") == 503
    assert failed.get("error") is None  # an HTTP error status is an answer, not a failure
    assert raw.name.endswith("/users/44")


def test_redirects_are_one_span_with_final_status(
    http_server: str, installed: None, trace: Trace
) -> None:
    with httpx.Client(follow_redirects=True) as client:
        response = client.get(f"{http_server}/redirect")
    assert response.status_code == 200
    assert len(response.history) == 1
    (span,) = http_spans(trace)
    assert span.name.endswith("/redirect")
    assert span.get("status") == 200


def test_post_and_streamed_response(http_server: str, installed: None, trace: Trace) -> None:
    with httpx.Client() as client:
        assert client.post(f"{http_server}/echo", content=b"abcdef").status_code == 201
        with client.stream("GET", f"{http_server}/json") as response:
            body = response.read()
    assert body == JSON_BODY
    post, streamed = http_spans(trace)
    assert post.name.startswith("POST ")
    assert post.get("bytes") == 6
    assert streamed.get("bytes") == len(JSON_BODY)  # from Content-Length, body not touched


def test_transport_error_recorded_and_raised(
    closed_url: str, installed: None, trace: Trace
) -> None:
    with httpx.Client() as client, pytest.raises(httpx.ConnectError):
        client.get(closed_url)
    (span,) = http_spans(trace)
    assert span.get("error").startswith("ConnectError")
    assert span.get("status") is None


def test_nothing_recorded_without_a_trace(
    http_server: str, installed: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(httpx_integration, "_record", lambda *a: calls.append(a))
    with httpx.Client() as client:
        assert client.get(f"{http_server}/json").content == JSON_BODY
    assert calls == []


def test_client_through_another_client_records_once(
    http_server: str, installed: None, trace: Trace
) -> None:
    """A transport that itself sends with another httpx client: one span, the outer call."""

    class Relay(httpx.BaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.Client()

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            relayed = self.inner.get(str(request.url).replace("/users/1", "/json"))
            return httpx.Response(relayed.status_code, content=relayed.content)

        def close(self) -> None:
            self.inner.close()

    with httpx.Client(transport=Relay()) as client:
        assert client.get(f"{http_server}/users/1").content == JSON_BODY
    (span,) = http_spans(trace)
    assert span.name.endswith("/users/{}")


async def test_sync_client_on_event_loop_is_flagged(
    http_server: str, installed: None, trace: Trace
) -> None:
    with httpx.Client() as client:
        client.get(f"{http_server}/json")
    (span,) = http_spans(trace)
    assert span.get("on_loop") is True


# -- AsyncClient ------------------------------------------------------------------------------


async def test_async_get_and_error(
    http_server: str, closed_url: str, installed: None, trace: Trace
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{http_server}/json?api_key=abc")
        assert response.json()["ok"] is True
        with pytest.raises(httpx.ConnectError):
            await client.get(closed_url)
    ok, failed = http_spans(trace)
    assert ok.name.endswith("/json")
    assert ok.get("status") == 200
    assert ok.get("bytes") == len(JSON_BODY)
    assert ok.get("on_loop") is None
    assert failed.get("error").startswith("ConnectError")


async def test_gather_lands_in_one_trace_and_traces_never_mix(
    http_server: str, installed: None
) -> None:
    async def handler(n: int) -> Trace:
        trace = Trace("GET", "/fanout")
        _current_trace.set(trace)
        async with httpx.AsyncClient(base_url=http_server) as client:
            await asyncio.gather(*(client.get(f"/users/{i}") for i in range(n)))
        return trace

    first, second = await asyncio.gather(
        asyncio.create_task(handler(4)), asyncio.create_task(handler(2))
    )
    assert len(http_spans(first)) == 4
    assert len(http_spans(second)) == 2
    assert all(s.get("status") == 200 for s in first.spans + second.spans)
    assert _current_trace.get() is None
