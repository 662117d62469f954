"""The integration contract and the registry of integrations."""

from __future__ import annotations

import abc
import importlib
import importlib.util
import logging
import re
import threading
from collections.abc import Iterable
from typing import ClassVar

from lagless._guard import report_internal_error
from lagless.errors import IntegrationNotAvailable

logger = logging.getLogger("lagless")

#: Minimum supported version of each library, by distribution name. The one table.
MIN_VERSIONS: dict[str, tuple[int, ...]] = {
    "sqlalchemy": (2, 0),
    "django": (4, 2),
    "flask": (2, 3),
    "starlette": (0, 37),
    "fastapi": (0, 110),
    "litestar": (2, 8),
    "psycopg": (3, 1),
    "psycopg-pool": (3, 2),
    "asyncpg": (0, 29),
    "redis": (5, 0),
    "httpx": (0, 27),
    "requests": (2, 31),
}

#: Driver and client integrations installed by ``install_integrations()``: name -> "module:Class".
#: Framework integrations (ASGI, WSGI, Flask, Django middleware) are set up by ``instrument``.
INTEGRATIONS: dict[str, str] = {
    "sqlite3": "lagless.integrations.sqlite3:SQLite3Integration",
    "sqlalchemy": "lagless.integrations.sqlalchemy:SQLAlchemyIntegration",
    "django": "lagless.integrations.django.db:DjangoDBIntegration",
    "psycopg": "lagless.integrations.psycopg:PsycopgIntegration",
    "asyncpg": "lagless.integrations.asyncpg:AsyncpgIntegration",
    "redis": "lagless.integrations.redis:RedisIntegration",
    "httpx": "lagless.integrations.httpx:HttpxIntegration",
    "requests": "lagless.integrations.requests:RequestsIntegration",
}


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


class Integration(abc.ABC):
    """Base of every integration. Subclasses set ``name``, ``module`` (what must import) and
    ``distribution`` (whose version ``MIN_VERSIONS`` checks), and implement ``_install`` and
    ``_uninstall``. ``install``/``uninstall`` are idempotent and thread-safe."""

    name: ClassVar[str]
    module: ClassVar[str]
    distribution: ClassVar[str | None] = None

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.installed = False

    @classmethod
    def is_available(cls) -> bool:
        try:
            return importlib.util.find_spec(cls.module) is not None
        except (ImportError, ValueError):
            return False

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`IntegrationNotAvailable` if the library is missing or too old."""
        if not cls.is_available():
            raise IntegrationNotAvailable(
                f"the {cls.name} integration is not available: {cls.module!r} is not installed"
            )
        dist = cls.distribution
        if dist and dist in MIN_VERSIONS:
            try:
                # Imported here: importlib.metadata costs ~15 ms at start-up, and only an
                # integration's install needs it.
                import importlib.metadata

                version = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                return
            if _version_tuple(version) < MIN_VERSIONS[dist]:
                need = ".".join(map(str, MIN_VERSIONS[dist]))
                raise IntegrationNotAvailable(
                    f"the {cls.name} integration needs {dist} >= {need}, found {version}"
                )

    def install(self) -> None:
        with self._lock:
            if self.installed:
                return
            self.check_available()
            try:
                self._install()
            except IntegrationNotAvailable:
                raise  # raised before anything is patched (Django not configured yet)
            except BaseException:
                # Half an install (some methods patched, not others) would stay in place with
                # ``installed`` false, out of reach of uninstall: undo what was done.
                try:
                    self._uninstall()
                except Exception as exc:
                    report_internal_error(f"install:{self.name}:rollback", exc)
                raise
            self.installed = True

    def uninstall(self) -> None:
        with self._lock:
            if not self.installed:
                return
            self._uninstall()
            self.installed = False

    @abc.abstractmethod
    def _install(self) -> None:
        """Patch or hook the library (called once, under the lock)."""

    @abc.abstractmethod
    def _uninstall(self) -> None:
        """Restore the library exactly as ``_install`` found it."""


_instances: dict[str, Integration] = {}
_registry_lock = threading.Lock()


def get_integration(name: str) -> Integration:
    """The process's single instance of the integration called ``name``."""
    with _registry_lock:
        inst = _instances.get(name)
        if inst is None:
            try:
                target = INTEGRATIONS[name]
            except KeyError:
                raise IntegrationNotAvailable(
                    f"no lagless integration called {name!r}; known: {', '.join(INTEGRATIONS)}"
                ) from None
            mod_name, _, cls_name = target.partition(":")
            cls = getattr(importlib.import_module(mod_name), cls_name)
            inst = cls()
            _instances[name] = inst
        return inst


def install_integrations(
    names: Iterable[str] | None = None, *, exclude: Iterable[str] = ()
) -> list[str]:
    """Install integrations; returns the names installed.

    ``names=None`` means every integration whose library is importable, skipping quietly the
    ones that are not (a named one that is unavailable raises). Integrations whose library needs
    configuring first (Django) install themselves only once that library is ready. In that
    automatic mode an integration that fails to install (a library version lagless does not
    know yet) is logged as an internal error and skipped: the application still starts, with
    the other integrations. A name in ``exclude`` that is no integration raises, so a typo in
    ``disabled_integrations`` cannot leave the integration it meant on.
    """
    excluded = set(exclude)
    unknown = sorted(excluded - set(INTEGRATIONS))
    if unknown:
        raise IntegrationNotAvailable(
            f"cannot exclude {', '.join(map(repr, unknown))}: no such lagless integration; "
            f"known: {', '.join(INTEGRATIONS)}"
        )
    explicit = names is not None
    done: list[str] = []
    for name in list(names) if names is not None else list(INTEGRATIONS):
        if name in excluded:
            continue
        integ = get_integration(name)
        if not explicit and not integ.is_available():
            continue
        try:
            integ.install()
        except IntegrationNotAvailable:
            if explicit:
                raise
            logger.debug("lagless: %s integration skipped", name, exc_info=True)
            continue
        except Exception as exc:
            if explicit:
                raise
            report_internal_error(f"install:{name}", exc)
            continue
        done.append(name)
    return done


def uninstall_integrations(names: Iterable[str] | None = None) -> None:
    """Remove integrations (default: all installed), restoring the patched libraries."""
    for name in list(names) if names is not None else list(_instances):
        inst = _instances.get(name)
        if inst is not None:
            inst.uninstall()


def installed_integrations() -> list[str]:
    return [name for name, inst in _instances.items() if inst.installed]
