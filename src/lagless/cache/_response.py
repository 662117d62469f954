"""The response cache's rules as plain functions (sans-IO): keys, what may be stored, what a
hit looks like, and the last touches every response gets (ETag, Cache-Control, conditional
evaluation). The ASGI/WSGI/Django adapters only move bytes.

Safe by default, because a shared cache that serves one user's page to another is the worst
bug a cache can have:

- never stored: responses with ``Set-Cookie``; ``Cache-Control: private``, ``no-store`` or
  ``no-cache``; ``Vary: *``; already-stale responses (a zero lifetime, a past or invalid
  ``Expires``); answers to requests carrying ``Authorization``, ``Cookie`` or another of the
  policy's ``credential_headers`` unless the route's policy opts in (``vary_on_authorization``,
  ``vary_on_cookie``, the header named in ``vary``), in which case the header's value, hashed,
  is part of the key;
- key = method + path + normalized query + the request headers the response's ``Vary`` names.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from lagless.cache._conditional import (
    GET_HEAD,
    evaluate,
    http_date,
    not_modified_headers,
    parse_http_date,
    quote_etag,
    strong_etag,
    to_timestamp,
)
from lagless.cache._policy import CachePolicy

Headers = list[tuple[str, str]]

#: RFC 9211 cache name in Cache-Status.
CACHE_NAME = "lagless"
# RFC 9110 §15.1: status codes cacheable by default (heuristically cacheable).
CACHEABLE_STATUS = frozenset({200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501})
#: Request headers stripped before a cacheable miss goes to the origin: the cache evaluates
#: the conditions itself against the full response it stores (RFC 9111 §4.3.2).
CONDITIONAL_REQUEST_HEADERS = frozenset(
    {"if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range"}
)


def header_dict(pairs: Iterable[tuple[Any, Any]]) -> dict[str, str]:
    """Lower-case name -> value, repeated fields joined with ", " (RFC 9110 §5.3). Accepts
    ASGI byte pairs and str pairs."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def parse_cache_control(value: str | None) -> dict[str, str | None]:
    """Directives of a Cache-Control value, names lower-cased, whitespace and empty list
    members tolerated, quoted-string arguments unquoted (RFC 9111 §5.2)."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in _split_list(value):
        name, sep, arg = part.partition("=")
        name = name.strip().lower()
        if not name:
            continue
        arg = arg.strip()
        if len(arg) >= 2 and arg[0] == arg[-1] == '"':
            arg = arg[1:-1]
        out[name] = arg if sep else None
    return out


def _split_list(value: str) -> list[str]:
    """Split a list-valued field on commas outside quoted strings; drop empty members."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def parse_vary(value: str | None) -> list[str]:
    """Field names in Vary, lower-cased, sorted, de-duplicated; ``["*"]`` for Vary: *."""
    if not value:
        return []
    names = {n.strip().lower() for n in value.split(",") if n.strip()}
    if "*" in names:
        return ["*"]
    return sorted(names)


def normalize_query(query: str) -> str:
    """Query parameters in a canonical order, so ``?b=2&a=1`` and ``?a=1&b=2`` share an entry.

    Only the order changes; every member keeps its raw bytes, so queries the app could tell
    apart never share an entry: ``?a=%ff`` and ``?a=%fe`` (which both decode to U+FFFD),
    ``?a=%20`` and ``?a=+`` stay distinct. Members are sorted by their *decoded* name with a
    stable sort, so repeated values keep their order even when one name is spelt
    percent-encoded (``?a=1&%61=2`` is not ``?%61=2&a=1``): ``?sort=a&sort=b`` may well mean
    something else than ``?sort=b&sort=a``. Names keep their case; empty members are dropped.
    """
    if not query:
        return ""
    members = [m for m in query.split("&") if m]
    if len(members) < 2:
        return members[0] if members else ""
    return "&".join(sorted(members, key=_decoded_name))


def _decoded_name(member: str) -> str:
    return unquote_plus(member.partition("=")[0], errors="surrogateescape")


def _digest(*parts: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(part.encode("utf-8", "surrogateescape"))
        h.update(b"\x00")
    return h.hexdigest()


def primary_key(method: str, path: str, query: str, host: str = "", scheme: str = "http") -> str:
    """The key of a URL's entry. Scheme and Host are part of it (RFC 9111 §2: the cache key is
    the target URI): one app serving several hosts (tenants, locales) must never answer one
    host with another's page, nor an https request with what was built for http (absolute
    links, HSTS-only content)."""
    # HEAD is answered from the GET entry (RFC 9110 §9.3.2: same header fields as GET).
    return "resp:" + _digest(
        "GET" if method == "HEAD" else method,
        scheme.lower(),
        host.strip().lower(),
        path,
        normalize_query(query),
    )


def _normalize_value(value: str) -> str:
    # RFC 9111 §4.1: a cache may normalize whitespace and list separators before comparing.
    return ",".join(p.strip() for p in value.split(",") if p.strip())


def effective_vary(vary: list[str], policy: CachePolicy) -> list[str]:
    """The response's Vary names plus those the policy adds (``vary``, opted-in credentials)."""
    if not (policy.vary or policy.vary_on_cookie or policy.vary_on_authorization):
        return vary
    names = set(vary)
    names.update(policy.vary)
    if policy.vary_on_cookie:
        names.add("cookie")
    if policy.vary_on_authorization:
        names.add("authorization")
    return sorted(names)


def variant_key(primary: str, vary: list[str], request_headers: Mapping[str, str]) -> str:
    """The key of the variant selected by ``vary`` (lower-case names) for this request. Values
    are hashed, so a token or cookie never appears in a key."""
    values = [f"{n}:{_normalize_value(request_headers.get(n, ''))}" for n in vary]
    return f"{primary}:v:{_digest(*values)}"


def credential_in(headers: Mapping[str, str], policy: CachePolicy) -> str | None:
    """The first credential header (lower-case name) the request carries and the route did not
    opt into, or None. A blank header carries no credentials (Django's test client always
    sends ``Cookie: ``)."""
    for name in policy.guarded_headers:
        value = headers.get(name)
        if value and value.strip():
            return name
    return None


def bypass_reason(method: str, headers: Mapping[str, str], policy: CachePolicy) -> str | None:
    """Why this request must not be answered from (or stored in) the cache; None when it may."""
    if policy.server_ttl is None:
        return "policy"
    if method not in GET_HEAD:
        return "method"
    reason = credential_in(headers, policy)
    if reason is not None:
        return reason
    directives = parse_cache_control(headers.get("cache-control"))
    if "no-store" in directives or "no-cache" in directives:
        return "request"  # RFC 9111 §5.2.1.4-5: the client asked for a fresh answer
    return None


def freshness_lifetime(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds a response is fresh for a shared cache, or None when it states no lifetime
    (RFC 9111 §4.2.1): ``s-maxage``, else ``max-age``, else ``Expires`` minus ``Date`` (``now``
    when there is no valid Date). An invalid ``Expires`` means already expired (§5.3: e.g.
    ``Expires: 0``); so does an invalid age argument, the conservative reading."""
    directives = parse_cache_control(headers.get("cache-control"))
    for name in ("s-maxage", "max-age"):
        if name in directives:
            arg = (directives[name] or "").strip()
            return float(arg) if arg.isdigit() else 0.0
    expires_text = headers.get("expires")
    if expires_text is None:
        return None
    expires = parse_http_date(expires_text)
    if expires is None:
        return 0.0
    date_text = headers.get("date")
    date = parse_http_date(date_text) if date_text else None
    return max(0.0, expires - (now if date is None else date))


def refusal_reason(status: int, headers: Mapping[str, str], now: float = 0.0) -> str | None:
    """Why a response must not be stored; None when it may. ``headers`` lower-case; ``now``
    (Unix time) dates an ``Expires`` when the response has no ``Date``."""
    if status not in CACHEABLE_STATUS:
        return "status"
    if "set-cookie" in headers:
        return "set-cookie"
    directives = parse_cache_control(headers.get("cache-control"))
    for directive in ("no-store", "private", "no-cache"):
        if directive in directives:
            return directive
    # RFC 9111 §4.2.1: a lifetime of 0 (s-maxage, else max-age, else Expires at or before Date)
    # means stale at once, reusable only after revalidation, which this cache does not do: the
    # app asked for no reuse. §5.3: an invalid Expires is a date in the past.
    lifetime = freshness_lifetime(headers, now)
    if lifetime is not None and lifetime <= 0:
        return "stale"
    if parse_vary(headers.get("vary")) == ["*"]:
        return "vary-star"
    return None


def cache_status(
    *,
    hit: bool,
    fwd: str | None = None,
    stored: bool = False,
    ttl: int | None = None,
    detail: str | None = None,
) -> str:
    """An RFC 9211 Cache-Status member for this cache."""
    parts = [CACHE_NAME]
    if hit:
        parts.append("hit")
    elif fwd:
        parts.append(f"fwd={fwd}")
    if ttl is not None:
        parts.append(f"ttl={ttl}")
    if stored:
        parts.append("stored")
    if detail:
        parts.append(f"detail={detail}")
    return "; ".join(parts)


# -- stored entries -----------------------------------------------------------------------------
_LEN = struct.Struct(">I")


@dataclass(slots=True)
class StoredResponse:
    status: int
    headers: Headers
    body: bytes
    stored_at: float
    ttl: float
    #: The route template of the request that filled the entry: a hit never reaches the
    #: framework's router, and its trace should not be filed under "<unmatched>".
    route: str | None = None

    def encode(self) -> bytes:
        meta = json.dumps(
            {
                "s": self.status,
                "h": self.headers,
                "t": self.stored_at,
                "l": self.ttl,
                "r": self.route,
            }
        ).encode()
        return _LEN.pack(len(meta)) + meta + self.body


@dataclass(slots=True)
class VaryMarker:
    """Stored under the primary key when the response varies: which request headers select."""

    vary: list[str]

    def encode(self) -> bytes:
        meta = json.dumps({"v": self.vary}).encode()
        return _LEN.pack(len(meta)) + meta


def decode_entry(data: bytes) -> StoredResponse | VaryMarker | None:
    try:
        (length,) = _LEN.unpack_from(data)
        meta = json.loads(data[4 : 4 + length])
        if "v" in meta:
            return VaryMarker([str(n) for n in meta["v"]])
        return StoredResponse(
            int(meta["s"]),
            [(str(n), str(v)) for n, v in meta["h"]],
            data[4 + length :],
            float(meta["t"]),
            float(meta["l"]),
            route if isinstance(route := meta.get("r"), str) else None,
        )
    except (struct.error, ValueError, KeyError, TypeError):
        return None


# -- finishing touches ---------------------------------------------------------------------------
def _get(headers: Headers, name: str) -> str | None:
    for n, v in headers:
        if n.lower() == name:
            return v
    return None


def policy_cache_control(policy: CachePolicy | None, personal: bool) -> str | None:
    """The Cache-Control a policy adds; for a personal response (request with credentials, or
    a Set-Cookie) never ``public``/``s-maxage``, so a CDN cannot share it either."""
    if policy is None:
        return None
    if personal and not policy.private and policy.cache_control is not None:
        if policy.no_store:
            return policy.cache_control
        return CachePolicy(
            private=True,
            no_cache=policy.no_cache,
            max_age=policy.max_age,
            must_revalidate=policy.must_revalidate,
        ).cache_control
    return policy.cache_control


def decorate(
    method: str,
    request_headers: Mapping[str, str],
    status: int,
    headers: Headers,
    body: bytes | None,
    *,
    policy: CachePolicy | None,
    add_etag: bool = True,
) -> Headers:
    """The headers a response leaves with: the policy's Cache-Control (if the app set none;
    never ``public`` for a personal response), Vary naming opted-in credentials, and a strong
    ETag hashed from the body (GET 200 only, when the app set none and ``body`` is known)."""
    headers = list(headers)
    lower = header_dict(headers)
    personal = policy is not None and (
        "set-cookie" in lower or credential_in(request_headers, policy) is not None
    )
    if "cache-control" not in lower:
        value = policy_cache_control(policy, personal)
        if value is not None:
            headers.append(("cache-control", value))
    if policy is not None and (
        policy.vary or policy.vary_on_cookie or policy.vary_on_authorization
    ):
        have = parse_vary(lower.get("vary"))
        if have != ["*"]:
            wanted = effective_vary(have, policy)
            if wanted != have:
                headers = [(n, v) for n, v in headers if n.lower() != "vary"]
                headers.append(("vary", ", ".join(wanted)))
    if add_etag and body is not None and "etag" not in lower and method == "GET" and status == 200:
        headers.append(("etag", strong_etag(body)))
    return headers


def apply_conditions(
    method: str,
    request_headers: Mapping[str, str],
    status: int,
    headers: Headers,
    body: bytes,
) -> tuple[int, Headers, bytes]:
    """Evaluate the request's preconditions against the response's own validators (RFC 9110
    §13.2.2): a 304 (headers of §15.4.5, no body), a 412, or the response unchanged (without a
    body for HEAD)."""
    if 200 <= status < 300 and any(h in request_headers for h in CONDITIONAL_REQUEST_HEADERS):
        etag = _get(headers, "etag")
        last_modified_text = _get(headers, "last-modified")
        outcome = evaluate(
            method,
            request_headers,
            etag=etag,
            last_modified=parse_http_date(last_modified_text) if last_modified_text else None,
        )
        if outcome == 304:
            return 304, not_modified_headers(headers), b""
        if outcome == 412:
            return 412, precondition_failed_headers(), b""
    if method == "HEAD":
        body = b""
    return status, headers, body


def precondition_failed_headers() -> Headers:
    """RFC 9110 §15.5.13: 412 Precondition Failed, with an empty body."""
    return [("content-type", "text/plain; charset=utf-8"), ("content-length", "0")]


def hit_response(
    method: str, request_headers: Mapping[str, str], entry: StoredResponse, *, now: float
) -> tuple[int, Headers, bytes]:
    """What a hit sends: the stored response with Age (RFC 9111 §5.1) and Cache-Status, or a
    304 when the request's conditions match the stored validators."""
    age = max(0, int(now - entry.stored_at))
    remaining = max(0, int(entry.ttl - (now - entry.stored_at)))
    headers = [
        *entry.headers,
        ("age", str(age)),
        ("cache-status", cache_status(hit=True, ttl=remaining)),
    ]
    return apply_conditions(method, request_headers, entry.status, headers, entry.body)


def storable_headers(headers: Headers, body_length: int) -> Headers:
    """Headers to store: hop-by-hop and per-delivery fields dropped (a hit adds its own Age and
    Cache-Status), Content-Length set (a stored body is complete)."""
    hop = {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "server-timing",
        "age",
        "cache-status",
        "proxy-connection",
        "upgrade",
        "te",
        "trailer",
    }
    kept = [(n.lower(), v) for n, v in headers if n.lower() not in hop]
    if not any(n == "content-length" for n, _ in kept):
        kept.append(("content-length", str(body_length)))
    return kept


def precheck(
    method: str,
    request_headers: Mapping[str, str],
    policy: CachePolicy,
    etag_value: Any,
    last_modified_value: Any,
) -> tuple[tuple[int, Headers] | None, Headers]:
    """Evaluate the request's conditions against handler-supplied validators *before* the view
    runs. Returns (early answer or None, validator headers to add to the full response).

    Both validators None means the handler could not tell (say, the row does not exist): the
    conditions are then left alone, since the view's answer may not be a 2xx (§13.2.1).
    """
    etag = quote_etag(str(etag_value)) if etag_value is not None else None
    last_modified = to_timestamp(last_modified_value)
    validator_headers: Headers = []
    if etag is not None:
        validator_headers.append(("etag", etag))
    if last_modified is not None:
        validator_headers.append(("last-modified", http_date(last_modified)))
    if not validator_headers:
        return None, []
    outcome = evaluate(method, request_headers, etag=etag, last_modified=last_modified)
    if outcome is None:
        return None, validator_headers
    if outcome == 412:
        return (412, precondition_failed_headers()), validator_headers
    headers = decorate(method, request_headers, 200, validator_headers, None, policy=policy)
    return (304, not_modified_headers(headers)), validator_headers
