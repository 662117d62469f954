"""Flask adapters: install the WSGI middlewares on an app, and a ``condition`` view decorator
that answers 304/412 from cheap validators before the view runs.

::

    from lagless.cache.flask import condition, install

    install(app, policies=POLICIES, backend=RedisBackend(url=REDIS_URL))

    @app.get("/articles/<int:pk>")
    @condition(etag=lambda pk: article_version(pk))
    def article(pk): ...
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, make_response, request

from lagless.cache._backend import CacheBackend
from lagless.cache._policy import CachePolicies, CachePolicy
from lagless.cache._response import decorate, precheck
from lagless.cache.wsgi import (
    DEFAULT_MAX_BODY,
    ConditionalWSGIMiddleware,
    ResponseCacheWSGIMiddleware,
    environ_headers,
)

__all__ = ["condition", "install"]


def install(
    app: Flask,
    *,
    policies: CachePolicies,
    backend: CacheBackend | None = None,
    cache_responses: bool = True,
    conditional: bool = True,
    max_body: int = DEFAULT_MAX_BODY,
) -> Flask:
    """Wrap ``app.wsgi_app`` with the response cache and conditional-request middlewares.
    Route patterns in ``policies`` are matched against the request path (``/items/{id}``)."""
    wsgi_app: Any = app.wsgi_app
    if cache_responses:
        wsgi_app = ResponseCacheWSGIMiddleware(
            wsgi_app, policies=policies, backend=backend, max_body=max_body
        )
    if conditional:
        wsgi_app = ConditionalWSGIMiddleware(wsgi_app, policies=policies, max_body=max_body)
    app.wsgi_app = wsgi_app  # type: ignore[method-assign]
    return app


def condition(
    *,
    etag: Callable[..., Any] | None = None,
    last_modified: Callable[..., Any] | None = None,
    policy: CachePolicy | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Answer conditional requests from validators called with the view's URL arguments,
    before the view runs (``etag(**view_args)`` returns an ETag or None; ``last_modified``
    a datetime or Unix time)."""

    def decorate_view(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            headers = environ_headers(request.environ)
            method = request.method
            tag = etag(*args, **kwargs) if etag is not None else None
            modified = last_modified(*args, **kwargs) if last_modified is not None else None
            early, extra = precheck(method, headers, policy or CachePolicy(), tag, modified)
            if early is not None:
                return Response(b"", status=early[0], headers=early[1])
            response = make_response(view(*args, **kwargs))
            out = decorate(
                method,
                headers,
                response.status_code,
                list(response.headers.items())
                + [(n, v) for n, v in extra if n not in response.headers],
                None,
                policy=policy,
            )
            for name, value in out:
                if name.lower() != "set-cookie" and response.headers.get(name) != value:
                    response.headers[name] = value
            return response

        return wrapper

    return decorate_view
