"""Django route strings as lagless route templates (sans-IO: strings in, strings out).

``request.resolver_match.route`` is the matched route joined across ``include()``s:
``"api/users/<int:pk>/"`` for ``path()`` routes, the regular expression for ``re_path()``
routes (``"^articles/(?P<year>[0-9]{4})/$"``). Both become the ``{name}`` style every lagless
integration reports, with a leading slash: ``/api/users/{pk}/``, ``/articles/{year}/``.
"""

from __future__ import annotations

import re

__all__ = ["django_route_template"]

# path() converters: ``<pk>``, ``<int:pk>``, ``<slug:slug>``, custom ``<yyyy:year>``.
_PATH_VAR = re.compile(r"<(?:[^<>:]+:)?(\w+)>")
_REGEX_HINT = re.compile(r"[\^$\\(\[]")
_ANCHORS = ("\\A", "\\Z", "\\z")
_cache: dict[str, str] = {}


def django_route_template(route: str) -> str:
    """``"users/<int:pk>/"`` -> ``"/users/{pk}/"``; regex routes have their groups named.

    Cached: a project has a fixed set of routes (bounded anyway, in case of dynamic urlconfs).
    """
    template = _cache.get(route)
    if template is None:
        # Regex groups first: ``(?P<year>...)`` would otherwise look like a path converter.
        template = _regex_template(route) if _REGEX_HINT.search(route) else route
        template = "/" + _PATH_VAR.sub(r"{\1}", template).lstrip("/")
        if len(_cache) < 10_000:
            _cache[route] = template
    return template


def _group_end(pattern: str, start: int) -> int:
    """Index just past the group opening at ``start``, honouring escapes and ``[...]``."""
    depth = 0
    i = start
    in_class = False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
        elif ch == "[":
            in_class = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(pattern)


def _regex_template(pattern: str) -> str:
    """A regex route as a template: named groups -> ``{name}``, unnamed groups -> ``{}``,
    non-capturing groups keep their (templated) text, anchors and escapes dropped. What is
    left of the regex syntax (``?``, ``[...]`` outside groups) stays, still one stable name
    per route."""
    out: list[str] = []
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            escape = pattern[i : i + 2]
            if escape not in _ANCHORS:
                out.append(pattern[i + 1 : i + 2])
            i += 2
            continue
        if ch in "^$":
            i += 1
            continue
        if ch == "(":
            end = _group_end(pattern, i)
            body = pattern[i + 1 : end - 1]
            if body.startswith("?P<"):
                name_end = body.find(">")
                out.append("{" + body[3:name_end] + "}")
            elif body.startswith("?:"):
                out.append(_regex_template(body[2:]))
            elif not body.startswith("?"):
                out.append("{}")
            # other (?...) groups are lookarounds, flags or comments: no text of their own
            i = end
            continue
        out.append(ch)
        i += 1
    return "".join(out)
