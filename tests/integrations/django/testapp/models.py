from __future__ import annotations

from django.db import models


class Book(models.Model):
    title = models.CharField(max_length=100)
    pages = models.IntegerField(default=0)

    class Meta:
        app_label = "testapp"
