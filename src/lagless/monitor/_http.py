"""The monitor's HTTP endpoints, sans-IO: a small request and response type and the access rules.

Every endpoint (``/metrics``, the dashboard, the beacon collector, the snippet) is a function
from :class:`Request` to :class:`Response`; the ASGI, WSGI and Django adapters only move bytes.
That keeps the rules (who may see the dashboard, what a beacon may contain) testable on plain
values, the way werkzeug's ``sansio`` package does it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qs

#: Tokens shorter than this are refused at start-up: a dashboard behind a guessable secret is a
#: dashboard without one.
MIN_TOKEN_LENGTH: Final = 16
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
COOKIE: Final = "lagless_dashboard"
#: Headers a reverse proxy adds (RFC 7239 ``Forwarded``, the de-facto ``X-Forwarded-*`` and
#: nginx's usual ``X-Real-IP``, RFC 9110 §7.6.3 ``Via``): any of them means the loopback peer
#: is a proxy and the real client may be anywhere.
_PROXY_HEADERS: Final = (
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "via",
)

# Responses that must never be cached by a shared cache or rendered in a frame.
SECURITY_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)


@dataclasses.dataclass
class Request:
    """What an endpoint needs of a request. ``headers`` has lower-case names."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    client: str | None = None
    body: bytes = b""
    scheme: str = "http"

    def param(self, name: str) -> str | None:
        if name not in self.query:
            return None
        values = parse_qs(self.query, keep_blank_values=True).get(name)
        return values[0] if values else None

    def cookie(self, name: str) -> str | None:
        raw = self.headers.get("cookie")
        if not raw:
            return None
        for part in raw.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


@dataclasses.dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def all_headers(self) -> list[tuple[str, str]]:
        """The headers to send, with content type and length."""
        return [
            ("content-type", self.content_type),
            ("content-length", str(len(self.body))),
            *self.headers,
        ]


def text(status: int, message: str, *extra: tuple[str, str]) -> Response:
    return Response(status, message.encode() + b"\n", headers=[*SECURITY_HEADERS, *extra])


def check_token(name: str, token: str | None) -> None:
    """Refuse a configured secret too short to protect anything (raises ConfigError)."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        from lagless.errors import ConfigError

        raise ConfigError(
            f"lagless setting {name!r} must be at least {MIN_TOKEN_LENGTH} characters "
            "(python -c 'import secrets; print(secrets.token_urlsafe(24))' makes one)"
        )


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing says nothing about the secret."""
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def cookie_value(token: str) -> str:
    """What the dashboard cookie holds: a digest of the token, never the token itself, so a
    leaked cookie (a browser profile, a proxy log) does not reveal the secret used elsewhere."""
    return hmac.new(token.encode(), b"lagless-dashboard-cookie", hashlib.sha256).hexdigest()


def bearer(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


def is_local(request: Request) -> bool:
    """A request from this machine to a loopback name, with no proxy in between.

    All three matter: the peer address (a remote client is not local), the ``Host`` header (a
    DNS-rebinding page makes a browser send its own hostname to 127.0.0.1), and forwarding
    headers (behind a reverse proxy on the same machine every client looks local).
    """
    client = request.client
    if not client:
        return False
    try:
        if not ipaddress.ip_address(client).is_loopback:
            return False
    except ValueError:
        return False
    headers = request.headers
    if any(name in headers for name in _PROXY_HEADERS):
        return False
    host = request.headers.get("host", "")
    if host.startswith("["):
        name = host[: host.find("]") + 1]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.lower() in _LOCAL_HOSTS
