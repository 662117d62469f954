"""Django configured once for these tests: an in-memory SQLite database shared by every thread
(shared-cache URI, so the async client's worker threads see the same tables), a test app with
one model, and lagless's middleware first in ``MIDDLEWARE``. A second alias, ``pg``, points at
the local PostgreSQL server and is only connected to by the test that needs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("django")

import django
from django.conf import settings

from tests._services import PG_DSN

if not settings.configured:
    from urllib.parse import urlsplit

    _pg = urlsplit(PG_DSN)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="lagless-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.integrations.django.urls",
        MIDDLEWARE=[
            "lagless.django.LaglessMiddleware",
            "django.middleware.common.CommonMiddleware",
            "tests.integrations.django.mw.MixinMiddleware",
            "tests.integrations.django.mw.NewStyleMiddleware",
        ],
        INSTALLED_APPS=["tests.integrations.django.testapp.apps.TestAppConfig"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "file:lagless_django_tests?mode=memory&cache=shared",
            },
            "pg": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": (_pg.path or "/test").lstrip("/"),
                "USER": _pg.username or "postgres",
                "PASSWORD": _pg.password or "",
                "HOST": _pg.hostname or "127.0.0.1",
                "PORT": str(_pg.port or 5432),
            },
        },
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


@pytest.fixture(scope="session", autouse=True)
def _schema() -> Iterator[None]:
    """Create the test model's table; the main thread's connection stays open so the shared
    in-memory database lives for the whole session."""
    from django.db import connection

    from tests.integrations.django.testapp.models import Book

    with connection.schema_editor() as editor:
        editor.create_model(Book)
    Book.objects.bulk_create([Book(title=f"book {i}", pages=10 * i) for i in range(1, 6)])
    yield
    with connection.schema_editor() as editor:
        editor.delete_model(Book)


@pytest.fixture(autouse=True)
def _only_django_integration(fresh_runtime):  # type: ignore[no-untyped-def]
    """Install only the ORM integration unless a test asks for more: the driver integrations are
    tested in their own folders."""
    fresh_runtime.configure(integrations=["django"])
    return fresh_runtime
