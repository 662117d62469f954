"""Shared pieces for the ASGI integration tests: a fake clock for layer timing, and a check
that a Server-Timing header is well formed."""

from __future__ import annotations

import re

import pytest

import lagless.integrations._layers as layers_mod
import lagless.integrations.asgi as asgi_mod

# W3C Server Timing: metric *( ";" param ), metrics joined by ", ".
SERVER_TIMING = re.compile(
    r'^[a-z]+;dur=\d+\.\d{2}(;desc="[^"]*")?(, [a-z]+;dur=\d+\.\d{2}(;desc="[^"]*")?)*$'
)


def assert_server_timing(value: str | None) -> dict[str, float]:
    """The header parses, ends with ``total``, and its durations are not negative."""
    assert value is not None
    assert SERVER_TIMING.match(value), value
    metrics = {}
    for part in value.split(", "):
        name, dur = part.split(";")[:2]
        metrics[name] = float(dur.removeprefix("dur="))
    assert list(metrics)[-1] == "total"
    assert "app" in metrics
    assert all(v >= 0 for v in metrics.values())
    return metrics


class FakeClock:
    """Stands in for ``perf_counter_ns`` inside lagless's ASGI layer timing: time moves only
    when a test's middleware or endpoint says it did work, so own times are exact."""

    def __init__(self) -> None:
        self.t = 10**15

    def __call__(self) -> int:
        return self.t

    def advance(self, ns: int) -> None:
        self.t += ns


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(asgi_mod, "_now", fake)
    monkeypatch.setattr(layers_mod, "_now", fake)
    return fake
