from __future__ import annotations

from django.db import models


class Book(models.Model):
    """Declared with an explicit ``app_label`` so it works whether or not this app is in
    ``INSTALLED_APPS`` (another test folder may have configured Django first)."""

    title = models.CharField(max_length=100)
    pages = models.IntegerField(default=0)

    class Meta:
        app_label = "lagless_testapp"
        db_table = "testapp_book"
