"""Django set-up, in one line of settings::

    MIDDLEWARE = [
        "lagless.django.LaglessMiddleware",  # first, so it times every other entry
        ...
    ]

The middleware traces each request (sync and async), times each ``MIDDLEWARE`` entry and the
view, adds the ``Server-Timing`` header, and installs the ORM and driver integrations the
settings ask for (see ``lagless config``).
"""

from __future__ import annotations

from lagless.integrations.django.middleware import LaglessMiddleware

__all__ = ["LaglessMiddleware"]
