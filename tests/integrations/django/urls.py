"""URLs for the Django tests: path() and re_path() routes, an include() with a prefix."""

from __future__ import annotations

from django.urls import include, path, re_path

from tests.integrations.django import views

api_patterns = [
    path("items/<slug:slug>/", views.item),
    re_path(r"^legacy/(?P<year>[0-9]{4})/$", views.article),
]

urlpatterns = [
    path("users/<int:pk>/", views.user),
    path("async/users/<int:pk>/", views.async_user),
    path("api/v1/", include(api_patterns)),
    re_path(r"^articles/(?P<year>[0-9]{4})/$", views.article),
    path("books/", views.books),
    path("cbv/", views.BookView.as_view()),
    path("boom/", views.boom),
    path("bad-query/", views.bad_query),
    path("stream/", views.stream),
    path("async-stream/", views.async_stream),
    path("together/<int:pk>/", views.together),
    path("write-many/", views.write_many),
    path("with-timing/", views.with_timing),
    path("orm-and-driver/", views.orm_and_driver),
    path("short-circuit/", views.item, {"slug": "never"}),
]
