"""Django configured (only if no other test folder did it first) so Django model instances and
DRF renderers can be tested; the tests here use RequestFactory and ``override_settings``, so they
work with whichever folder's settings won."""

from __future__ import annotations

import pytest

pytest.importorskip("django")

import django
from django.apps import apps
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="lagless-payload-tests-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="tests.payload.django_urls",
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": "file:lagless_payload_tests?mode=memory&cache=shared",
            }
        },
        USE_TZ=True,
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
if not apps.ready:
    django.setup()
