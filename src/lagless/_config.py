"""Configuration in one place: keyword arguments, ``LAGLESS_*`` environment variables and
``[tool.lagless]`` in pyproject.toml, with the same names everywhere.

Precedence, highest first: keyword arguments, environment, pyproject.toml, defaults. Every value
is validated at start-up and a bad one raises :class:`~lagless.errors.ConfigError` naming the
setting and its source, because a typo found at the first slow request in production is found
too late.

Settings are declared in :data:`SETTINGS`; a part of lagless that needs a setting adds it there
(one line with its type, default and a sentence on what it does), and it is then available from
all three sources and documented by ``lagless config``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from lagless.errors import ConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError("expected a boolean (true/false, 1/0, yes/no, on/off)")


def _parse_int(minimum: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError("expected an integer")
        try:
            number = int(value.strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ValueError("expected an integer") from None
        if isinstance(value, float) and value != number:
            raise ValueError("expected an integer")
        if number < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        return number

    return parse


def _parse_float(minimum: float) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("expected a number")
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ValueError("expected a number") from None
        if number != number or number < minimum:  # NaN or too small
            raise ValueError(f"expected a number >= {minimum}")
        return number

    return parse


def _parse_optional_str(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("expected a string")
    return value or None


def _parse_str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ValueError("expected a list of strings (comma-separated in the environment)")


def _parse_integrations(value: Any) -> tuple[str, ...] | None:
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    return _parse_str_list(value)


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[Any], Any]
    default: Any
    doc: str


#: Every setting lagless reads. Add new ones here; nowhere else.
SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting(
            "enabled",
            _parse_bool,
            True,
            "Record traces at all. Off: the middleware only passes requests through.",
        ),
        Setting(
            "server_timing",
            _parse_bool,
            True,
            "Add a Server-Timing header (db, cache, http, app, total) to every response.",
        ),
        Setting(
            "record_params",
            _parse_bool,
            False,
            "Keep SQL parameters and literal values in "
            "recorded statements. Off by default: they may hold personal data.",
        ),
        Setting(
            "slow_request_ms",
            _parse_float(0.0),
            1000.0,
            "Log one warning line for each request slower than this (0 turns the log off).",
        ),
        Setting("ring_size", _parse_int(0), 256, "How many recent traces to keep in memory."),
        Setting(
            "max_spans",
            _parse_int(1),
            2000,
            "Spans kept per trace; past this they are "
            "counted, not stored, so one runaway request cannot exhaust memory.",
        ),
        Setting(
            "middleware_timing",
            _parse_bool,
            True,
            "Record the time each middleware layer spends itself as middleware spans.",
        ),
        Setting(
            "integrations",
            _parse_integrations,
            None,
            "Which driver and client "
            "integrations to install: 'auto' (every installed library) or a list of names.",
        ),
        Setting("disabled_integrations", _parse_str_list, (), "Integrations never to install."),
        Setting(
            "body_digest",
            _parse_bool,
            False,
            "Hash each response body into the trace so "
            "detectors can tell identical responses (lagless doctor turns this on).",
        ),
        Setting(
            "loop_lag_probe",
            _parse_bool,
            False,
            "Measure event-loop lag during each async request (a 5 ms ticker task; lagless "
            "doctor turns it on) for the blocking-call detector.",
        ),
        Setting(
            "trace_file",
            _parse_optional_str,
            None,
            "Append every finished trace to this "
            "file as a JSON line (the format `lagless analyze` reads).",
        ),
        Setting(
            "cache_dir",
            _parse_optional_str,
            None,
            "Where lagless keeps files it builds once (the example's seeded database); "
            "default: $XDG_CACHE_HOME/lagless or ~/.cache/lagless.",
        ),
        # Monitoring (lagless.monitor, docs/monitoring.md).
        Setting(
            "metrics",
            _parse_bool,
            False,
            "Keep per-route latency histograms and serve them at metrics_path for Prometheus.",
        ),
        Setting("metrics_path", _parse_optional_str, "/metrics", "Where /metrics is served."),
        Setting(
            "metrics_dir",
            _parse_optional_str,
            None,
            "A directory shared by worker processes (default: $PROMETHEUS_MULTIPROC_DIR): each "
            "writes its histograms there and /metrics merges them all.",
        ),
        Setting(
            "metrics_bucket_scale",
            _parse_int(0),
            2,
            "Classic Prometheus buckets: 2**scale per doubling, 1 ms to 32 s (2 = 19% steps).",
        ),
        Setting(
            "max_routes",
            _parse_int(1),
            100,
            "Distinct (method, route) pairs tracked; later ones fold into '<other>'.",
        ),
        Setting(
            "dashboard",
            _parse_bool,
            False,
            "Serve the live dashboard at dashboard_path (needs dashboard_token, except on "
            "localhost).",
        ),
        Setting("dashboard_path", _parse_optional_str, "/_lagless/", "Where the dashboard lives."),
        Setting(
            "dashboard_token",
            _parse_optional_str,
            None,
            "Secret (16+ characters) that opens the dashboard: ?token=, a Bearer header or "
            "the cookie the first visit sets.",
        ),
        Setting(
            "profile_token",
            _parse_optional_str,
            None,
            "Secret (16+ characters) that lets a request carrying X-Lagless-Profile: <token> "
            "(or ?lagless_profile=<token>) come back as a pyinstrument profile. Unset: off.",
        ),
        Setting(
            "slow_sample_ms",
            _parse_float(0.0),
            500.0,
            "Keep full traces of requests slower than this, or than their route's p99 "
            "(0: the p99 rule only).",
        ),
        Setting("slow_samples", _parse_int(1), 100, "How many slow-request traces to keep."),
        Setting(
            "slow_sample_rate",
            _parse_float(0.0),
            5.0,
            "At most this many slow traces kept (and analysed) per second, so cost stays flat.",
        ),
        Setting(
            "beacon_path",
            _parse_optional_str,
            "/_lagless/beacon",
            "Where the browser snippet posts timings (its script: beacon_path + '.js').",
        ),
        Setting(
            "browser_timing",
            _parse_bool,
            False,
            "Accept browser Resource Timing beacons at beacon_path and serve the snippet.",
        ),
        Setting(
            "otel",
            _parse_bool,
            False,
            "Export every trace as OpenTelemetry spans through the configured tracer provider.",
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Config:
    """The validated settings in force. Build one with :func:`load_config`."""

    values: Mapping[str, Any]
    sources: Mapping[str, str]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None

    def replace(self, **changes: Any) -> Config:
        values = dict(self.values)
        sources = dict(self.sources)
        for key, raw in changes.items():
            values[key] = _validate(key, raw, "keyword argument")
            sources[key] = "keyword argument"
        return Config(values, sources)


def _validate(name: str, raw: Any, source: str) -> Any:
    setting = SETTINGS.get(name)
    if setting is None:
        hint = difflib.get_close_matches(name, SETTINGS, n=1)
        extra = f"; did you mean {hint[0]!r}?" if hint else "; `lagless config` lists them"
        raise ConfigError(f"unknown lagless setting {name!r} (from {source}){extra}")
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"lagless setting {name!r} (from {source}): {exc}, got {raw!r}") from None


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest pyproject.toml from ``start`` (default: the working directory) upwards."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _pyproject_values(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read lagless settings from {path}: {exc}") from None
    section = data.get("tool", {}).get("lagless", {})
    if not isinstance(section, dict):
        raise ConfigError(f"[tool.lagless] in {path} must be a table")
    return {k.replace("-", "_"): v for k, v in section.items()}


def load_config(
    *,
    env: Mapping[str, str] | None = None,
    pyproject: Path | bool | None = True,
    **kwargs: Any,
) -> Config:
    """Merge defaults, pyproject.toml, ``LAGLESS_*`` variables and ``kwargs``, validating each.

    ``pyproject=True`` looks for the nearest pyproject.toml; a path reads that file; ``False``
    reads none. ``env`` defaults to ``os.environ``.

    An unknown name is an error, not a warning, in all three sources, ``LAGLESS_*`` variables
    included: a misspelt ``LAGLESS_RECORD_PARAM=0`` or ``LAGLESS_ENABLE=0`` that only warned
    would leave the setting at its default in production, unnoticed. The ``LAGLESS_*``
    variables lagless's own tests and CI read are listed in ``_NOT_SETTINGS`` and skipped.
    """
    values = {name: s.default for name, s in SETTINGS.items()}
    sources = dict.fromkeys(SETTINGS, "default")
    path: Path | None
    if pyproject is True:
        path = find_pyproject()
    elif pyproject is False or pyproject is None:
        path = None
    else:
        path = Path(pyproject)
    for key, raw in _pyproject_values(path).items():
        values[key] = _validate(key, raw, f"[tool.lagless] in {path}")
        sources[key] = str(path)
    environ = os.environ if env is None else env
    for var, raw in environ.items():
        if not var.startswith("LAGLESS_"):
            continue
        key = var[len("LAGLESS_") :].lower()
        if key in _NOT_SETTINGS:
            continue
        values[key] = _validate(key, raw, f"environment variable {var}")
        sources[key] = f"environment variable {var}"
    for key, raw in kwargs.items():
        values[key] = _validate(key, raw, "keyword argument")
        sources[key] = "keyword argument"
    return Config(values, sources)


#: ``LAGLESS_*`` variables that are not settings (test and CI switches: tests/_services.py,
#: bench/, .ci/run). Anything else under ``LAGLESS_`` must be a setting.
_NOT_SETTINGS = frozenset({"require_services", "pg_dsn", "redis_url", "mysql_dsn"})
