"""Run httplint over responses the tests produce; any BAD note fails the test."""

from __future__ import annotations

from collections.abc import Iterable

from httplint import HttpRequestLinter, HttpResponseLinter, levels


def problems(
    method: str,
    url: str,
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    request_headers: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """httplint's BAD notes for one exchange, as readable strings."""
    request = HttpRequestLinter()
    request.process_request_topline(method.encode(), url.encode(), b"HTTP/1.1")
    request.process_headers(
        [(n.encode("latin-1"), v.encode("latin-1")) for n, v in request_headers]
    )
    request.finish_content(True)
    response = HttpResponseLinter(_related=request)
    response.is_head_response = method == "HEAD"
    response.process_response_topline(b"HTTP/1.1", str(status).encode(), b"X")
    response.process_headers([(n.encode("latin-1"), v.encode("latin-1")) for n, v in headers])
    if body:
        response.feed_content(body)
    response.finish_content(True)
    return [
        f"{note.__class__.__name__}: {note.summary}"
        for note in response.notes
        if note.level == levels.BAD
    ]


def assert_clean(
    method: str,
    url: str,
    status: int,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    request_headers: Iterable[tuple[str, str]] = (),
) -> None:
    found = problems(method, url, status, list(headers), body, list(request_headers))
    assert not found, f"httplint on {method} {url} -> {status}: {found}"
