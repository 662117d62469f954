"""lagless's pytest plugin (registered through the ``pytest11`` entry point).

Two ways to use it, both inert until asked for:

- the ``lagless_traces`` fixture: a :class:`lagless.testing.TraceCapture` of the requests a
  test makes through any framework's test client, with assertions
  (``assert_max_queries``, ``assert_no_n_plus_one``, ``assert_no_findings``);
- ``pytest --lagless[=SEVERITY]`` (default ``medium``): every test whose requests produced a
  finding at or above SEVERITY fails, and the failure lists the findings with their fixes.
  ``--lagless-disable CODE`` (repeatable, or the ``lagless_disable`` ini option) switches a
  detector off for the run.

pytest imports this module in every test run of every project that has lagless installed, so
it imports nothing from lagless at module level: the work starts only when the fixture is
requested or the option is given.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from lagless.testing import TraceCapture

# Spelled out, not imported: pytest loads this module in every run of every project that has
# lagless installed, so it imports nothing from lagless (a test checks it matches the detectors).
_SEVERITIES = ("critical", "high", "medium", "low", "info")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lagless", "latency checks (lagless)")
    # An optional value, as pytest-cov's --cov: "pytest --lagless tests/" would read the path
    # as the severity, so the value is written with "=" or the flag goes after the paths.
    group.addoption(
        "--lagless",
        nargs="?",
        const="medium",
        default=None,
        choices=_SEVERITIES,
        metavar="SEVERITY",
        help="fail tests whose requests produce a lagless finding at or above SEVERITY "
        "(critical, high, medium, low, info; default medium). Write --lagless=high, or put a "
        "bare --lagless after the test paths. The app must be instrumented.",
    )
    group.addoption(
        "--lagless-disable",
        action="append",
        default=[],
        metavar="CODE",
        help="switch a lagless detector off for --lagless (repeatable)",
    )
    parser.addini(
        "lagless_disable", "lagless detector codes --lagless ignores", type="args", default=[]
    )


def _threshold(config: pytest.Config) -> str | None:
    value = config.getoption("lagless", None)
    return str(value) if value is not None else None


def _disabled(config: pytest.Config) -> frozenset[str]:
    codes = list(config.getoption("lagless_disable") or [])
    codes.extend(config.getini("lagless_disable") or [])
    return frozenset(codes)


@pytest.fixture
def lagless_traces(request: pytest.FixtureRequest) -> Iterator[TraceCapture]:
    """The traces of the requests this test makes (see :mod:`lagless.testing`)."""
    from lagless.detectors import DetectorSettings
    from lagless.testing import TraceCapture

    disabled = _disabled(request.config)
    settings = DetectorSettings(disabled=disabled) if disabled else None
    capture = TraceCapture(settings=settings).start()
    try:
        yield capture
    finally:
        capture.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    threshold = _threshold(item.config)
    if threshold is None:
        return (yield)
    from lagless.detectors import DetectorSettings
    from lagless.testing import TraceCapture, format_findings

    disabled = _disabled(item.config)
    capture = TraceCapture(settings=DetectorSettings(disabled=disabled) if disabled else None)
    capture.start()
    try:
        result = yield
    finally:
        capture.stop()
    # Only a test that passed is judged: a failing one already says what is wrong.
    found = capture.findings(severity=threshold)
    if found:
        pytest.fail(
            f"lagless: the requests of this test produced {len(found)} finding(s) at or above "
            f"{threshold}:\n{format_findings(found)}",
            pytrace=False,
        )
    return result
