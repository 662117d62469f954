"""Invalidation after unsafe requests (RFC 9111 §4.4), as plain functions (sans-IO).

A successful (2xx/3xx) answer to a POST, PUT, PATCH or DELETE means the resource changed, so
the cache drops what it holds for the request's target URI and, when they name the same host,
for the URIs in the response's ``Location`` and ``Content-Location``. "What it holds" is every
variant: each Vary selection, each credential hash, http and https, every query string. To
drop them all in one call without a read on the hit path, every stored entry carries a tag
naming its host and path (:func:`path_tag`); invalidating is one ``invalidate_tags`` (on Redis
one SMEMBERS and one pipelined DEL), while a hit stays one GET.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, unquote, urljoin, urlsplit

from lagless.cache._policy import CachePolicies
from lagless.cache._response import _digest

#: RFC 9110 §9.2.1: methods whose answers never invalidate (everything else is unsafe).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_DEFAULT_PORTS = (":80", ":443")
# Characters left as they are when a decoded path is re-encoded to resolve references against.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def host_key(host: str) -> str:
    """A Host (or URI authority) compared case-insensitively, without userinfo or a default
    port, so ``Example.com:443`` and ``example.com`` are one host."""
    host = host.strip().lower().rpartition("@")[2]
    for port in _DEFAULT_PORTS:
        if host.endswith(port):
            return host[: -len(port)]
    return host


def path_tag(host: str, path: str) -> str:
    """The tag every stored variant of ``path`` on ``host`` carries (``path`` decoded, as the
    framework sees it; no query, no scheme: an invalidation drops them all)."""
    return "resp-path:" + _digest(host_key(host), path)


def _same_origin_path(base: str, host: str, reference: str) -> str | None:
    """The decoded path ``reference`` (absolute or relative) points at, when it is on
    ``host``; None otherwise. RFC 9111 §4.4: a cache MUST NOT invalidate a URI from Location or
    Content-Location whose host differs from the target URI's (a response could otherwise
    flush another site's entries)."""
    try:
        parts = urlsplit(urljoin(base, reference.strip()))
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or host_key(parts.netloc) != host_key(host):
        return None
    return unquote(parts.path, errors="surrogateescape") or "/"


def invalidation_tags(
    method: str,
    status: int,
    *,
    scheme: str,
    host: str,
    path: str,
    response_headers: Mapping[str, str],
    policies: CachePolicies,
    script_name: str = "",
    authority: str | None = None,
) -> list[str]:
    """The path tags to invalidate after this response; empty for safe methods, errors
    (RFC 9111 §4.4: "non-error status code", i.e. 2xx/3xx) and paths no policy stores.

    ``path`` is the full decoded request path (``script_name`` + route path); policies are
    matched on what follows ``script_name``. ``response_headers`` are lower-case. ``host`` is
    the Host the entries were keyed on; ``authority`` (default ``host``) the request's real
    authority, for the same-host test, when the two differ (a request without Host keys on ""
    but was still addressed to ``SERVER_NAME``).
    """
    if method in SAFE_METHODS or not 200 <= status < 400:
        return []
    targets = [path]
    origin = host if authority is None else authority
    base = f"{scheme or 'http'}://{origin}{quote(path, safe=_PATH_SAFE, errors='surrogateescape')}"
    for name in ("location", "content-location"):
        reference = response_headers.get(name)
        if reference:
            target = _same_origin_path(base, origin, reference)
            if target is not None:
                targets.append(target)
    tags: list[str] = []
    for target in dict.fromkeys(targets):
        route = target
        if script_name:
            if not target.startswith(script_name):
                continue
            route = target[len(script_name) :] or "/"
        match = policies.match("GET", route)
        if match is not None and match.policy.server_ttl is not None:
            tags.append(path_tag(host, target))
    return tags
