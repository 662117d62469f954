"""Integrations: one module per framework, driver or client, each a small object with an
idempotent ``install()`` and an ``uninstall()``.

``install_integrations()`` installs every integration whose library is importable (or the ones
named in the ``integrations`` setting); the framework middleware calls it when it is set up.
A missing or too-old library is reported by ``install()`` as
:class:`~lagless.errors.IntegrationNotAvailable`, never as an ImportError at import time.
"""

from __future__ import annotations

from lagless.integrations._base import (
    INTEGRATIONS,
    MIN_VERSIONS,
    Integration,
    get_integration,
    install_integrations,
    installed_integrations,
    uninstall_integrations,
)

__all__ = [
    "INTEGRATIONS",
    "MIN_VERSIONS",
    "Integration",
    "get_integration",
    "install_integrations",
    "installed_integrations",
    "uninstall_integrations",
]
