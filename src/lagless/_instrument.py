"""``lagless.instrument(app)``: one line that traces any ASGI or WSGI application.

It recognises the application object and wraps it the way that keeps the object usable:

- Starlette / FastAPI: the app object is returned unchanged; its middleware stack is rebuilt
  with lagless outermost (outside ``ServerErrorMiddleware``, so 500s are timed too), and routes
  resolve to their templates.
- Litestar: the app's ASGI handler is wrapped; routes come from Litestar's route handlers.
- Flask: ``app.wsgi_app`` is wrapped (so ``app.run()`` still works), route templates come from
  ``request.url_rule``, and ``before_request``/``after_request`` functions are timed.
- Any other ASGI callable (detected by an ``async`` ``__call__``) or WSGI callable: wrapped in
  :class:`~lagless.integrations.asgi.LaglessMiddleware` or
  :class:`~lagless.integrations.wsgi.LaglessWSGIMiddleware`.

Driver and client integrations (sqlite3, SQLAlchemy, psycopg, asyncpg, redis, httpx,
requests...) are installed at the same time, as the settings say.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, TypeVar, cast

from lagless._runtime import get_runtime
from lagless.integrations._base import install_integrations

logger = logging.getLogger("lagless")

AppT = TypeVar("AppT")


def _is_asgi(app: Any) -> bool:
    if inspect.iscoroutinefunction(app):
        return True
    return callable(app) and inspect.iscoroutinefunction(type(app).__call__)


def _framework_of(app: Any) -> str | None:
    for cls in type(app).__mro__:
        mod = cls.__module__.split(".")[0]
        qual = f"{mod}.{cls.__name__}"
        if qual in ("starlette.Starlette", "fastapi.FastAPI"):
            return "starlette"
        if qual == "litestar.Litestar":
            return "litestar"
        if qual == "flask.Flask":
            return "flask"
    return None


def instrument(app: AppT, *, integrations: bool = True, **settings: Any) -> AppT:
    """Trace every request of ``app`` and return it (or its wrapper) to serve.

    ``settings`` are lagless settings (see ``lagless config``), applied process-wide.
    Idempotent: instrumenting an instrumented app returns it unchanged.

    >>> app = FastAPI()
    >>> app = lagless.instrument(app)
    """
    rt = get_runtime()
    if settings:
        rt.configure(**settings)
    if integrations:
        cfg = rt.config
        install_integrations(cfg.integrations, exclude=cfg.disabled_integrations)
    if getattr(app, "__lagless_instrumented__", False):
        return app
    framework = _framework_of(app)
    if framework == "starlette":
        from lagless.integrations.starlette import instrument_starlette

        result: Any = instrument_starlette(cast(Any, app), runtime=rt)
        return cast(AppT, result)
    if framework == "litestar":
        from lagless.integrations.litestar import instrument_litestar

        return instrument_litestar(app, runtime=rt)
    if framework == "flask":
        from lagless.integrations.flask import instrument_flask

        return cast(AppT, instrument_flask(app, runtime=rt))
    if _is_asgi(app):
        from lagless.integrations.asgi import LaglessMiddleware

        wrapped: Any = LaglessMiddleware(app, runtime=rt)  # type: ignore[arg-type]
    else:
        from lagless.integrations.wsgi import LaglessWSGIMiddleware

        wrapped = LaglessWSGIMiddleware(app, runtime=rt)  # type: ignore[arg-type]
    wrapped.__lagless_instrumented__ = True
    return wrapped  # type: ignore[no-any-return]
