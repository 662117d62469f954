"""When each request is due: the arrival schedule of an open-loop run (sans-IO).

A schedule is a list of stages, each ramping the arrival rate linearly from where the previous
stage ended to its own target over its duration (the semantics of k6's ``ramping-arrival-rate``
executor); a constant rate is a single stage whose start and end rates are equal. Arrival times
are deterministic, not Poisson: with a fixed rate a run is repeatable and its generator-side
lateness is easy to judge, and a benchmark compares runs rather than models a population.

``--stages 10s:100,30s:100,10s:0`` reads as "ramp to 100/s over 10 s, hold 100/s for 30 s,
ramp down to 0 over 10 s".
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Sequence

from lagless.errors import LaglessError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | float) -> float:
    """``"30s"``, ``"2m"``, ``"500ms"`` or a number of seconds -> seconds."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise LaglessError(f"bad duration {text!r}: use e.g. 30s, 2m, 500ms or 1.5")
        value = float(match.group(1)) * _UNITS[match.group(2)]
    if value < 0 or not math.isfinite(value):
        raise LaglessError(f"a duration must be a finite number >= 0, got {text!r}")
    return value


@dataclasses.dataclass(frozen=True)
class Stage:
    """``duration`` seconds ramping linearly from ``start_rate`` to ``end_rate`` requests/s."""

    duration: float
    start_rate: float
    end_rate: float

    @property
    def requests(self) -> float:
        """Expected requests in the stage (the area under the rate line)."""
        return (self.start_rate + self.end_rate) / 2.0 * self.duration


def constant(rate: float, duration: float) -> list[Stage]:
    if rate <= 0:
        raise LaglessError(f"--rate must be > 0, got {rate}")
    if duration <= 0:
        raise LaglessError(f"--duration must be > 0, got {duration}")
    return [Stage(duration, rate, rate)]


def parse_stages(text: str, *, start_rate: float = 0.0) -> list[Stage]:
    """``"10s:100,30s:100,10s:0"`` -> stages ramping from ``start_rate``."""
    stages: list[Stage] = []
    previous = start_rate
    for part in (p for p in text.split(",") if p.strip()):
        duration_text, sep, rate_text = part.partition(":")
        if not sep:
            raise LaglessError(f"bad stage {part.strip()!r}: use DURATION:RATE, e.g. 30s:200")
        try:
            rate = float(rate_text)
        except ValueError:
            raise LaglessError(
                f"bad stage rate {rate_text.strip()!r} in {part.strip()!r}"
            ) from None
        duration = parse_duration(duration_text)
        if rate < 0 or not math.isfinite(rate):
            raise LaglessError(f"a stage rate must be >= 0, got {rate_text.strip()!r}")
        if duration <= 0:
            raise LaglessError(f"a stage needs a duration > 0: {part.strip()!r}")
        stages.append(Stage(duration, previous, rate))
        previous = rate
    if not stages:
        raise LaglessError("--stages is empty")
    if all(s.start_rate == 0 and s.end_rate == 0 for s in stages):
        raise LaglessError("every stage has rate 0: nothing would be sent")
    return stages


def total_duration(stages: Sequence[Stage]) -> float:
    return sum(s.duration for s in stages)


def arrivals(stages: Sequence[Stage]) -> Iterator[float]:
    """Offsets (seconds from the start) at which requests are due, ascending.

    Within a stage the cumulative count is ``N(t) = r0*t + (r1-r0)*t**2/(2*D)``; the k-th
    arrival is where ``N(t) = k``. The root is taken as ``2k / (r0 + sqrt(r0**2 + 4ak))``
    (``a = (r1-r0)/(2D)``), which is exact for a constant rate (``a = 0``), for a ramp from 0
    (``r0 = 0``), and free of the cancellation of the textbook formula. Fractional arrivals
    carry over between stages, so a ramp's boundary neither drops nor doubles a request.
    """
    offset = 0.0
    before = 0.0  # expected arrivals of the stages already done (the area so far)
    emitted = 0  # arrivals yielded so far
    for stage in stages:
        a = (stage.end_rate - stage.start_rate) / (2.0 * stage.duration)
        b = stage.start_rate
        while True:
            k = emitted - before  # this stage's count at the next arrival
            disc = b * b + 4.0 * a * k
            if disc < 0:
                break  # a ramp down that ends before reaching k
            denom = b + math.sqrt(disc)
            if k <= 0.0:
                t = 0.0
            elif denom <= 0:
                break
            else:
                t = 2.0 * k / denom
            if t >= stage.duration:
                break
            yield offset + t
            emitted += 1
        before += stage.requests
        offset += stage.duration
