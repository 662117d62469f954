"""Profile exactly one request with pyinstrument, on demand, behind a secret.

A request carrying ``X-Lagless-Profile: <token>`` (or ``?lagless_profile=<token>``) runs under
pyinstrument and its response is replaced by the profile: pyinstrument's HTML page, or
speedscope JSON with ``X-Lagless-Profile-Format: speedscope`` / ``?lagless_profile_format=
speedscope``. The app's own status travels in ``X-Lagless-Profiled-Status``.

The rules: with no ``profile_token`` configured the flag is ignored (the request is served
normally, nothing is profiled); with one configured, a flag carrying anything but the token is
refused with 403 and never reaches the app. Only one request is profiled at a time per process
(a second gets 429), because a profiler slows the process it runs in. For an async app
pyinstrument's ``async_mode="enabled"`` follows the request's own task through its awaits and
leaves other requests on the loop out; for a WSGI app it profiles the request's thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import parse_qs

from lagless.monitor._http import SECURITY_HEADERS, Response, same_secret, text

HEADER: Final = "x-lagless-profile"
FORMAT_HEADER: Final = "x-lagless-profile-format"
PARAM: Final = "lagless_profile"
FORMAT_PARAM: Final = "lagless_profile_format"
FORMATS: Final = ("html", "speedscope")
INTERVAL_S: Final = 0.0005

_HEADER_B: Final = HEADER.encode()
_FORMAT_HEADER_B: Final = FORMAT_HEADER.encode()
_PARAM_B: Final = PARAM.encode()


def find_flag(headers: Iterable[tuple[Any, Any]], query: str | bytes) -> tuple[str, str] | None:
    """``(given token, format)`` if the request asks to be profiled, else ``None``.

    Takes ASGI byte pairs or str pairs. The query string is parsed only when it mentions the
    parameter, so unflagged requests pay for one substring search.
    """
    given: str | None = None
    fmt = "html"
    for name, value in headers:
        key = name.lower() if isinstance(name, str) else name.lower().decode("latin-1")
        if key == HEADER:
            given = value if isinstance(value, str) else value.decode("latin-1")
        elif key == FORMAT_HEADER:
            fmt = (value if isinstance(value, str) else value.decode("latin-1")).strip().lower()
    raw = query if isinstance(query, str) else query.decode("latin-1")
    if PARAM in raw:
        params = parse_qs(raw, keep_blank_values=True)
        if given is None and PARAM in params:
            given = params[PARAM][0]
        if FORMAT_PARAM in params:
            fmt = params[FORMAT_PARAM][0].strip().lower()
    if given is None:
        return None
    return given, fmt


class ProfileGate:
    """Checks the token and admits one profiled request at a time."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._busy = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.token is not None

    def refusal(self, given: str, fmt: str) -> Response | None:
        """The response refusing this profile request, or ``None`` to go ahead."""
        if self.token is None:
            raise RuntimeError("profiling is off: check `enabled` first")
        if not same_secret(given, self.token):
            return text(403, "lagless: profiling refused: wrong or missing profile token")
        if fmt not in FORMATS:
            return text(400, f"lagless: profile format must be one of {', '.join(FORMATS)}")
        return None

    def acquire(self) -> bool:
        return self._busy.acquire(blocking=False)

    def release(self) -> None:
        self._busy.release()


def busy() -> Response:
    return text(429, "lagless: another request is being profiled; try again", ("retry-after", "1"))


def new_profiler(async_mode: str) -> Any:
    try:
        from pyinstrument import Profiler
    except ImportError:
        return None
    return Profiler(interval=INTERVAL_S, async_mode=async_mode)  # type: ignore[arg-type]


def unavailable() -> Response:
    return text(501, "lagless: profiling needs pyinstrument: pip install 'lagless[profile]'")


def render(profiler: Any, fmt: str, app_status: int) -> Response:
    """The finished profile as the response body."""
    if fmt == "speedscope":
        from pyinstrument.renderers import SpeedscopeRenderer

        body = profiler.output(renderer=SpeedscopeRenderer()).encode()
        content_type = "application/json"
    else:
        body = profiler.output_html().encode()
        content_type = "text/html; charset=utf-8"
    headers = [h for h in SECURITY_HEADERS if h[0] != "x-frame-options"]
    headers.append(("x-lagless-profiled-status", str(app_status)))
    return Response(200, body, content_type, headers)
