"""The doctor's run: plan the requests, warm up, measure, collect traces.

The plan is a list of :class:`~lagless._scenario.RequestSpec`: the scenario's own requests
first (they may name unsafe methods), then every discovered endpoint the scenario does not
cover, with path parameters filled from the scenario's ``[params]`` or the schema's examples.
Discovered POST/PUT/PATCH/DELETE routes are never called on their own (RFC 9110 §9.2.1: they
are not safe), and a route whose parameters have no value is skipped with the reason.

The first warm-up round also reads any HTML page it receives and adds the page's same-origin
scripts, styles and images to the plan, the way a browser would fetch them.

Measured rounds interleave the routes (round-robin, not all runs of one route in a row), with
at most ``concurrency`` requests in flight. In-process targets record full traces through a
runtime listener, with ``body_digest`` (identical responses) and the loop-lag probe switched on
for the run and restored afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from lagless._config import SETTINGS
from lagless._runtime import get_runtime
from lagless._scenario import MissingValue, RequestSpec, Scenario, ScenarioState
from lagless._trace import Trace
from lagless.doctor._client import Driver, Response, response_trace
from lagless.doctor._discovery import Endpoint, page_assets
from lagless.doctor._targets import Target, merged_endpoints
from lagless.errors import LaglessError

#: The doctor's own HTTP client libraries, whose per-request INFO lines are silenced.
_CLIENT_LOGGERS = ("httpx", "httpcore")
_OPENAPI_PATHS = ("/openapi.json", "/schema/openapi.json", "/api/openapi.json")


@dataclasses.dataclass
class RunOptions:
    runs: int = 5
    warmup: int = 1
    concurrency: int = 1
    scenario: Scenario | None = None
    timeout: float = 60.0


@dataclasses.dataclass
class Skipped:
    method: str
    route: str
    reason: str


@dataclasses.dataclass
class RunResult:
    target: str
    traces: list[Trace]
    plan: list[RequestSpec]
    skipped: list[Skipped]
    failures: list[str]
    limited: bool
    elapsed_s: float
    options: RunOptions
    #: "doctor" for a run; "analyze" for traces read from files (no runs, no plan).
    source: str = "doctor"


ProgressHook = Callable[[str, int, int], None]


def plan_requests(
    endpoints: list[Endpoint], scenario: Scenario | None
) -> tuple[list[RequestSpec], list[Skipped]]:
    """The specs to run and the endpoints left out (with why). Pure: no I/O."""
    scenario = scenario or Scenario()
    plan: list[RequestSpec] = list(scenario.requests)
    skipped: list[Skipped] = []
    for ep in endpoints:
        if scenario.find(ep.method, ep.path) is not None:
            continue
        if ep.method not in ("GET", "HEAD"):
            skipped.append(
                Skipped(
                    ep.method, ep.path, "not a safe method; name it in a scenario to exercise it"
                )
            )
            continue
        params: dict[str, Any] = {}
        missing = []
        for name in (*ep.params, *ep.query):
            if name in scenario.params:
                continue  # drawn by ScenarioState from [params]
            if name in ep.examples:
                params[name] = ep.examples[name]
            else:
                missing.append(name)
        if missing:
            names = ", ".join(missing)
            # Say where the value goes: a newcomer has not met scenario files yet.
            example = ", ".join(f"{n} = ..." for n in missing)
            skipped.append(
                Skipped(
                    ep.method,
                    ep.path,
                    f"no value for {names}; give one in a --scenario file: [params] {example}",
                )
            )
            continue
        query = tuple((q, "{" + q + "}") for q in ep.query)
        plan.append(
            RequestSpec(
                method=ep.method,
                path=ep.path,
                name=f"{ep.method} {ep.path}",
                query=query,
                params=params,
                source=ep.source,
            )
        )
    return plan, skipped


def _matches(template: str, path: str) -> bool:
    """Whether concrete ``path`` is an instance of route ``template`` (``/static/{name}``)."""
    if "{" not in template or "{" in path:
        return False
    pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, path) is not None


class _Collector:
    """The runtime listener of an in-process run: keeps the measured traces and marks which
    came from async handlers, as the router says (``async_handler``), where the framework
    integration did not already."""

    def __init__(self, async_routes: dict[tuple[str, str], bool]) -> None:
        self.on = False
        self.traces: list[Trace] = []
        self.async_routes = async_routes

    def __call__(self, trace: Trace) -> None:
        if not self.on:
            return
        if "async_handler" not in trace.attrs:
            flag = self.async_routes.get((trace.method, trace.route_or_path))
            if flag is not None:
                trace.attrs["async_handler"] = flag
        self.traces.append(trace)


async def run(
    target: Target, options: RunOptions, progress: ProgressHook | None = None
) -> RunResult:
    """Exercise ``target`` and return the traces of the measured rounds."""
    if options.runs < 1:
        raise LaglessError("--runs must be at least 1")
    if options.concurrency < 1:
        raise LaglessError("--concurrency must be at least 1")
    started = time.perf_counter()
    rt = get_runtime()
    saved = rt.config
    # Digests tell identical responses apart; the slow-request log would only repeat, line
    # by line, what the report says.
    overrides: dict[str, Any] = {"body_digest": True, "enabled": True, "slow_request_ms": 0}
    if "loop_lag_probe" in SETTINGS:
        overrides["loop_lag_probe"] = True
    collector = _Collector(
        {(e.method, e.path): e.is_async for e in target.router_endpoints if e.is_async is not None}
    )
    failures: list[str] = []
    traces: list[Trace] = []
    state = ScenarioState(options.scenario)
    if target.in_process:
        rt.configure(**overrides)
        rt.add_listener(collector)
    # httpx logs every request at INFO; an app that configures the root logger at INFO
    # (Litestar does by default) would otherwise print one line per doctor request.
    quieted = [logging.getLogger(name) for name in _CLIENT_LOGGERS]
    levels = [lg.level for lg in quieted]
    for lg in quieted:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    try:
        async with Driver(target, timeout=options.timeout) as driver:
            schema: Any = None
            if target.openapi is not None:
                try:
                    schema = target.openapi()
                except Exception as exc:
                    failures.append(f"could not build the OpenAPI schema: {exc}")
            if schema is None and target.framework not in ("flask", "django"):
                for path in _OPENAPI_PATHS:
                    schema = await driver.get_json(path)
                    if isinstance(schema, dict) and "paths" in schema:
                        break
                    schema = None
            endpoints = merged_endpoints(target, schema)
            if target.kind == "url" and not any(e.path == "/" for e in endpoints):
                # A server's router is out of reach: try its home page, for the assets it
                # links (dropped after the first request if there is none).
                endpoints.append(Endpoint("GET", "/", "guess"))
            plan, skipped = plan_requests(endpoints, options.scenario)
            if not plan:
                raise LaglessError(
                    "found no route to exercise"
                    + (f" ({len(skipped)} skipped: see below)" if skipped else "")
                    + "; give a scenario file with --scenario"
                )
            rounds = max(options.warmup, 1) + options.runs
            done = 0
            answered = 0

            def tick(name: str) -> None:
                nonlocal done
                done += 1
                if progress is not None:
                    progress(name, done, rounds * len(plan))

            async def one(spec: RequestSpec, measured: bool) -> Response | None:
                try:
                    prepared = state.prepare(spec)
                except MissingValue as exc:
                    failures.append(str(exc))
                    tick(spec.name)
                    return None
                try:
                    resp = await driver.send(prepared)
                except LaglessError as exc:
                    failures.append(str(exc))
                    tick(spec.name)
                    return None
                nonlocal answered
                answered += 1
                state.record(spec, resp.status, resp.headers, resp.body)
                if resp.status >= 500:
                    failures.append(f"{spec.name}: HTTP {resp.status}")
                if measured and not target.in_process:
                    traces.append(response_trace(prepared, spec.path.split("?")[0], resp))
                tick(spec.name)
                return resp

            # Pre-flight (the first warm-up round): one request each, in plan order, so
            # captures flow from earlier requests to later ones; pages reveal their assets.
            known = {s.path for s in plan}
            dead: list[RequestSpec] = []
            for spec in list(plan):
                resp = await one(spec, False)
                if resp is not None and resp.status >= 400 and spec.source in ("guess", "page"):
                    dead.append(spec)  # a guessed page or a broken asset link: not a route
                    continue
                if resp is None or "text/html" not in resp.headers.get("content-type", ""):
                    continue
                for asset in page_assets(resp.body.decode("utf-8", "replace")):
                    path = asset.split("?", 1)[0]
                    if path in known:
                        continue
                    known.add(path)
                    new = RequestSpec(method="GET", path=path, name=f"GET {path}", source="page")
                    plan.append(new)
                    first = await one(new, False)
                    if first is None or first.status >= 400:
                        dead.append(new)
            if not answered:
                # Nothing answered at all (server down, wrong port): a report of "no
                # findings" would pass a CI gate on a target that was never examined.
                reason = failures[0] if failures else "no response"
                raise LaglessError(f"could not exercise {target.label}: {reason}")
            plan = [s for s in plan if s not in dead]
            if not plan:
                raise LaglessError("every route the doctor found answered with an error")
            # A template route reached through a page's assets is no longer "skipped".
            skipped = [s for s in skipped if not any(_matches(s.route, p.path) for p in plan)]
            for _ in range(max(options.warmup, 1) - 1):
                for spec in plan:
                    await one(spec, False)
            collector.on = True
            sem = asyncio.Semaphore(options.concurrency)

            async def measured(spec: RequestSpec) -> None:
                async with sem:
                    await one(spec, True)

            for _ in range(options.runs):
                if options.concurrency == 1:
                    for spec in plan:
                        await one(spec, True)
                else:
                    await asyncio.gather(*(measured(spec) for spec in plan))
            collector.on = False
    finally:
        for lg, level in zip(quieted, levels, strict=True):
            lg.setLevel(level)
        if target.in_process:
            rt.remove_listener(collector)
            rt.configure(config=saved)
        for close in target.closers:
            close()
    return RunResult(
        target=target.label,
        traces=collector.traces if target.in_process else traces,
        plan=plan,
        skipped=skipped,
        failures=failures,
        limited=not target.in_process,
        elapsed_s=time.perf_counter() - started,
        options=options,
    )
