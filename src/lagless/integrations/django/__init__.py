"""Django: the request middleware and the ORM capture.

- :mod:`lagless.integrations.django.middleware` holds ``LaglessMiddleware`` (sync and async),
  which users list first in ``MIDDLEWARE`` as ``"lagless.django.LaglessMiddleware"``;
- :mod:`lagless.integrations.django.db` holds ``DjangoDBIntegration`` (registry name
  ``"django"``), which records every query through ``connection.execute_wrapper``.

A subpackage because Django has two separate hook points, like sentry-python's ``django/``.
Nothing here imports Django until one of those modules is imported.
"""

from __future__ import annotations
