"""URLs for the Django payload tests (used through ``override_settings(ROOT_URLCONF=...)``)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path

from lagless.payload import DjangoFastResponse

BIG = (
    b'{"items": ['
    + b",".join(b'{"id": %d, "name": "item number %d"}' % (i, i) for i in range(200))
    + b"]}"
)


def big(request: HttpRequest) -> HttpResponse:
    return HttpResponse(BIG, content_type="application/json")


def stream(request: HttpRequest) -> StreamingHttpResponse:
    return StreamingHttpResponse((b"line %d\n" % i for i in range(300)), content_type="text/plain")


def items(request: HttpRequest) -> HttpResponse:
    data = [{"id": i, "name": f"n{i}", "owner": {"id": 1, "email": "a@b.c"}} for i in range(3)]
    return DjangoFastResponse(data, request=request, sparse=True)


urlpatterns = [path("big", big), path("stream", stream), path("items", items)]
