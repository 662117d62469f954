"""`lagless doctor --django SETTINGS` on a small Django project, in a subprocess (Django's
settings are process-wide, and other tests configure their own)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("django")

SETTINGS = """
SECRET_KEY = "test"
DEBUG = True
ALLOWED_HOSTS = ["localhost"]
ROOT_URLCONF = "shopsite.urls"
INSTALLED_APPS = []
MIDDLEWARE = []
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": {db!r}}}}}
USE_TZ = True
"""

URLS = """
from django.db import connection
from django.http import JsonResponse
from django.urls import path


def authors(request):
    with connection.cursor() as cur:
        cur.execute("SELECT id, name FROM author")
        rows = cur.fetchall()
        out = []
        for author_id, name in rows:
            cur.execute("SELECT count(*) FROM book WHERE author_id = %s", [author_id])
            out.append({"name": name, "books": cur.fetchone()[0]})
    return JsonResponse(out, safe=False)


def author(request, pk):
    return JsonResponse({"id": pk})


urlpatterns = [path("authors/", authors), path("authors/<int:pk>/", author)]
"""


def test_doctor_on_a_django_project(tmp_path: Path) -> None:
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE author (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE book (id INTEGER PRIMARY KEY, author_id INTEGER)")
    conn.executemany("INSERT INTO author VALUES (?, ?)", [(i, f"a{i}") for i in range(8)])
    conn.executemany("INSERT INTO book VALUES (?, ?)", [(i, i % 8) for i in range(40)])
    conn.commit()
    conn.close()
    pkg = tmp_path / "shopsite"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "settings.py").write_text(SETTINGS.format(db=str(db)))
    (pkg / "urls.py").write_text(URLS)
    (tmp_path / "scenario.toml").write_text("[params]\npk = 3\n")
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "lagless",
            "doctor",
            "--django",
            "shopsite.settings",
            "--scenario",
            "scenario.toml",
            "--runs",
            "2",
            "--quiet",
            "--json",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    routes = {(r["method"], r["route"]): r for r in doc["routes"]}
    assert {key[1] for key in routes} == {"/authors/", "/authors/<int:pk>/"} or {
        key[1] for key in routes
    } == {"/authors/", "/authors/{pk}/"}
    assert all(r["requests"] == 2 for r in routes.values())
    # 9 of the view, plus the statements Django runs on each new connection (CONN_MAX_AGE=0)
    assert routes["GET", "/authors/"]["queries_per_request"] >= 9
    assert "n-plus-one" in {f["code"] for f in doc["findings"]}
