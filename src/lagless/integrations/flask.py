"""Flask: trace every request, with route templates, a handler span and timed request hooks.

``lagless.instrument(app)`` (or the :class:`Lagless` extension) wraps ``app.wsgi_app`` in
:class:`~lagless.integrations.wsgi.LaglessWSGIMiddleware`, so ``app.run()``, ``flask run`` and
every WSGI server keep working and the Flask object stays the one the user holds. Inside Flask
it uses two of the app's own public methods as hook points, set per instance (the class is not
touched, other apps in the process are not affected):

- ``preprocess_request`` runs once per request, after URL matching and before every
  ``before_request`` function: the route template is read there from ``request.url_rule``, so
  a request a ``before_request`` function answers early still gets its route;
- ``dispatch_request`` runs the view: it becomes the ``handler`` span.

``before_request``, ``after_request`` and ``teardown_request`` functions become ``middleware``
spans named after the function. They are wrapped lazily, at the first request, because that is
the point after which Flask refuses new ones (``_check_setup_finished``), so every function
registered after ``instrument()`` -- by blueprints, other extensions -- is covered. The
``middleware_timing`` setting switches their timing off per request without unwrapping.

Flask itself is imported only when one of these functions runs.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
from collections.abc import Callable
from time import perf_counter_ns as _now
from typing import TYPE_CHECKING, Any

from lagless._guard import report_internal_error
from lagless._runtime import Runtime, get_runtime
from lagless._spans import record
from lagless._trace import Span, _current_trace
from lagless.integrations._base import install_integrations
from lagless.integrations.wsgi import LaglessWSGIMiddleware

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["Lagless", "flask_route_template", "instrument_flask"]

_STATE_KEY = "lagless"
# Werkzeug rule variables: ``<name>``, ``<int:name>``, ``<any(a, b):name>``.
_RULE_VAR = re.compile(r"<(?:[^<>]*:)?\s*(\w+)\s*>")
_templates: dict[str, str] = {}


def flask_route_template(rule: str) -> str:
    """A Werkzeug rule in lagless's ``{name}`` style: ``/users/<int:id>`` -> ``/users/{id}``.

    Cached: an app has a fixed, small set of rules.
    """
    template = _templates.get(rule)
    if template is None:
        template = _RULE_VAR.sub(r"{\1}", rule)
        if len(_templates) < 10_000:
            _templates[rule] = template
    return template


def _resolve_request_getter() -> Callable[[], Any]:
    """How to reach the current ``flask.Request`` itself, not the proxy, worked out once.

    Flask 2.2-3.1 keep the request context in the context variable ``flask.globals._cv_request``:
    reading it is one C call and an attribute, where the ``flask.request`` proxy's
    ``_get_current_object`` goes through werkzeug's ``LocalProxy`` machinery (~0.5 µs a call,
    and the hooks below make three a request). The variable is private, so it is
    feature-detected, and any Flask without it (3.2 moves the request into the app context)
    uses the public proxy. Resolved on first use, so importing this module does not import
    Flask.
    """
    from flask import globals as flask_globals
    from flask import request

    proxy: Any = request  # typed as a Request; it is werkzeug's LocalProxy
    cv = getattr(flask_globals, "_cv_request", None)
    if cv is not None:
        try:
            ctx = cv.get(None)
            if ctx is None or ctx.request is proxy._get_current_object():
                get = cv.get

                def from_context() -> Any:
                    return get().request

                return from_context
        except Exception as exc:  # a layout lagless does not know: the public way
            report_internal_error("flask:request-context", exc)
    getter: Callable[[], Any] = proxy._get_current_object
    return getter


def _first_request() -> Any:
    """The first lookup: resolve the getter, then rebind :data:`_request` to it, so every
    later lookup is one call."""
    global _request
    _request = _resolve_request_getter()
    return _request()


#: The current ``flask.Request`` (see :func:`_resolve_request_getter`); rebound on first use.
_request: Callable[[], Any] = _first_request


def _dotted(fn: Any) -> str:
    fn = inspect.unwrap(fn)
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return f"{module}.{name}" if module else str(name)


def _timed_hook(fn: Callable[..., Any], runtime: Runtime) -> Callable[..., Any]:
    """``fn`` recording a ``middleware`` span per call (Flask calls hooks through
    ``ensure_sync``, so an ``async def`` hook must stay a coroutine function)."""
    name = _dotted(fn)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_hook(*args: Any, **kwargs: Any) -> Any:
            trace = _current_trace.get()
            if trace is None or not runtime.middleware_timing:
                return await fn(*args, **kwargs)
            start = _now()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                record(trace, "middleware", name, start, error=exc)
                raise
            trace.spans.append(Span("middleware", name, start, _now() - start))
            return result

        async_hook.__lagless_hook__ = True  # type: ignore[attr-defined]
        return async_hook

    @functools.wraps(fn)
    def hook(*args: Any, **kwargs: Any) -> Any:
        trace = _current_trace.get()
        if trace is None or not runtime.middleware_timing:
            return fn(*args, **kwargs)
        start = _now()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            record(trace, "middleware", name, start, error=exc)
            raise
        # Appended directly, as the handler span is (see dispatch_request): hooks run on
        # every request, and ``record``'s keyword call cost ~0.17 µs more each.
        trace.spans.append(Span("middleware", name, start, _now() - start))
        return result

    hook.__lagless_hook__ = True  # type: ignore[attr-defined]
    return hook


class _FlaskHooks:
    """What ``instrument_flask`` installs on one app; kept in ``app.extensions["lagless"]``."""

    def __init__(self, app: Flask, runtime: Runtime) -> None:
        self.app = app
        self.runtime = runtime
        self.hooks_wrapped = False
        self._lock = threading.Lock()
        self._handler_names: dict[str, str] = {}
        self._preprocess = app.preprocess_request
        self._dispatch = app.dispatch_request
        self._process_response = app.process_response
        # Only when Flask's own wsgi_app is what lagless wraps can the body Flask built be the
        # body the server sends (a WSGI middleware in between may rewrite it).
        direct = getattr(app.wsgi_app, "__func__", None) is getattr(type(app), "wsgi_app", None)
        self.middleware = LaglessWSGIMiddleware(app.wsgi_app, runtime=runtime, framework="flask")
        self.middleware.complete_bodies = direct
        app.wsgi_app = self.middleware  # type: ignore[method-assign]
        # Instance attributes shadow the methods for this app only.
        app.preprocess_request = self.preprocess_request  # type: ignore[method-assign]
        app.dispatch_request = self.dispatch_request  # type: ignore[method-assign]
        app.process_response = self.process_response  # type: ignore[method-assign]

    # -- hook points ---------------------------------------------------------------------------

    def preprocess_request(self) -> Any:
        if not self.hooks_wrapped:
            self._wrap_hooks()
        trace = _current_trace.get()
        if trace is not None:
            try:
                req = _request()
                rule = req.url_rule
                if rule is not None:
                    trace.route = flask_route_template(rule.rule)
                    # The handler's name too, while the rule is at hand: the handler span
                    # then needs no second request lookup (a request a ``before_request``
                    # function answers never reaches the view, and leaves it unread).
                    if req.routing_exception is None:
                        trace._handler = self._handler_name(rule.endpoint)
            except Exception as exc:
                report_internal_error("flask:route", exc)
        return self._preprocess()

    def process_response(self, response: Any) -> Any:
        """After the ``after_request`` functions: note a fully built body's size, so the trace
        can end when ``wsgi_app`` returns. Werkzeug's test client reads a body only when the
        test does; a test asserting on the status alone would otherwise leave its trace
        unfinished, and the pytest plugin would see no request."""
        response = self._process_response(response)
        try:
            trace = _current_trace.get()
            if trace is not None and not response.is_streamed:
                # Read off the trace, not the request: the method is the environ's, and
                # the size goes to the middleware in a trace slot (no request lookup).
                if trace.method.upper() == "HEAD" or response.status_code in (204, 304):
                    size = 0  # werkzeug sends no body for these
                else:
                    body = response.response
                    if type(body) is list and len(body) == 1 and type(body[0]) is bytes:
                        # What ``set_data`` leaves (every jsonify/str/bytes return): its length
                        # is the size; ``calculate_content_length`` walks six Python calls
                        # (``iter_encoded``, a generator, ``sum``) to say the same.
                        size = len(body[0])
                    else:
                        size = response.calculate_content_length() or 0
                trace._body_bytes = size
        except Exception as exc:
            report_internal_error("flask:response", exc)
        return response

    def dispatch_request(self) -> Any:
        trace = _current_trace.get()
        if trace is None:
            return self._dispatch()
        name = trace._handler  # named by preprocess_request
        if name is None:
            # ``dispatch_request`` called without ``preprocess_request`` first (a test or an
            # extension driving Flask by hand): ask the request.
            try:
                req = _request()
                rule = req.url_rule
                if rule is not None and req.routing_exception is None:
                    name = self._handler_name(rule.endpoint)
            except Exception as exc:
                report_internal_error("flask:handler", exc)
        if name is None:
            return self._dispatch()
        start = _now()
        try:
            result = self._dispatch()
        except BaseException as exc:
            record(trace, "handler", name, start, error=exc)
            raise
        # The success path appends its span directly: ``record(...)`` is a keyword call
        # that builds a kwargs dict, then ``add_span``: ~0.39 -> ~0.22 µs (micro). The
        # ``max_spans`` cap still holds: ``Runtime.finish_trace`` trims spans appended
        # this way.
        trace.spans.append(Span("handler", name, start, _now() - start))
        return result

    # -- helpers -------------------------------------------------------------------------------

    def _handler_name(self, endpoint: str) -> str:
        name = self._handler_names.get(endpoint)
        if name is None:
            view = self.app.view_functions.get(endpoint)
            name = _dotted(view) if view is not None else endpoint
            self._handler_names[endpoint] = name
        return name

    def _wrap_hooks(self) -> None:
        with self._lock:
            if self.hooks_wrapped:
                return
            try:
                app = self.app
                registries: tuple[dict[Any, list[Any]], ...] = (
                    app.before_request_funcs,
                    app.after_request_funcs,
                    app.teardown_request_funcs,
                )
                for registry in registries:
                    for funcs in registry.values():
                        for i, fn in enumerate(funcs):
                            if not getattr(fn, "__lagless_hook__", False):
                                funcs[i] = _timed_hook(fn, self.runtime)
            except Exception as exc:
                report_internal_error("flask:wrap-hooks", exc)
            self.hooks_wrapped = True


def instrument_flask(app: Any, *, runtime: Runtime) -> Any:
    """Trace every request of a Flask ``app`` and return the same app object.

    Idempotent. Prefer :func:`lagless.instrument`, which also installs the driver integrations.
    """
    state = app.extensions.get(_STATE_KEY)
    if isinstance(state, _FlaskHooks):
        return app
    app.extensions[_STATE_KEY] = _FlaskHooks(app, runtime)
    app.__lagless_instrumented__ = True
    return app


class Lagless:
    """The Flask extension, for the usual extension patterns::

        lagless_ext = Lagless(app)

        # or, with an application factory
        lagless_ext = Lagless()

        def create_app():
            app = Flask(__name__)
            lagless_ext.init_app(app)
            return app

    ``settings`` are lagless settings applied process-wide (see ``lagless config``);
    ``integrations=False`` leaves the driver integrations (sqlite3, SQLAlchemy, redis...)
    uninstalled.
    """

    def __init__(self, app: Flask | None = None, *, integrations: bool = True, **settings: Any):
        self.integrations = integrations
        self.settings = settings
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        rt = get_runtime()
        if self.settings:
            rt.configure(**self.settings)
        if self.integrations:
            cfg = rt.config
            install_integrations(cfg.integrations, exclude=cfg.disabled_integrations)
        instrument_flask(app, runtime=rt)
