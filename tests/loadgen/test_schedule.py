from __future__ import annotations

import itertools

import pytest

from lagless.errors import LaglessError
from lagless.loadgen._schedule import (
    Stage,
    arrivals,
    constant,
    parse_duration,
    parse_stages,
    total_duration,
)


def test_constant_rate_is_evenly_spaced() -> None:
    times = list(arrivals(constant(100, 2)))
    assert len(times) == 200
    assert times[0] == 0.0
    gaps = {round(b - a, 9) for a, b in itertools.pairwise(times)}
    assert gaps == {0.01}


def test_ramp_from_zero_follows_the_area_under_the_rate() -> None:
    # 0 -> 100/s over 1 s: 50 requests, denser towards the end; N(t) = 50 t^2.
    times = list(arrivals([Stage(1.0, 0.0, 100.0)]))
    assert len(times) == 50
    for k, t in enumerate(times):
        assert 50 * t * t == pytest.approx(k, abs=1e-6)
    assert times[-1] - times[-2] < times[1] - times[0]


def test_stages_carry_fractions_across_boundaries() -> None:
    stages = parse_stages("1s:100,1s:100,1s:0")
    assert stages == [Stage(1, 0, 100), Stage(1, 100, 100), Stage(1, 100, 0)]
    times = list(arrivals(stages))
    assert len(times) == round(sum(s.requests for s in stages)) == 200
    assert times == sorted(times)
    assert all(0 <= t < total_duration(stages) for t in times)
    # Fractional stage: 0.5 s at 3/s is 1.5 requests; the boundary neither drops nor doubles.
    odd = list(arrivals([Stage(0.5, 3, 3), Stage(0.5, 3, 3)]))
    assert odd == pytest.approx([0.0, 1 / 3, 2 / 3])


def test_ramp_down_to_zero_stops() -> None:
    times = list(arrivals([Stage(1.0, 10.0, 0.0)]))
    assert len(times) == 5
    assert times[-1] < 1.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("2m", 120), ("500ms", 0.5), ("1.5", 1.5), ("1h", 3600)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "ten", "-1s", "5 parsecs"])
def test_bad_durations_are_explained(text: str) -> None:
    with pytest.raises(LaglessError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10s", "DURATION:RATE"),
        ("10s:fast", "bad stage rate"),
        ("10s:-5", ">= 0"),
        ("0s:10", "duration > 0"),
        ("10s:0", "nothing would be sent"),
        ("", "empty"),
    ],
)
def test_bad_stages_are_explained(text: str, message: str) -> None:
    with pytest.raises(LaglessError, match=message):
        parse_stages(text)


def test_constant_rejects_nonsense() -> None:
    with pytest.raises(LaglessError, match="rate"):
        constant(0, 10)
    with pytest.raises(LaglessError, match="duration"):
        constant(10, 0)
