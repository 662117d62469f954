"""Conditional requests, RFC 9110 §13, as plain functions of plain values (sans-IO).

The ASGI, WSGI, Django and Flask adapters only pull headers out of their request objects and
put the answer back; every rule lives here and is tested on strings.

- :func:`strong_etag` hashes a body into a quoted strong ETag that is identical across
  processes and restarts (BLAKE2b, no per-process salt).
- :func:`evaluate` applies the preconditions in the order of §13.2.2 and says whether to answer
  304, 412, or go on.
- :func:`not_modified_headers` keeps what §15.4.5 says a 304 must carry.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import formatdate, parsedate_to_datetime
from typing import Literal

#: Methods whose response can be a 304 (RFC 9110 §13.1.2, §13.1.3).
GET_HEAD = frozenset({"GET", "HEAD"})
# RFC 9110 §13.2.1: preconditions are ignored for methods that neither select nor modify a
# representation.
_NO_PRECONDITIONS = frozenset({"CONNECT", "OPTIONS", "TRACE"})

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE, etagc = %x21 / %x23-7E / obs-text.
_ETAG = re.compile(r'\s*((?:W/)?"[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|$)')
_ETAGC = re.compile(r"[\x21\x23-\x7e\x80-\xff]*")


def strong_etag(body: bytes) -> str:
    """A quoted strong ETag from the bytes of a representation, stable across processes."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def quote_etag(value: str) -> str:
    """``value`` as an entity-tag: kept when already one, quoted when a bare opaque string.
    Handlers often return a row version (``"17"`` or ``17``); the header needs quotes."""
    value = value.strip()
    if value.startswith(('"', 'W/"')) and value.endswith('"') and len(value) >= 2:
        return value
    if not _ETAGC.fullmatch(value):
        raise ValueError(f"{value!r} cannot be an ETag (RFC 9110 §8.8.3 etagc characters only)")
    return f'"{value}"'


def parse_etags(value: str) -> list[str] | Literal["*"]:
    """The entity-tags of an If-Match / If-None-Match value; ``"*"``; or ``[]`` when the value is
    malformed (a malformed list matches nothing, so the condition is treated as absent or false
    rather than guessed)."""
    value = value.strip()
    if value == "*":
        return "*"
    tags: list[str] = []
    pos = 0
    while pos < len(value):
        match = _ETAG.match(value, pos)
        if match is None:
            return []
        tags.append(match.group(1))
        pos = match.end()
    return tags


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def weak_match(a: str, b: str) -> bool:
    """RFC 9110 §8.8.3.2 weak comparison: the opaque tags are equal, weakness ignored."""
    return _opaque(a) == _opaque(b)


def strong_match(a: str, b: str) -> bool:
    """RFC 9110 §8.8.3.2 strong comparison: both strong and equal."""
    return a == b and not a.startswith("W/")


def parse_http_date(value: str) -> float | None:
    """An HTTP-date (IMF-fixdate, RFC 850 or asctime forms, RFC 9110 §5.6.7) as Unix seconds;
    None when it is not exactly one valid date (lists of dates are invalid, §13.1.3/§13.1.4)."""
    value = value.strip()
    if not value or value.count(",") > 1:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime carries no zone; HTTP dates are always GMT
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def http_date(timestamp: float | None = None) -> str:
    """IMF-fixdate for ``timestamp`` (default: now), the only form a sender may generate."""
    return formatdate(time.time() if timestamp is None else timestamp, usegmt=True)


def to_timestamp(value: datetime | float | int | None) -> float | None:
    """A Last-Modified value as whole Unix seconds (HTTP dates have one-second resolution, so
    comparing sub-second times would never let If-Modified-Since match)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return float(int(value.timestamp()))
    return float(int(value))


Outcome = Literal[304, 412] | None


def evaluate(
    method: str,
    headers: Mapping[str, str],
    *,
    etag: str | None,
    last_modified: float | None,
    exists: bool = True,
) -> Outcome:
    """Evaluate the request's preconditions against the selected representation's validators.

    ``headers`` maps lower-case names to values. ``exists`` says whether the target has a
    current representation (for ``*``). Returns 304 (GET/HEAD, not modified), 412
    (precondition failed) or None (process the request normally). Callers evaluate only when the
    response would otherwise be 2xx (RFC 9110 §13.2.1).
    """
    if method in _NO_PRECONDITIONS:
        return None
    # RFC 9110 §13.2.2 step 1: If-Match, strong comparison (§13.1.1).
    if_match = headers.get("if-match")
    if if_match is not None:
        if not _if_match(if_match, etag, exists):
            return 412
    else:
        # Step 2: If-Unmodified-Since only without If-Match (§13.1.4); ignored when the value is
        # not one valid date or the resource has no modification date.
        ius = headers.get("if-unmodified-since")
        if ius is not None and last_modified is not None:
            date = parse_http_date(ius)
            if date is not None and last_modified > date:
                return 412
    # Step 3: If-None-Match, weak comparison (§13.1.2).
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        if _if_none_match_matches(if_none_match, etag, exists):
            return 304 if method in GET_HEAD else 412
        return None
    # Step 4: If-Modified-Since only for GET/HEAD and only without If-None-Match (§13.1.3).
    if method in GET_HEAD:
        ims = headers.get("if-modified-since")
        if ims is not None and last_modified is not None:
            date = parse_http_date(ims)
            if date is not None and last_modified <= date:
                return 304
    # Step 5 (If-Range) applies only to Range requests, which these adapters do not serve, and
    # §13.1.5 says a server that does not support Range ignores If-Range.
    return None


def _if_match(value: str, etag: str | None, exists: bool) -> bool:
    tags = parse_etags(value)
    if tags == "*":
        return exists
    return etag is not None and any(strong_match(t, etag) for t in tags)


def _if_none_match_matches(value: str, etag: str | None, exists: bool) -> bool:
    tags = parse_etags(value)
    if tags == "*":
        return exists
    return etag is not None and any(weak_match(t, etag) for t in tags)


# RFC 9110 §15.4.5: a 304 carries the fields a 200 would have carried among these (plus
# Last-Modified, useful to caches, and Set-Cookie so a session refresh is not lost); no body and
# no other representation metadata (Content-Type, Content-Length...).
_KEEP_ON_304 = frozenset(
    {
        "cache-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "vary",
        "last-modified",
        "age",
        "cache-status",
        "server-timing",
        "set-cookie",
    }
)


def not_modified_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The fields of a 304 from those the 200 would have carried. Date is kept when present;
    adding one is the server's job (uvicorn, gunicorn and wsgiref all do), and a second Date
    line would be invalid, so adapters add it only when told to (``add_date=True``)."""
    return [(n, v) for n, v in headers if n.lower() in _KEEP_ON_304]


def ensure_date(headers: list[tuple[str, str]], now: float) -> list[tuple[str, str]]:
    """``headers`` with a Date (RFC 9110 §6.6.1) when they have none."""
    if any(n.lower() == "date" for n, _ in headers):
        return headers
    return [*headers, ("date", http_date(now))]
