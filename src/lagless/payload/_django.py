"""Django: a negotiating response, and the
compression and static-files middlewares (sync and async capable).

Settings read by the middlewares (all optional)::

    LAGLESS_COMPRESSION = {"minimum_size": 500, "codings": ["zstd", "br", "gzip"],
                           "levels": {"zstd": 3}}
    LAGLESS_STATIC_ROOT = BASE_DIR / "build/static"   # default: STATIC_ROOT
    LAGLESS_STATIC_PREFIX = "/static/"                # default: STATIC_URL
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils.cache import patch_vary_headers

from lagless.payload._compress_middleware import _Options
from lagless.payload._compression import Compressor, decide
from lagless.payload._respond import render_payload
from lagless.payload._static import StaticFiles
from lagless.payload._static_apps import _file_chunks


class DjangoFastResponse(HttpResponse):  # type: ignore[misc]
    """JSON or MessagePack for ``request``'s ``Accept`` (``Vary: Accept``), optionally trimmed
    to ``?fields=`` (see :class:`lagless.payload.FastResponse`)::

        def items(request):
            return DjangoFastResponse(list(Item.objects.all()), request=request, sparse=True)

    Model instances are written from their concrete fields (foreign keys as ``<name>_id``, no
    query). Without ``request`` it is a fast ``JsonResponse``.
    """

    def __init__(
        self,
        data: Any,
        *,
        request: HttpRequest | None = None,
        sparse: Any = False,
        msgpack: bool = True,
        status: int = 200,
        **kwargs: Any,
    ) -> None:
        accept = request.headers.get("Accept") if request is not None else None
        fields = request.GET.get("fields") if request is not None else None
        rendered = render_payload(
            data, accept=accept, fields=fields, sparse=sparse, status=status, msgpack=msgpack
        )
        kwargs.setdefault("content_type", rendered.media_type)
        super().__init__(rendered.body, status=rendered.status, **kwargs)
        if msgpack:
            patch_vary_headers(self, ("Accept",))


GetResponse = Callable[[HttpRequest], Any]


class _DjangoMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._acall(request)
        early = self.before(request)
        if early is not None:
            return early
        return self.after(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        early = self.before(request)
        if early is not None:
            return early
        return self.after(request, await self.get_response(request))

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        return response


def _compress_sync(chunks: Iterator[bytes], comp: Compressor) -> Iterator[bytes]:
    for chunk in chunks:
        if chunk:
            yield comp.compress(chunk) + comp.flush()
    yield comp.finish()


async def _compress_async(chunks: AsyncIterator[bytes], comp: Compressor) -> AsyncIterator[bytes]:
    async for chunk in chunks:
        if chunk:
            yield comp.compress(chunk) + comp.flush()
    yield comp.finish()


class DjangoCompressionMiddleware(_DjangoMiddleware):
    """zstd / brotli / gzip for Django, in place of ``django.middleware.gzip.GZipMiddleware``;
    near the top of ``MIDDLEWARE`` (below anything that reads the uncompressed body)::

        MIDDLEWARE = ["lagless.payload.DjangoCompressionMiddleware", ...]
    """

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        conf = getattr(settings, "LAGLESS_COMPRESSION", None) or {}
        try:
            self.options = _Options(
                int(conf.get("minimum_size", 500)),
                conf.get("codings", ("zstd", "br", "gzip")),
                conf.get("levels"),
            )
        except ValueError as exc:
            raise ImproperlyConfigured(f"LAGLESS_COMPRESSION: {exc}") from None

    def after(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        streaming = getattr(response, "streaming", False)
        body = b"" if streaming else response.content
        decision = decide(
            method=request.method or "GET",
            status=response.status_code,
            headers=list(response.items()),
            accept_encoding=request.META.get("HTTP_ACCEPT_ENCODING"),
            body_length=None if streaming else len(body),
            codings=self.options.codings,
            minimum_size=self.options.minimum_size,
        )
        if decision.headers is None:
            return response
        for name in list(response.headers):
            del response.headers[name]
        for name, value in decision.headers:
            response.headers[name] = value
        coding = decision.coding
        if coding is None:
            return response
        if isinstance(response, StreamingHttpResponse):
            comp = self.options.stream(coding)
            if response.is_async:
                response.streaming_content = _compress_async(response.streaming_content, comp)
            else:
                response.streaming_content = _compress_sync(response.streaming_content, comp)
            return response
        packed = self.options.one_shot(body, coding)
        response.content = packed
        response.headers["Content-Length"] = str(len(packed))
        return response


class DjangoStaticMiddleware(_DjangoMiddleware):
    """Serve ``LAGLESS_STATIC_ROOT`` (default ``STATIC_ROOT``) under ``LAGLESS_STATIC_PREFIX``
    (default ``STATIC_URL``), first in ``MIDDLEWARE`` so a static hit costs no other
    middleware; hashed names get immutable caching, see ``lagless static build``."""

    def __init__(self, get_response: GetResponse) -> None:
        super().__init__(get_response)
        root = getattr(settings, "LAGLESS_STATIC_ROOT", None) or getattr(
            settings, "STATIC_ROOT", None
        )
        if not root:
            raise ImproperlyConfigured(
                "DjangoStaticMiddleware needs LAGLESS_STATIC_ROOT or STATIC_ROOT"
            )
        prefix = (
            getattr(settings, "LAGLESS_STATIC_PREFIX", None) or settings.STATIC_URL or "/static/"
        )
        self.prefix = "/" + str(prefix).strip("/")
        self.files = StaticFiles(root)

    def before(self, request: HttpRequest) -> HttpResponseBase | None:
        path = request.path_info
        prefix = self.prefix
        if not (path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == "/"):
            return None
        entry = self.files.lookup(path[len(prefix) :])
        if entry is None:
            return None
        plan = self.files.respond(entry, request.method or "GET", _lower_headers(request))
        response: HttpResponseBase
        if plan.data is not None or plan.path is None:
            response = HttpResponse(plan.data or b"", status=plan.status)
        else:
            response = StreamingHttpResponse(
                _file_chunks(plan.path, plan.offset, plan.length), status=plan.status
            )
        if not any(name == "content-type" for name, _ in plan.headers):
            del response.headers["Content-Type"]  # 304/416/405: no body, no type
        for name, value in plan.headers:
            response.headers[name] = value
        return response


def _lower_headers(request: HttpRequest) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}
