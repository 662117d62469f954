"""Is the new run slower than the baseline? A noise-aware verdict, per route and quantile.

Latency percentiles move from run to run on an unchanged app (other processes, the kernel's
scheduler, GC), so a raw "p99 went from 41 to 44 ms" is not a regression. A quantile is
judged *regressed* only when all of these hold:

- both runs have enough samples for it: at least ``min_tail`` observations beyond it in each
  (10 by default, so p50 needs 20 requests, p99 needs 1,000, p99.9 needs 10,000); with fewer,
  the quantile is essentially one or two samples and is reported as "too few samples";
- it rose by more than ``rel`` (10%) *and* by more than ``abs_ms`` (1 ms): relative alone
  flags 0.2 -> 0.3 ms on a fast route; absolute alone flags 500 -> 502 ms on a slow one;
- the two runs' distribution-free 95% confidence intervals for it do not overlap. The interval
  comes from order statistics (the ranks ``nq ± 1.96·sqrt(nq(1-q))``), read off the histogram,
  so it needs no assumption about the latency distribution.

The maximum is never judged: it is one sample. Improvements use the same rules mirrored.

For two targets on the same machine, :func:`ab_test` adds a Mann-Whitney U test. It runs on
the histograms themselves: each bucket is a group of tied values (the ±1.09% quantisation only
creates ties, which the tie-corrected variance accounts for), so the test is exact on what was
recorded and costs O(buckets) instead of O(n log n) over raw samples; scipy is not needed (nor
installed by default). Latencies within a run are autocorrelated (a queue builds for a while),
which makes any test that assumes independent samples over-confident; that is why the A/B
runner interleaves short rounds (A B B A ...), so both targets see the same drift, and why the
verdict also requires the practical thresholds above rather than a p-value alone.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from lagless._histogram import ExpHistogram
from lagless.loadgen._results import BenchResult, RouteStats

JUDGED_QUANTILES: tuple[float, ...] = (0.5, 0.9, 0.99, 0.999)
_Z95 = 1.959963984540054


@dataclasses.dataclass(frozen=True)
class Thresholds:
    rel: float = 0.10
    abs_ms: float = 1.0
    min_tail: int = 10
    alpha: float = 0.01
    error_rate_abs: float = 0.005


def min_samples(q: float, min_tail: int = 10) -> int:
    """Requests needed to judge quantile ``q``: ``min_tail`` of them beyond it."""
    if not 0.0 <= q < 1.0:
        raise ValueError(f"quantile must be in [0, 1), got {q}")
    # The tolerance absorbs float error in q itself: a budget's "p99.9" parses as
    # 99.9 / 100 = 0.9990000000000001, whose tail 10 / (1 - q) is 10000.0000001, not 10000.
    return math.ceil(min_tail / (1.0 - q) - 1e-6)


def value_at_rank(h: ExpHistogram, rank: float) -> float:
    """The histogram's value at 1-based ``rank`` (clamped to the data)."""
    if h.count == 0:
        return math.nan
    r = min(max(rank, 1.0), float(h.count))
    return h.quantile(r / h.count)


def quantile_ci(h: ExpHistogram, q: float, z: float = _Z95) -> tuple[float, float]:
    """A distribution-free confidence interval for quantile ``q`` (order statistics: the
    number of samples below the true quantile is Binomial(n, q))."""
    n = h.count
    spread = z * math.sqrt(n * q * (1.0 - q))
    return value_at_rank(h, math.floor(n * q - spread)), value_at_rank(
        h, math.ceil(n * q + spread) + 1
    )


@dataclasses.dataclass
class QuantileVerdict:
    q: float
    old_ms: float
    new_ms: float
    verdict: str  # "regressed" | "improved" | "unchanged" | "too few samples"
    reason: str = ""

    @property
    def change(self) -> float:
        return (self.new_ms - self.old_ms) / self.old_ms if self.old_ms > 0 else math.nan


def judge_quantile(
    old: ExpHistogram, new: ExpHistogram, q: float, t: Thresholds = Thresholds()
) -> QuantileVerdict:
    need = min_samples(q, t.min_tail)
    o = old.quantile(q) if old.count else math.nan
    n = new.quantile(q) if new.count else math.nan
    if old.count < need or new.count < need:
        return QuantileVerdict(
            q,
            o,
            n,
            "too few samples",
            f"needs {need} requests in each run, had {old.count} and {new.count}",
        )
    o_lo, o_hi = quantile_ci(old, q)
    n_lo, n_hi = quantile_ci(new, q)
    if n > o * (1 + t.rel) and n - o > t.abs_ms:
        if n_lo > o_hi:
            return QuantileVerdict(q, o, n, "regressed", f"+{(n - o) / o:.0%}, +{n - o:.2f} ms")
        return QuantileVerdict(q, o, n, "unchanged", "within noise (confidence intervals overlap)")
    if o > n * (1 + t.rel) and o - n > t.abs_ms:
        if o_lo > n_hi:
            return QuantileVerdict(q, o, n, "improved", f"{(n - o) / o:.0%}, {n - o:.2f} ms")
        return QuantileVerdict(q, o, n, "unchanged", "within noise (confidence intervals overlap)")
    return QuantileVerdict(q, o, n, "unchanged", "below the thresholds")


def _two_proportion_p(e1: int, n1: int, e2: int, n2: int) -> float:
    """Two-sided p-value that two error rates differ (pooled z-test)."""
    if n1 == 0 or n2 == 0:
        return 1.0
    p = (e1 + e2) / (n1 + n2)
    if p in (0.0, 1.0):
        return 1.0
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    z = (e2 / n2 - e1 / n1) / se
    return math.erfc(abs(z) / math.sqrt(2))


@dataclasses.dataclass
class RouteComparison:
    name: str
    old_count: int
    new_count: int
    quantiles: list[QuantileVerdict]
    old_error_rate: float
    new_error_rate: float
    error_verdict: str
    p_value: float | None = None
    prob_slower: float | None = None

    @property
    def verdict(self) -> str:
        verdicts = [v.verdict for v in self.quantiles] + [self.error_verdict]
        if "regressed" in verdicts:
            return "regressed"
        if "improved" in verdicts:
            return "improved"
        if all(v == "too few samples" for v in (q.verdict for q in self.quantiles)):
            return "too few samples"
        return "unchanged"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "verdict": self.verdict,
            "old_count": self.old_count,
            "new_count": self.new_count,
            "old_error_rate": self.old_error_rate,
            "new_error_rate": self.new_error_rate,
            "error_verdict": self.error_verdict,
            "p_value": self.p_value,
            "prob_slower": self.prob_slower,
            "quantiles": [dataclasses.asdict(q) for q in self.quantiles],
        }


def compare_routes(
    name: str, old: RouteStats, new: RouteStats, t: Thresholds = Thresholds()
) -> RouteComparison:
    qs = [judge_quantile(old.histogram, new.histogram, q, t) for q in JUDGED_QUANTILES]
    e_old, e_new = old.error_rate, new.error_rate
    p_err = _two_proportion_p(old.error_count, old.requests, new.error_count, new.requests)
    if abs(e_new - e_old) > t.error_rate_abs and p_err < t.alpha:
        error_verdict = "regressed" if e_new > e_old else "improved"
    else:
        error_verdict = "unchanged"
    return RouteComparison(
        name, old.histogram.count, new.histogram.count, qs, e_old, e_new, error_verdict
    )


@dataclasses.dataclass
class Comparison:
    """Baseline (``old``) against a new run, route by route, plus the whole run."""

    old_label: str
    new_label: str
    routes: list[RouteComparison]
    total: RouteComparison
    only_old: list[str]
    only_new: list[str]
    warnings: list[str]
    thresholds: Thresholds

    @property
    def regressions(self) -> list[RouteComparison]:
        return [r for r in self.routes if r.verdict == "regressed"]

    @property
    def verdict(self) -> str:
        if self.regressions or self.total.verdict == "regressed":
            return "regressed"
        if any(r.verdict == "improved" for r in self.routes):
            return "improved"
        return "unchanged"

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.old_label,
            "new": self.new_label,
            "verdict": self.verdict,
            "thresholds": dataclasses.asdict(self.thresholds),
            "total": self.total.to_dict(),
            "routes": [r.to_dict() for r in self.routes],
            "only_in_baseline": self.only_old,
            "only_in_new": self.only_new,
            "warnings": self.warnings,
        }


def compare(old: BenchResult, new: BenchResult, t: Thresholds = Thresholds()) -> Comparison:
    """Judge ``new`` against the baseline ``old``."""
    warnings: list[str] = []
    for label, r in (("baseline", old), ("new run", new)):
        if not r.valid:
            warnings.append(f"the {label} is invalid: " + "; ".join(r.invalid_reasons))
    if old.mode != new.mode:
        warnings.append(f"the runs differ in mode ({old.mode} vs {new.mode}): not comparable")
    if old.rate and new.rate and abs(old.rate - new.rate) > 0.01 * old.rate:
        warnings.append(f"the runs differ in arrival rate ({old.rate:g}/s vs {new.rate:g}/s)")
    routes = [
        compare_routes(name, old.routes[name], new.routes[name], t)
        for name in old.routes
        if name in new.routes
    ]
    total = compare_routes("all routes", old.total, new.total, t)
    return Comparison(
        old.label or old.target,
        new.label or new.target,
        routes,
        total,
        [n for n in old.routes if n not in new.routes],
        [n for n in new.routes if n not in old.routes],
        warnings,
        t,
    )


# -- significance --------------------------------------------------------------------------


def mann_whitney(a: ExpHistogram, b: ExpHistogram) -> tuple[float, float, float]:
    """Mann-Whitney U on two histograms' samples: ``(U, two-sided p, P(B > A))``.

    ``U`` counts pairs where the A value exceeds the B value (ties count half). The p-value
    uses the normal approximation with tie correction and a continuity correction, accurate
    for the sample sizes of a load test (n > 20 each). ``P(B > A)`` (the common-language
    effect size) is ``1 - U/(n1*n2)``: 0.5 means no shift, 0.7 means B is slower in 70% of
    random pairs.
    """
    if a.scale != b.scale:
        a, b = a.copy(), b.copy()
        coarse = min(a.scale, b.scale)
        a.downscale(a.scale - coarse)
        b.downscale(b.scale - coarse)
    n1, n2 = a.count, b.count
    if n1 == 0 or n2 == 0:
        return math.nan, math.nan, math.nan
    # Zero/negative values form the lowest tied group; then the buckets, ascending.
    keys = sorted(set(a.counts) | set(b.counts))
    groups = [(a.zero_count, b.zero_count)] + [
        (a.counts.get(k, 0), b.counts.get(k, 0)) for k in keys
    ]
    u = 0.0
    b_below = 0
    tie_term = 0.0
    for ca, cb in groups:
        u += ca * (b_below + 0.5 * cb)
        b_below += cb
        t = ca + cb
        tie_term += t**3 - t
    n = n1 + n2
    mean = n1 * n2 / 2.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))
    if var <= 0:
        return u, 1.0, 0.5
    z = (abs(u - mean) - 0.5) / math.sqrt(var)
    p = math.erfc(max(z, 0.0) / math.sqrt(2))
    return u, min(1.0, p), 1.0 - u / (n1 * n2)


@dataclasses.dataclass
class ABReport:
    """An interleaved A/B run: merged results per target, the comparison of B against A
    (A is the baseline), and per-route Mann-Whitney p-values."""

    a: BenchResult
    b: BenchResult
    rounds: int
    comparison: Comparison
    #: Per round, whether B's median was above A's (all routes together).
    b_slower_rounds: int

    @property
    def verdict(self) -> str:
        return self.comparison.verdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "b_slower_rounds": self.b_slower_rounds,
            "comparison": self.comparison.to_dict(),
            "a": self.a.to_dict(),
            "b": self.b.to_dict(),
        }


def ab_test(
    rounds_a: list[BenchResult], rounds_b: list[BenchResult], t: Thresholds = Thresholds()
) -> ABReport:
    """Judge B against A from interleaved rounds. A route's "regressed"/"improved" verdict
    additionally requires a Mann-Whitney p-value below ``alpha``."""
    from lagless.loadgen._results import merge_results

    a = merge_results(rounds_a, label=rounds_a[0].label)
    b = merge_results(rounds_b, label=rounds_b[0].label)
    comparison = compare(a, b, t)
    for rc in [*comparison.routes, comparison.total]:
        ha = a.total.histogram if rc is comparison.total else a.routes[rc.name].histogram
        hb = b.total.histogram if rc is comparison.total else b.routes[rc.name].histogram
        _u, p, prob = mann_whitney(ha, hb)
        rc.p_value, rc.prob_slower = p, prob
        if not (p < t.alpha):
            for qv in rc.quantiles:
                if qv.verdict in ("regressed", "improved"):
                    qv.verdict = "unchanged"
                    qv.reason = f"not significant (Mann-Whitney p = {p:.3g})"
    slower = sum(
        1
        for ra, rb in zip(rounds_a, rounds_b, strict=False)
        if rb.total.histogram.quantile(0.5) > ra.total.histogram.quantile(0.5)
    )
    return ABReport(a, b, min(len(rounds_a), len(rounds_b)), comparison, slower)
