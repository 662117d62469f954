"""Declarative per-route caching policy, in one place.

A :class:`CachePolicy` says how a route's responses may be cached: the ``Cache-Control`` header
it sends to browsers and CDNs, whether lagless's own response cache stores it, and, optionally,
cheap validators (an ETag or Last-Modified computed from the request, e.g. from a row version)
so a conditional request is answered 304 before the view runs. :class:`CachePolicies` maps route
patterns to policies for the middlewares::

    POLICIES = CachePolicies({
        "GET /products/{pid}": CachePolicy(max_age=60, s_maxage=300, stale_while_revalidate=30,
                                           etag=lambda r: product_version(r.params["pid"])),
        "/static/*": CachePolicy(max_age=31_536_000, immutable=True),
        "/account/*": CachePolicy(private=True, no_store=True),
    })
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

Validator = Callable[["RequestInfo"], Any]

#: Request headers, besides ``Authorization`` and ``Cookie``, that carry credentials in common
#: APIs. A request carrying one (non-blank) is treated like one with ``Authorization``: its
#: answer is neither served from nor stored in the shared cache, and gets ``private`` rather
#: than ``public``/``s-maxage``, unless the route's policy names the header in ``vary`` (then
#: the header's value, hashed, is part of the key).
DEFAULT_CREDENTIAL_HEADERS: tuple[str, ...] = (
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
)


class RouteMatch(NamedTuple):
    """A request matched to a policy: the policy, captured parameters, and the pattern (used
    as the key *shape* in spans, so ids and tokens in paths never reach a trace)."""

    policy: CachePolicy
    params: dict[str, str]
    pattern: str


@dataclass(frozen=True, slots=True)
class RequestInfo:
    """What a validator callable sees: framework-neutral facts about the request.
    ``params`` holds the values captured by the route pattern's ``{name}`` segments."""

    method: str
    path: str
    params: Mapping[str, str]
    query_string: str
    headers: Mapping[str, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class CachePolicy:
    """How one route's responses are cached.

    Cache-Control directives (RFC 9111 §5.2.2): ``private`` (only the user's browser may store),
    ``no_store``, ``no_cache`` (store but revalidate), ``max_age``, ``s_maxage`` (shared caches:
    CDNs and lagless's response cache), ``stale_while_revalidate`` and ``stale_if_error``
    (RFC 5861), ``immutable`` (RFC 8246), ``must_revalidate``.

    Server-side response cache: ``store`` (default True) lets :class:`ResponseCacheMiddleware`
    keep responses for ``ttl`` seconds (default: ``s_maxage``, else ``max_age``). Responses to
    requests carrying ``Authorization`` or ``Cookie`` are stored only when ``vary_on_authorization``
    / ``vary_on_cookie`` say so, and then the header's value (hashed) is part of the key, so one
    user's response is never served to another.

    ``credential_headers``: further request headers treated like ``Authorization`` (default
    :data:`DEFAULT_CREDENTIAL_HEADERS`: ``Proxy-Authorization``, ``X-API-Key``, ``API-Key``,
    ``X-Auth-Token``, ``X-Access-Token``). Add your own, e.g.
    ``credential_headers=(*DEFAULT_CREDENTIAL_HEADERS, "x-tenant-token")``. Naming one in
    ``vary`` opts the route in: such requests are then cached, keyed on the header's value
    (as ``vary=("authorization",)`` is the same as ``vary_on_authorization=True``).

    ``vary``: request header names the route's responses vary on (e.g. ``("accept",)`` for a
    route that negotiates JSON or MessagePack). They are added to every response's ``Vary``,
    to the cache key, and to the 304s answered from validators *before* the handler runs,
    which must carry the Vary the 200 would have (RFC 9110 §15.4.5).

    Validators: ``etag`` and ``last_modified`` are callables of a :class:`RequestInfo` (sync or
    async) returning the current ETag (a string, quoted or not) / modification time (datetime or
    Unix seconds), or None when unknown. With them a conditional GET is answered 304 before the
    view runs.
    """

    private: bool = False
    no_store: bool = False
    no_cache: bool = False
    max_age: int | None = None
    s_maxage: int | None = None
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    immutable: bool = False
    must_revalidate: bool = False
    store: bool = True
    ttl: float | None = None
    vary_on_cookie: bool = False
    vary_on_authorization: bool = False
    vary: tuple[str, ...] = ()
    credential_headers: tuple[str, ...] = DEFAULT_CREDENTIAL_HEADERS
    etag: Callable[[RequestInfo], str | Awaitable[str | None] | None] | None = None
    last_modified: (
        Callable[[RequestInfo], datetime | float | Awaitable[datetime | float | None] | None] | None
    ) = None
    _header: str | None = field(default=None, init=False, repr=False, compare=False)
    #: Credential headers this route does not opt into: a request carrying one bypasses the
    #: cache. Precomputed so the per-request check is a few dict lookups.
    _guarded: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_age", "s_maxage", "stale_while_revalidate", "stale_if_error"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"CachePolicy.{name} must be a non-negative integer of seconds")
        if self.ttl is not None and self.ttl <= 0:
            raise ValueError("CachePolicy.ttl must be positive")
        given: Any = self.vary
        if isinstance(given, str):
            raise TypeError("CachePolicy.vary is a tuple of header names, e.g. ('accept',)")
        vary = tuple(sorted({name.strip().lower() for name in self.vary if name.strip()}))
        if "*" in vary:
            # RFC 9110 §12.5.5: Vary: * makes every response unusable for a cache; say no_store.
            raise ValueError("CachePolicy.vary cannot hold '*' (use no_store=True)")
        object.__setattr__(self, "vary", vary)
        credentials: Any = self.credential_headers
        if isinstance(credentials, str):
            raise TypeError("CachePolicy.credential_headers is a tuple of header names")
        names = tuple(dict.fromkeys(n.strip().lower() for n in credentials if n.strip()))
        object.__setattr__(self, "credential_headers", names)
        guarded = [
            name
            for name, opted in (
                ("authorization", self.vary_on_authorization),
                ("cookie", self.vary_on_cookie),
            )
            if not opted
        ]
        guarded += [n for n in names if n not in ("authorization", "cookie")]
        object.__setattr__(self, "_guarded", tuple(n for n in guarded if n not in vary))
        object.__setattr__(self, "_header", self._render())

    def _render(self) -> str | None:
        parts: list[str] = []
        if self.no_store:
            parts.append("no-store")
        if self.private:
            parts.append("private")
        elif not self.no_store and (self.max_age is not None or self.s_maxage is not None):
            parts.append("public")
        if self.no_cache:
            parts.append("no-cache")
        if not self.no_store:
            if self.max_age is not None:
                parts.append(f"max-age={self.max_age}")
            if self.s_maxage is not None and not self.private:
                parts.append(f"s-maxage={self.s_maxage}")
            if self.stale_while_revalidate is not None:
                parts.append(f"stale-while-revalidate={self.stale_while_revalidate}")
            if self.stale_if_error is not None:
                parts.append(f"stale-if-error={self.stale_if_error}")
            if self.immutable:
                parts.append("immutable")
            if self.must_revalidate:
                parts.append("must-revalidate")
        return ", ".join(parts) or None

    @property
    def cache_control(self) -> str | None:
        """The ``Cache-Control`` value this policy sends, or None when it sets nothing."""
        return self._header

    @property
    def server_ttl(self) -> float | None:
        """Seconds lagless's response cache keeps a response, or None: not stored."""
        if not self.store or self.private or self.no_store:
            return None
        if self.ttl is not None:
            return self.ttl
        if self.s_maxage is not None:
            return float(self.s_maxage) or None
        if self.max_age is not None:
            return float(self.max_age) or None
        return None

    @property
    def guarded_headers(self) -> tuple[str, ...]:
        """Request headers carrying credentials this route has not opted into (lower-case)."""
        return self._guarded

    @property
    def has_validators(self) -> bool:
        return self.etag is not None or self.last_modified is not None


_SEGMENT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class CachePolicies:
    """Route patterns mapped to policies. A pattern is ``"[METHOD ]/path"``: ``{name}`` matches
    one path segment (captured into ``RequestInfo.params``), a trailing ``*`` matches the rest.
    A pattern without a method applies to GET and HEAD; HEAD always follows GET. Exact paths win
    over patterns; patterns are tried in the order given.
    """

    def __init__(
        self, routes: Mapping[str, CachePolicy] | None = None, *, default: CachePolicy | None = None
    ) -> None:
        self.default = default
        self._exact: dict[tuple[str, str], RouteMatch] = {}
        self._patterns: list[tuple[str, re.Pattern[str], CachePolicy, str]] = []
        for pattern, policy in (routes or {}).items():
            self.add(pattern, policy)

    def add(self, pattern: str, policy: CachePolicy) -> None:
        if not isinstance(policy, CachePolicy):
            raise TypeError(f"policy for {pattern!r} must be a CachePolicy")
        method, _, path = pattern.strip().rpartition(" ")
        method = method.strip().upper() or "GET"
        if not path.startswith("/"):
            raise ValueError(f"route pattern {pattern!r} must start with '/' (after the method)")
        if "{" not in path and not path.endswith("*"):
            self._exact[(method, path)] = RouteMatch(policy, {}, f"{method} {path}")
            return
        regex = ""
        rest = path[:-1] if path.endswith("*") else path
        pos = 0
        for match in _SEGMENT.finditer(rest):
            regex += re.escape(rest[pos : match.start()]) + f"(?P<{match.group(1)}>[^/]+)"
            pos = match.end()
        regex += re.escape(rest[pos:]) + (".*" if path.endswith("*") else "")
        self._patterns.append((method, re.compile(regex + r"\Z"), policy, f"{method} {path}"))

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The policy for a request with the captured parameters, or None when no pattern
        matches and there is no default."""
        if method == "HEAD":
            method = "GET"
        exact = self._exact.get((method, path))
        if exact is not None:
            return exact
        for pmethod, regex, policy, pattern in self._patterns:
            if pmethod == method:
                found = regex.match(path)
                if found is not None:
                    return RouteMatch(policy, found.groupdict(), pattern)
        if self.default is not None and method == "GET":
            return RouteMatch(self.default, {}, "GET <default>")
        return None
