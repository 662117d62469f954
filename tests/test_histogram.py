from __future__ import annotations

import json
import math
import random

import pytest

from lagless._histogram import ExpHistogram


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


@pytest.mark.parametrize("dist", ["lognormal", "uniform", "bimodal"])
def test_quantiles_within_stated_relative_error(dist: str) -> None:
    rng = random.Random(42)
    if dist == "lognormal":
        values = [rng.lognormvariate(1.0, 1.2) for _ in range(20_000)]
    elif dist == "uniform":
        values = [rng.uniform(0.05, 5_000.0) for _ in range(20_000)]
    else:
        values = [
            rng.gauss(2.0, 0.2) if rng.random() < 0.95 else rng.gauss(900, 50)
            for _ in range(20_000)
        ]
        values = [abs(v) + 1e-3 for v in values]
    h = ExpHistogram()
    h.record_many(values)
    bound = h.relative_error
    assert bound < 0.011  # ~1.09% at scale 5
    for q in (0.0, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        exact = _exact(values, q)
        got = h.quantile(q)
        assert abs(got - exact) / exact <= bound + 1e-9, (q, got, exact)


def test_merge_equals_recording_everything() -> None:
    rng = random.Random(7)
    a_vals = [rng.expovariate(0.1) for _ in range(5000)]
    b_vals = [rng.expovariate(0.01) for _ in range(5000)]
    a, b, both = ExpHistogram(), ExpHistogram(), ExpHistogram()
    a.record_many(a_vals)
    b.record_many(b_vals)
    both.record_many(a_vals + b_vals)
    a.merge(b)
    assert a.counts == both.counts
    assert a.count == both.count == 10_000
    assert a.quantile(0.99) == both.quantile(0.99)


def test_merge_across_scales_downscales_exactly() -> None:
    fine, coarse = ExpHistogram(6), ExpHistogram(4)
    values = [0.5, 1.0, 3.3, 10.0, 250.0]
    fine.record_many(values)
    coarse.record_many(values)
    merged = ExpHistogram(4).merge(fine)
    assert merged.counts == coarse.counts


def test_zero_and_empty_and_serialisation() -> None:
    h = ExpHistogram()
    assert math.isnan(h.quantile(0.5))
    h.record(0.0)
    h.record(4.0)
    assert h.zero_count == 1
    assert h.quantile(0.5) == 0.0
    back = ExpHistogram.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.counts == h.counts
    assert back.quantile(1.0) == 4.0
    with pytest.raises(ValueError, match="quantile"):
        h.quantile(1.5)


def test_count_le_is_exact_at_boundaries() -> None:
    h = ExpHistogram(0)  # base 2: buckets (1,2], (2,4], (4,8]
    h.record_many([1.5, 2.0, 3.0, 4.0, 7.0])
    assert h.count_le(2.0) == 2
    assert h.count_le(4.0) == 4
    assert h.count_le(8.0) == 5
    assert h.count_le(3.0) == 2  # never over-counts inside a bucket
