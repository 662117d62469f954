"""The overhead benchmark's harness: its statistics, and that its arms do what they claim
(a lagless arm that recorded nothing, or an OpenTelemetry arm that exported nothing, would
make the comparison meaningless). Django is left out: it needs process-wide settings."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"lagless_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


common = _load("_common")
apps = _load("_apps")


def test_interleave_rotates_arms_and_pairs_rounds() -> None:
    order: list[str] = []
    costs = {"a": 1000, "b": 3000}  # ns per operation

    def arm(name: str) -> Any:
        def run(n: int) -> int:
            order.append(name)
            return costs[name] * n

        return run

    result = common.interleave({"a": arm("a"), "b": arm("b")}, n=10, repeats=4, warmup=0)
    assert order == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert result.rounds == {"a": [1.0] * 4, "b": [3.0] * 4}
    assert result.median("b") == 3.0
    assert result.added("b", "a") == 2.0


def test_alternate_rotates_one_operation_at_a_time_sync_and_async() -> None:
    order: list[str] = []

    def arm(name: str, ns: int) -> Any:
        def once() -> int:
            order.append(name)
            return ns

        return once

    result = common.alternate({"a": arm("a", 1000), "b": arm("b", 4000)}, iterations=3, warmup=0)
    assert order == ["a", "b", "b", "a", "a", "b"]
    assert result.added("b", "a") == 3.0

    async def slow() -> int:
        return 5000

    async def fast() -> int:
        return 2000

    loop = asyncio.new_event_loop()
    try:
        result = common.alternate({"f": fast, "s": slow}, iterations=4, loop=loop, warmup=1)
    finally:
        loop.close()
    assert result.rounds == {"f": [2.0] * 4, "s": [5.0] * 4}


def test_added_is_the_median_of_paired_differences() -> None:
    # A load burst in round 2 slows both arms: pairing cancels it, medians of arms do not.
    result = common.Result({"base": [10.0, 50.0, 10.0], "arm": [12.0, 53.0, 11.0]})
    assert result.added("arm", "base") == 2.0


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_arms_answer_and_lagless_records(kind: str) -> None:
    pytest.importorskip(kind)
    pytest.importorskip("opentelemetry.instrumentation.asgi")
    otel = common.otel_tracer_provider()
    assert otel is not None
    provider, exported = otel
    loop = asyncio.new_event_loop()
    try:
        probes = {}
        for arm in ("bare", "lagless", "otel", "lagless-nodb"):
            app = apps.build_arms(kind, arm, provider)
            probes[arm] = apps.ASGIProbe(app, loop) if kind == "starlette" else apps.WSGIProbe(app)
        for arm, probe in probes.items():
            probe(2)
            once = probe.once() if kind == "flask" else loop.run_until_complete(probe.once())
            assert once > 0
            status = probe.status
            assert status == 200 or str(status).startswith("200"), (arm, status)
        apps.check_lagless_arm(probes["lagless"], kind)  # raises SystemExit if it did not
        timing = "server-timing" if kind == "flask" else b"server-timing"
        assert probes["bare"].header(timing) is None
        assert exported() > 0
        assert apps.notes == []  # lagless.instrument used the framework's own integration
    finally:
        loop.close()
        provider.shutdown()
