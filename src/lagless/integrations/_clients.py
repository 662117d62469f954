"""What the client integrations (redis, httpx, requests) share: folding the variable parts out
of cache keys and URLs, the HTTP span name, and exact patching of library classes.

Keys and URL paths routinely carry ids, session tokens, e-mail addresses and signed values.
lagless records their *shape* (``session:{}``, ``GET https://api.example.com/users/{}``) so
spans can be grouped and shown without keeping secrets; a process-local hash of the raw value
(``key_hash``, ``url_hash``) still lets a detector tell "the same key read ten times" from "ten
different keys".
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

from lagless._runtime import get_runtime
from lagless._spans import params_fingerprint, record
from lagless._trace import Trace

logger = logging.getLogger("lagless")

# Set while an outgoing HTTP call is being recorded, so a client that goes through another
# instrumented client underneath (a requests adapter built on httpx, a requests redirect hop
# that re-enters ``Session.send``) is recorded once, by the outermost call.
_in_http: ContextVar[bool] = ContextVar("lagless_in_http", default=False)

# One pass finds every candidate: UUIDs, e-mail addresses, long word-ish runs (decided by
# ``_fold_match``) and digit runs. A run of 16+ characters is where opaque tokens live.
_CANDIDATES: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[^\s:/@|,;#=]+@[^\s:/@|,;#=]+"
    r"|[A-Za-z0-9_\-+]{16,}"
    r"|\d+"
)
_DIGITS: Final = re.compile(r"\d+")
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_TOKEN_MIN: Final = 16
# Keys longer than this are folded on their first part only: the e-mail alternative scans
# ahead from every position, so a pathological multi-kilobyte key must not cost milliseconds.
_MAX_FOLD: Final = 256


def _fold_match(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) < _TOKEN_MIN or "@" in text:
        # A short digit run, a UUID (36 chars, but caught by the first alternative) or an
        # e-mail address: all variable, all folded.
        return "{}"
    if text.count("-") == 4 and len(text) == 36:
        return "{}"
    if _HEX.issuperset(text):
        return "{}"
    digits = sum(c.isdigit() for c in text)
    if digits and (digits >= 3 or (not text.islower() and not text.isupper())):
        # Letters mixed with several digits, or with digits and both cases: a token
        # (base64/base62, a JWT part, an API key). Folded whole, or half of it would leak.
        return "{}"
    # A long readable name (``user_preferences_v2``): keep it, fold its numbers.
    return _DIGITS.sub("{}", text)


def fold(text: str) -> str:
    """``text`` with its variable parts (numbers, UUIDs, long hex, tokens, e-mail addresses)
    replaced by ``{}``.

    >>> fold("user:42:session:3f1c9a2be4d84b7f9a1e0c3d2b5a6f70")
    'user:{}:session:{}'

    Cached because applications read the same keys over and over; the cache is bounded (in
    entries, and by leaving texts over ``_MAX_FOLD`` characters out of it, so huge keys cannot
    pin memory) and lives only in this process's memory, where the raw keys already are.
    """
    if len(text) > _MAX_FOLD:
        return _CANDIDATES.sub(_fold_match, text[:_MAX_FOLD]) + "..."
    return _cached_fold(text)


@functools.lru_cache(maxsize=4096)
def _cached_fold(text: str) -> str:
    return _CANDIDATES.sub(_fold_match, text)


def as_text(value: Any) -> str:
    """A key or argument as text: bytes decoded (lossless for ASCII keys), others ``str``."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def record_params() -> bool:
    """Whether the user opted in to keeping raw values (``record_params``)."""
    return bool(get_runtime().config.values.get("record_params", False))


def netloc(host: str, port: int | None) -> str:
    """``host[:port]``, with an IPv6 address in brackets (RFC 3986 §3.2.2) so the port reads
    unambiguously."""
    if ":" in host:
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


def http_name(method: str, scheme: str, netloc: str, path: str, *, raw: bool) -> str:
    """``"GET https://api.example.com/users/{}"``: the query string is dropped (it may carry
    tokens) and the path folded, unless ``raw`` (``record_params``) keeps it as sent."""
    return f"{method.upper()} {scheme}://{netloc}{path if raw else fold(path)}"


def record_http(
    trace: Trace,
    *,
    driver: str,
    method: str,
    scheme: str,
    host: str,
    path: str,
    url: str,
    start: int,
    end: int,
    status: int | None,
    size: int | None,
    error: BaseException | None,
    on_loop: bool,
) -> None:
    """The ``http`` span every HTTP client integration records: name from :func:`http_name`,
    the URL only as a fingerprint (``url_hash``) so repeats can be told apart without keeping
    query strings."""
    attrs: dict[str, Any] = {
        "method": method.upper(),
        "host": host,
        "driver": driver,
        "url_hash": params_fingerprint(url),
    }
    if status is not None:
        attrs["status"] = status
    if size is not None:
        attrs["bytes"] = size
    if on_loop:
        attrs["on_loop"] = True
    name = http_name(method, scheme, host, path, raw=record_params())
    record(trace, "http", name, start, end, error=error, **attrs)


def content_length(headers: Any) -> int | None:
    """A response's declared ``Content-Length``, when it is a plain number."""
    length = headers.get("content-length")
    return int(length) if length is not None and length.isdigit() else None


_MISSING: Final = object()


class Patches:
    """Methods replaced on library classes, restorable exactly.

    ``uninstall`` must leave a class as it found it: a method the class only inherited is
    deleted again rather than pinned as the class's own, and a method someone else wrapped
    after us is left alone (restoring under them would silently drop their wrapper).
    """

    def __init__(self) -> None:
        self._saved: list[tuple[type[Any], str, object, object]] = []

    def wrap(self, owner: type[Any], name: str, make: Callable[[Any], Any]) -> None:
        """Replace ``owner.name`` with ``make(original)``."""
        own = owner.__dict__.get(name, _MISSING)
        original = getattr(owner, name)
        wrapper = make(original)
        setattr(owner, name, wrapper)
        self._saved.append((owner, name, own, wrapper))

    def restore(self) -> None:
        """Undo every :meth:`wrap`, newest first."""
        while self._saved:
            owner, name, own, wrapper = self._saved.pop()
            if owner.__dict__.get(name) is not wrapper:
                logger.warning(
                    "lagless: %s.%s was re-wrapped by someone else; leaving it in place",
                    owner.__qualname__,
                    name,
                )
                continue
            if own is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, own)
