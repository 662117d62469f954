"""A bench run end to end: resolve the target, plan the requests, pre-flight, load, result.

Targets are a base URL (``http://127.0.0.1:8000``, through :class:`HttpPool`) or an app loaded
in this process (``module:app`` or an app object, through :mod:`._inproc`). The app is *not*
instrumented by lagless here: the bench measures the app as it is.

The plan is the scenario's requests when it has any; otherwise the routes ``lagless doctor``
would exercise (the OpenAPI schema, then the framework's router, GET only, parameters from the
scenario's ``[params]`` or the schema's examples), each with weight 1. Every request of the
plan is sent once, in order, before the warm-up: captures flow from earlier requests to later
ones, and a discovered route that answers 404 or 405 is dropped with a note instead of
filling the results with errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from lagless._scenario import MissingValue, RequestSpec, Scenario, ScenarioState
from lagless.errors import LaglessError
from lagless.loadgen._engine import LoadOptions, ProgressHook, Runner, Transport
from lagless.loadgen._http import HttpPool
from lagless.loadgen._inproc import AsgiTransport, WsgiTransport
from lagless.loadgen._results import BenchResult
from lagless.loadgen._schedule import Stage, constant, parse_stages

_OPENAPI_PATHS = ("/openapi.json", "/schema/openapi.json", "/api/openapi.json")


@dataclasses.dataclass
class BenchOptions:
    """What ``lagless bench`` was asked for. ``rate`` (or ``stages``) selects the open loop;
    ``users`` alone selects the closed loop; both: open loop with at most ``users``
    connections."""

    rate: float | None = None
    duration: float = 10.0
    users: int | None = None
    stages: str | list[Stage] | None = None
    warmup: float = 0.0
    scenario: Scenario | None = None
    max_connections: int | None = None
    timeout: float = 30.0
    late_tolerance_ms: float = 10.0
    max_late_fraction: float = 0.01
    seed: int = 0
    label: str = ""

    def load_options(self, *, cpu_rule: bool) -> LoadOptions:
        stages: list[Stage] | None
        if isinstance(self.stages, str):
            stages = parse_stages(self.stages)
        elif self.stages is not None:
            stages = list(self.stages)
        elif self.rate is not None:
            stages = constant(self.rate, self.duration)
        else:
            stages = None
        if stages is None and not self.users:
            raise LaglessError("give --rate (open loop, recommended) or --users (closed loop)")
        if self.warmup < 0:
            raise LaglessError("--warmup must be >= 0")
        if self.timeout <= 0:
            raise LaglessError("--timeout must be > 0")
        if self.late_tolerance_ms < 0:
            # Every send would count as late and the run would always be "invalid".
            raise LaglessError("--late-tolerance must be >= 0")
        return LoadOptions(
            stages=stages,
            users=self.users or 0,
            duration=self.duration,
            warmup=self.warmup,
            timeout=self.timeout,
            late_tolerance_ms=self.late_tolerance_ms,
            max_late_fraction=self.max_late_fraction,
            cpu_rule=cpu_rule,
            seed=self.seed,
        )


@dataclasses.dataclass
class _Target:
    label: str
    kind: str  # "url" | "asgi" | "wsgi"
    transport: Any
    router: list[Any]
    openapi: Any = None


def _connections(options: BenchOptions) -> int:
    if options.max_connections:
        return options.max_connections
    if options.users and options.rate is None and options.stages is None:
        return options.users
    return options.users or 1000


def resolve(target: Any, options: BenchOptions) -> _Target:
    """A transport for ``target``: a base URL, ``"module:app"``, or an ASGI/WSGI app."""
    conns = _connections(options)
    if isinstance(target, str) and target.startswith(("http://", "https://")):
        pool = HttpPool(target, max_connections=conns, timeout=options.timeout)
        return _Target(target, "url", pool, [])
    from lagless.doctor._discovery import from_flask, from_starlette
    from lagless.doctor._targets import _framework_of, _is_asgi, import_app

    label = target if isinstance(target, str) else type(target).__name__
    app = import_app(target) if isinstance(target, str) else target
    if not callable(app):
        raise LaglessError(f"{label!r} is not an ASGI or WSGI application")
    framework = _framework_of(app)
    router = (
        from_starlette(app)
        if framework == "starlette"
        else from_flask(app)
        if framework == "flask"
        else []
    )
    openapi = getattr(app, "openapi", None)
    if framework in ("starlette", "litestar") or _is_asgi(app):
        transport: Any = AsgiTransport(app, max_connections=conns, timeout=options.timeout)
        kind = "asgi"
    else:
        transport = WsgiTransport(
            app, max_connections=min(conns, options.users or 16), timeout=options.timeout
        )
        kind = "wsgi"
    return _Target(label, kind, transport, router, openapi if callable(openapi) else None)


async def _once(transport: Transport, state: ScenarioState, spec: RequestSpec) -> tuple[int, Any]:
    """Send one request and wait: ``(status, body or error text)``; captures recorded."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[Any, ...]] = loop.create_future()
    prepared = state.prepare(spec)
    payload = transport.encode(prepared.method, prepared.url, prepared.headers, prepared.body)

    def done(*outcome: Any) -> None:
        if not fut.done():
            fut.set_result(outcome)

    transport.submit(payload, head=spec.method == "HEAD", keep=True, done=done)
    status, _n, headers, body, error, _sent = await fut
    if error is not None:
        return 0, error
    state.record(spec, status, headers or {}, body or b"")
    return status, body


async def _schema(t: _Target, state: ScenarioState) -> Any:
    if t.openapi is not None:
        try:
            return t.openapi()
        except Exception:
            return None
    for path in _OPENAPI_PATHS:
        spec = RequestSpec(
            method="GET", path=path, name=path, headers=(("accept", "application/json"),)
        )
        status, body = await _once(t.transport, state, spec)
        if status == 200 and isinstance(body, bytes):
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            if isinstance(doc, dict) and "paths" in doc:
                return doc
    return None


async def plan(
    t: _Target, scenario: Scenario | None, state: ScenarioState
) -> tuple[list[RequestSpec], list[str]]:
    """The requests to load with, and notes on routes left out."""
    notes: list[str] = []
    if scenario is not None and scenario.requests:
        specs = list(scenario.requests)
    else:
        from lagless.doctor._discovery import Endpoint, from_openapi, merge
        from lagless.doctor._runner import plan_requests

        schema = await _schema(t, state)
        endpoints = merge(from_openapi(schema) if isinstance(schema, dict) else [], t.router)
        endpoints = [e for e in endpoints if e.source != "static"]
        if not endpoints:
            endpoints = [Endpoint("GET", "/", "guess")]
        specs, skipped = plan_requests(endpoints, scenario)
        notes.extend(f"skipped {s.method} {s.route}: {s.reason}" for s in skipped)
    kept: list[RequestSpec] = []
    for spec in specs:
        try:
            status, body = await _once(t.transport, state, spec)
        except MissingValue as exc:
            if spec.source in ("router", "openapi", "guess"):
                notes.append(f"skipped {spec.name}: {exc}")
                continue
            raise LaglessError(str(exc)) from None
        if status == 0 and str(body).startswith("connect:"):
            raise LaglessError(f"{t.label}: {spec.name} failed before the run: {body}")
        if status == 0:
            notes.append(f"{spec.name} failed in the pre-flight: {body}")
        if status in (404, 405) and spec.source in ("router", "openapi", "guess"):
            notes.append(f"skipped {spec.name}: answered {status} in the pre-flight")
            continue
        kept.append(spec)
    if not kept:
        raise LaglessError(
            f"{t.label}: found no route to load; give a scenario file with --scenario"
        )
    return kept, notes


async def run_async(
    target: Any, options: BenchOptions, progress: ProgressHook | None = None
) -> BenchResult:
    """Run the bench in the running event loop (see :func:`lagless.loadgen.bench`)."""
    t = resolve(target, options)
    load = options.load_options(cpu_rule=t.kind != "asgi")
    start = getattr(t.transport, "start", None)
    if start is not None:
        await start()
    try:
        state = ScenarioState(options.scenario, seed=options.seed)
        specs, notes = await plan(t, options.scenario, state)
        runner = Runner(t.transport, specs, state, load, target=t.label, progress=progress)
        result = await runner.run()
    finally:
        stop = getattr(t.transport, "stop", None)
        if stop is not None:
            await stop()
    result.target = t.label
    result.label = options.label or t.label
    result.notes = notes + result.notes
    if t.kind == "asgi":
        result.notes.append(
            "in-process ASGI target: the app shares the generator's thread, so the CPU rule "
            "of the saturation check does not apply"
        )
    if result.mode == "open" and t.transport.queued:
        result.notes.append(
            f"{t.transport.queued} requests waited for a free connection (limit "
            f"{t.transport.max_connections}); their wait is part of their latency"
        )
    result.generator.connections = t.transport.max_connections
    return result


async def run_ab_async(
    target_a: Any,
    target_b: Any,
    options: BenchOptions,
    *,
    rounds: int = 6,
    progress: ProgressHook | None = None,
) -> tuple[list[BenchResult], list[BenchResult]]:
    """Interleaved rounds against two targets: A B, B A, A B, ... (ABBA order cancels a
    linear drift of the machine, such as a warming CPU or a growing database). ``duration``
    is per target, split over the rounds; the warm-up runs once per target, before round 1."""
    if rounds < 2:
        raise LaglessError("--rounds must be at least 2")
    per_round = options.duration / rounds
    if per_round <= 0:
        raise LaglessError("--duration must be > 0")
    runs_a: list[BenchResult] = []
    runs_b: list[BenchResult] = []
    for i in range(rounds):
        order = ((target_a, runs_a, "A"), (target_b, runs_b, "B"))
        if i % 2:
            order = order[::-1]
        for target, runs, name in order:
            opts = dataclasses.replace(
                options,
                duration=per_round,
                warmup=options.warmup if i == 0 else 0.0,
                stages=None,
                label=f"{name}: {target if isinstance(target, str) else type(target).__name__}",
                seed=options.seed + i,
            )
            runs.append(await run_async(target, opts, progress))
    return runs_a, runs_b
