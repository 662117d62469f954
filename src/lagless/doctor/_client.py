"""Sending the doctor's requests: in process through httpx's ASGI/WSGI transports, or over HTTP.

httpx is the client in all three cases, so requests look the same to every target (and carry
``Accept-Encoding``, as browsers' do, so compression is judged as real clients see it). An ASGI
app gets its lifespan run first, since apps open their database pools there.

For a URL target no span comes back, so each response becomes a *response-level* trace: its
status, size, headers, a digest of its body, and the layer times from ``Server-Timing``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import time
from typing import Any

from lagless._scenario import PreparedRequest
from lagless._trace import Trace
from lagless.doctor._targets import Target, TargetError


@dataclasses.dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    wire_bytes: int
    elapsed_ns: int
    #: What was really sent, including the client's own headers (Accept-Encoding).
    request_headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class _Lifespan:
    """Runs an ASGI app's lifespan protocol around the doctor's requests, and hands the
    lifespan ``state`` to each request's scope (Starlette's ``request.state``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.state: dict[str, Any] = {}
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._started = asyncio.Event()
        self._stopped = asyncio.Event()
        self._failed: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.supported = True

    async def _receive(self) -> dict[str, Any]:
        return await self._inbox.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            self._started.set()
        elif kind == "lifespan.startup.failed":
            self._failed = message.get("message", "") or "startup failed"
            self._started.set()
        elif kind.startswith("lifespan.shutdown"):
            self._stopped.set()

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except BaseException:
            # An app without lifespan support raises on the unknown scope type: that is fine.
            self.supported = self._started.is_set()
        finally:
            self._started.set()
            self._stopped.set()

    async def startup(self) -> None:
        self._task = asyncio.create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        await self._started.wait()
        if self._failed is not None:
            raise TargetError(f"the app's lifespan startup failed: {self._failed}")

    async def shutdown(self) -> None:
        if self._task is None:
            return
        if self.supported and not self._task.done():
            await self._inbox.put({"type": "lifespan.shutdown"})
            try:
                await asyncio.wait_for(self._stopped.wait(), timeout=10)
            except TimeoutError:
                self._task.cancel()
        if not self._task.done():
            self._task.cancel()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.state:
            scope = {**scope, "state": dict(self.state)}
        await self.app(scope, receive, send)


class Driver:
    """Sends prepared requests to a target; ``async with`` opens and closes it."""

    def __init__(self, target: Target, *, timeout: float = 60.0) -> None:
        try:
            import httpx
        except ImportError:
            raise TargetError("lagless doctor needs httpx: pip install 'lagless[http]'") from None
        self.target = target
        self._httpx = httpx
        self._lifespan: _Lifespan | None = None
        self._sync: Any = None
        self._async: Any = None
        self._timeout = timeout

    async def __aenter__(self) -> Driver:
        httpx = self._httpx
        target = self.target
        if target.kind == "asgi":
            self._lifespan = _Lifespan(target.app)
            await self._lifespan.startup()
            transport = httpx.ASGITransport(app=self._lifespan, raise_app_exceptions=False)
            self._async = httpx.AsyncClient(
                transport=transport, base_url=target.base_url, timeout=self._timeout
            )
        elif target.kind == "wsgi":
            transport = httpx.WSGITransport(app=target.app, raise_app_exceptions=False)
            self._sync = httpx.Client(
                transport=transport, base_url=target.base_url, timeout=self._timeout
            )
        else:
            self._async = httpx.AsyncClient(base_url=target.base_url, timeout=self._timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._async is not None:
            await self._async.aclose()
        if self._sync is not None:
            self._sync.close()
        if self._lifespan is not None:
            await self._lifespan.shutdown()

    async def send(self, req: PreparedRequest) -> Response:
        headers = dict(req.headers)
        start = time.perf_counter_ns()
        try:
            if self._async is not None:
                resp = await self._async.request(
                    req.method, req.url, headers=headers, content=req.body
                )
            else:
                # WSGI apps block: run each in a worker thread so --concurrency applies.
                resp = await asyncio.to_thread(
                    self._sync.request, req.method, req.url, headers=headers, content=req.body
                )
        except self._httpx.HTTPError as exc:
            raise TargetError(f"{req.method} {req.url}: {exc}") from None
        except Exception as exc:
            if self.target.kind == "url":
                raise
            # An in-process app can raise straight out of its call (httpx's WSGI transport
            # does not catch that, nor anything thrown outside the framework's own handler):
            # a failed request of the run, reported with the others, not a crash of the run.
            raise TargetError(
                f"{req.method} {req.url}: the app raised {type(exc).__name__}: {exc}"
            ) from None
        elapsed = time.perf_counter_ns() - start
        return Response(
            status=resp.status_code,
            headers={k.lower(): v for k, v in resp.headers.items()},
            body=resp.content,
            wire_bytes=resp.num_bytes_downloaded,
            elapsed_ns=elapsed,
            request_headers=[(k.lower(), v) for k, v in resp.request.headers.items()],
        )

    async def get_json(self, path: str) -> Any:
        """A JSON document at ``path`` (an OpenAPI schema), or ``None``."""
        from lagless._scenario import RequestSpec

        spec = RequestSpec(method="GET", path=path, name=path)
        try:
            resp = await self.send(
                PreparedRequest(spec, "GET", path, (("accept", "application/json"),), None)
            )
        except TargetError:
            return None
        if resp.status != 200:
            return None
        import json

        try:
            return json.loads(resp.body)
        except ValueError:
            return None


_TIMING_ENTRY = re.compile(r"\s*([!#$%&'*+\-.^_`|~\w]+)((?:\s*;\s*[^,;]+)*)")
_TIMING_PARAM = re.compile(r";\s*(\w+)\s*=\s*(\"[^\"]*\"|[^;,\s]+)")


_QUERY_COUNT = re.compile(r"(\d+) quer(?:y|ies)\b")


def parse_server_timing(value: str) -> dict[str, dict[str, Any]]:
    """``db;dur=3.2;desc="4 queries", total;dur=9`` -> ``{"db": {"dur": 3.2, "desc": ...}}``
    (W3C Server Timing; malformed entries are skipped)."""
    out: dict[str, dict[str, Any]] = {}
    for part in value.split(","):
        match = _TIMING_ENTRY.match(part)
        if not match:
            continue
        entry: dict[str, Any] = {}
        for key, raw in _TIMING_PARAM.findall(match.group(2) or ""):
            text = raw.strip('"')
            if key == "dur":
                try:
                    entry["dur"] = float(text)
                except ValueError:
                    continue
            else:
                entry[key] = text
        out[match.group(1)] = entry
    return out


def response_trace(req: PreparedRequest, route: str, resp: Response) -> Trace:
    """A response-level trace of one request to a URL target (no spans: the server keeps them).

    The duration is the server's own ``total`` from Server-Timing when present (what lagless
    measured there), else the round trip seen here.
    """
    path, _, query = req.url.partition("?")
    trace = Trace(
        req.method,
        path,
        route=route,
        start_ns=0,
        request_headers=resp.request_headers or list(req.headers),
        query_string=query,
    )
    trace.status = resp.status
    trace.response_bytes = resp.wire_bytes
    trace.set_response_headers(list(resp.headers.items()))
    timing = parse_server_timing(resp.headers.get("server-timing", ""))
    total = timing.get("total", {}).get("dur")
    trace.duration_ns = int(total * 1_000_000) if total is not None else resp.elapsed_ns
    trace.attrs["body_digest"] = hashlib.blake2b(resp.body, digest_size=16).hexdigest()
    trace.attrs["source"] = "server-timing" if timing else "client"
    if timing:
        trace.attrs["server_timing"] = timing
        # lagless's own header counts the queries in the db entry's desc ("21 queries").
        count = _QUERY_COUNT.match(str(timing.get("db", {}).get("desc", "")))
        if count:
            trace.attrs["queries"] = int(count.group(1))
    trace.attrs["round_trip_ms"] = round(resp.elapsed_ns / 1e6, 3)
    return trace
