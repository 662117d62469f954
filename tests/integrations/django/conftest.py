"""Django for these tests. Settings are configured here only if no other test folder did it
first (one process, one ``settings``); everything these tests depend on -- URLs, middleware,
allowed hosts -- is applied per test with ``override_settings``, so they pass whichever folder's
settings won. The only database needed is an SQLite ``default``: here an in-memory one shared by
every thread (shared-cache URI, so the async client's worker threads see the same tables)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("django")

import django
from django.apps import apps
from django.conf import settings

from lagless._runtime import Runtime

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="lagless-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.integrations.django.urls",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "file:lagless_django_tests?mode=memory&cache=shared",
            }
        },
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
if not apps.ready:
    django.setup()

MIDDLEWARE = [
    "lagless.django.LaglessMiddleware",
    "django.middleware.common.CommonMiddleware",
    "tests.integrations.django.mw.MixinMiddleware",
    "tests.integrations.django.mw.NewStyleMiddleware",
]


@pytest.fixture(scope="session", autouse=True)
def _schema() -> Iterator[None]:
    """Create the test model's table; the main thread's connection stays open so a shared
    in-memory database lives for the whole session."""
    from django.db import connection

    from tests.integrations.django.testapp.models import Book

    if connection.vendor != "sqlite":  # pragma: no cover - another folder's settings won
        pytest.skip("these tests need an SQLite default database")
    with connection.schema_editor() as editor:
        editor.create_model(Book)
    Book.objects.bulk_create([Book(title=f"book {i}", pages=10 * i) for i in range(1, 6)])
    yield
    with connection.schema_editor() as editor:
        editor.delete_model(Book)


@pytest.fixture(autouse=True)
def _django_settings(fresh_runtime: Runtime) -> Iterator[Runtime]:
    """Our URLs and middleware for each test, and only the ORM integration installed unless a
    test asks for more (the driver integrations are tested in their own folders)."""
    from django.test import override_settings

    fresh_runtime.configure(integrations=["django"])
    with override_settings(
        ROOT_URLCONF="tests.integrations.django.urls",
        MIDDLEWARE=MIDDLEWARE,
        ALLOWED_HOSTS=["*"],
        DEBUG=False,
    ):
        yield fresh_runtime
