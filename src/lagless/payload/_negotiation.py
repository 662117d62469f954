"""Proactive content negotiation, sans-IO: ``Accept`` and ``Accept-Encoding`` per RFC 9110 §12.

These functions take header *values* (``str`` or ``None`` when the header is absent) and return
a choice, so every rule is tested on plain strings and the ASGI, WSGI and Django adapters only
pull headers out of their request objects. They are on the per-request hot path, so parsing is
hand-written (one ``split`` per element) and results for repeated header values are memoised
in a small bounded cache: browsers and API clients send a handful of distinct values.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

#: Media types a lagless response can produce, in server preference (JSON first: on a tie,
#: the format every client reads wins).
JSON: Final = "application/json"
MSGPACK: Final = "application/msgpack"
#: The pre-registration name many clients still send (RFC 9110 §8.3.1 leaves aliases to
#: the registry; IANA registered ``application/msgpack`` in 2023).
X_MSGPACK: Final = "application/x-msgpack"


def parse_qvalue(text: str) -> float | None:
    """A ``qvalue`` (RFC 9110 §12.4.2: ``0`` to ``1`` with at most three decimals), or
    ``None`` when malformed, so one bad element does not spoil the whole header."""
    text = text.strip()
    if not text or len(text) > 5:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    if not 0.0 <= value <= 1.0 or text[0] not in "01":
        return None
    return value


def _split_element(element: str) -> tuple[str, dict[str, str], float] | None:
    """``name;p=v;q=0.5`` -> (lower-cased name, params without q, q). ``None`` if malformed."""
    parts = element.split(";")
    name = parts[0].strip().lower()
    if not name:
        return None
    params: dict[str, str] = {}
    q = 1.0
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not key:
            continue
        if key == "q":
            # RFC 9110 §12.4.2: "q" separates media-type parameters from (obsolete)
            # accept-ext parameters; anything after it is not part of the range.
            parsed = parse_qvalue(value)
            if parsed is None:
                return None
            q = parsed
            break
        params[key] = value.strip().strip('"')
    return name, params, q


@lru_cache(maxsize=256)
def _parse_accept_cached(
    header: str,
) -> tuple[tuple[str, str, tuple[tuple[str, str], ...], float], ...]:
    """``Accept`` as ``(type, subtype, params, q)`` tuples; malformed elements are dropped."""
    out = []
    for element in header.split(","):
        split = _split_element(element)
        if split is None:
            continue
        name, params, q = split
        main, sep, sub = name.partition("/")
        if not sep or not main or not sub:
            continue
        out.append((main.strip(), sub.strip(), tuple(sorted(params.items())), q))
    return tuple(out)


def _media_quality(
    ranges: Sequence[tuple[str, str, tuple[tuple[str, str], ...], float]], offered: str
) -> float:
    """The q of the most specific range matching ``offered`` (RFC 9110 §12.5.1: "more
    specific media ranges or specific media types override less specific ones")."""
    main, _, sub = offered.partition("/")
    best_rank = -1
    best_q = 0.0
    for r_main, r_sub, params, q in ranges:
        if r_main == "*" and r_sub == "*":
            rank = 0
        elif r_main == main and r_sub == "*":
            rank = 1
        elif r_main == main and r_sub == sub:
            # A range with parameters (``charset=utf-8``) is more specific; our types carry
            # none, so such a range still matches the type it names.
            rank = 3 if params else 2
        else:
            continue
        if rank > best_rank:
            best_rank, best_q = rank, q
    return best_q


@lru_cache(maxsize=256)
def _negotiate_media_type_cached(
    accept: str | None, offered: tuple[str, ...] = (JSON, MSGPACK)
) -> str | None:
    """The offered media type the client prefers, or ``None`` if it accepts none of them.

    - header absent, empty or entirely malformed: the first offered type (RFC 9110 §12.5.1:
      no ``Accept`` means any media type is acceptable);
    - otherwise the highest q wins, ties go to the earlier offered type, ``q=0`` refuses.

    ``application/x-msgpack`` in the header counts for ``application/msgpack``::

        >>> negotiate_media_type("application/msgpack, application/json;q=0.5")
        'application/msgpack'
        >>> negotiate_media_type("*/*")
        'application/json'
    """
    if accept is None:
        return offered[0]
    ranges = list(_parse_accept_cached(accept))
    if not ranges:
        return offered[0]
    ranges = [
        ("application", "msgpack", p, q) if (m, s) == ("application", "x-msgpack") else (m, s, p, q)
        for m, s, p, q in ranges
    ]
    best: str | None = None
    best_q = 0.0
    for media in offered:
        q = _media_quality(ranges, media)
        if q > best_q:
            best, best_q = media, q
    return best


#: ``x-gzip`` is equivalent to ``gzip`` (RFC 9110 §8.4.1.3).
_CODING_ALIASES: Final = {"x-gzip": "gzip"}


@lru_cache(maxsize=256)
def _parse_accept_encoding_cached(header: str) -> dict[str, float]:
    """``Accept-Encoding`` as ``{coding: q}`` (lower-case; malformed elements dropped)."""
    out: dict[str, float] = {}
    for element in header.split(","):
        split = _split_element(element)
        if split is None:
            continue
        name, _, q = split
        name = _CODING_ALIASES.get(name, name)
        # A repeated coding keeps its highest q: the client said it accepts it at least that much.
        if q > out.get(name, -1.0):
            out[name] = q
    return out


@lru_cache(maxsize=256)
def _negotiate_encoding_cached(
    accept_encoding: str | None, available: tuple[str, ...]
) -> str | None:
    """The content coding to send: one of ``available``, ``"identity"``, or ``None`` when the
    client refuses identity and accepts nothing we offer.

    Rules (RFC 9110 §12.5.3):

    - header absent: ``"identity"``. The RFC lets a server pick any coding then, but clients
      that send no ``Accept-Encoding`` (curl, health checks, old libraries) often cannot decode,
      so every mainstream server sends the body as is;
    - empty value: ``"identity"`` ("does not want any content coding");
    - a coding not listed is acceptable only through ``*``; ``identity`` is acceptable unless
      ``identity;q=0``, or ``*;q=0`` without an ``identity`` entry, refuses it;
    - the highest q wins, ties go to the earlier entry of ``available`` (server preference);
      identity wins only over codings the client rates lower than an explicit ``identity``
      (or ``*``) entry.

    What to do with ``None`` is the caller's decision: lagless's middleware sends the body
    unencoded (see docs/payload.md; RFC 9110 §15.5.7 allows ignoring the header instead of
    answering 406, and a middleware that sees the response after a POST ran must not turn its
    success into an error).
    """
    if accept_encoding is None:
        return "identity"
    prefs = _parse_accept_encoding_cached(accept_encoding)
    if not prefs:
        return "identity"
    star = prefs.get("*")
    # identity's rank: its own entry, else that of "*", else below every listed coding (it is
    # acceptable by default but the client said nothing about preferring it).
    if "identity" in prefs:
        identity_q = prefs["identity"]
        identity_ok = identity_q > 0.0
    elif star is not None:
        identity_q, identity_ok = star, star > 0.0
    else:
        identity_q, identity_ok = 0.0, True
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = prefs.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    if best is not None and best_q >= identity_q:
        return best
    return "identity" if identity_ok else None


#: Longest header value parsed. Real Accept/Accept-Encoding values are well under 1 KB; the
#: parse caches hold 256 entries each, so without a cap a client sending huge distinct headers
#: could make them hold megabytes. Past the cap the value is cut at an element boundary.
MAX_HEADER_CHARS: Final = 2048


def _clamp(header: str) -> str:
    if len(header) <= MAX_HEADER_CHARS:
        return header
    return header[:MAX_HEADER_CHARS].rpartition(",")[0]


def parse_accept(header: str) -> tuple[tuple[str, str, tuple[tuple[str, str], ...], float], ...]:
    """``Accept`` as ``(type, subtype, params, q)`` tuples; malformed elements are dropped."""
    return _parse_accept_cached(_clamp(header))


def negotiate_media_type(
    accept: str | None, offered: tuple[str, ...] = (JSON, MSGPACK)
) -> str | None:
    """The offered media type the client prefers, or ``None`` if it accepts none of them
    (see :func:`_negotiate_media_type_cached` for the rules)."""
    return _negotiate_media_type_cached(None if accept is None else _clamp(accept), offered)


def parse_accept_encoding(header: str) -> dict[str, float]:
    """``Accept-Encoding`` as ``{coding: q}`` (lower-case; malformed elements dropped)."""
    return _parse_accept_encoding_cached(_clamp(header))


def negotiate_encoding(accept_encoding: str | None, available: tuple[str, ...]) -> str | None:
    """The content coding to send, or ``None`` when the client refuses every one we can send
    (see :func:`_negotiate_encoding_cached` for the rules of RFC 9110 §12.5.3)."""
    clamped = None if accept_encoding is None else _clamp(accept_encoding)
    return _negotiate_encoding_cached(clamped, available)
