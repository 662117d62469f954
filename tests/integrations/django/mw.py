"""Middleware used by the Django tests, in each of Django's styles."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpResponse
from django.utils.deprecation import MiddlewareMixin


class MixinMiddleware(MiddlewareMixin):
    """Old-style hooks through ``MiddlewareMixin`` (sync and async capable)."""

    def process_request(self, request: Any) -> None:
        request.seen_by_mixin = True

    def process_response(self, request: Any, response: HttpResponse) -> HttpResponse:
        response["X-Mixin"] = "1"
        return response


class NewStyleMiddleware:
    """A plain class holding ``get_response`` (sync only, as most user middleware is)."""

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        if request.path == "/short-circuit/":
            return HttpResponse("answered by middleware", status=403)
        return self.get_response(request)


class AsyncMiddleware:
    """Sync and async capable, in Django's documented shape."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        return await self.get_response(request)


def function_middleware(get_response: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Function-based, in the shape of Django's documentation: ``get_response`` in a closure."""

    def middleware(request: Any) -> Any:
        return get_response(request)

    return middleware


def opaque_middleware(app: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Keeps the next step under another name: lagless cannot follow it inside."""

    def middleware(request: Any) -> Any:
        return app(request)

    return middleware
