"""Flask: a JSON provider (every ``jsonify`` and dict return goes through msgspec) and a
negotiating response helper."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask.json.provider import JSONProvider

from lagless.payload._json import default_serializer, loads
from lagless.payload._respond import render_payload


class LaglessJSONProvider(JSONProvider):
    """Flask's JSON, encoded by msgspec with lagless's type support::

        app.json = LaglessJSONProvider(app)

    Unlike Flask's default provider it does not sort keys (sorting costs time on every
    response, and JSON objects are unordered anyway) and writes compact JSON.
    """

    mimetype = "application/json"

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return default_serializer().json(obj).decode("utf-8")

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        # Bytes straight into the response: no str round trip as jsonify -> dumps would do.
        response_class: Any = self._app.response_class
        response: Response = response_class(default_serializer().json(obj), mimetype=self.mimetype)
        return response


def fast_response(
    content: Any,
    status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    sparse: Any = False,
    msgpack: bool = True,
) -> Response:
    """JSON or MessagePack for the current Flask request's ``Accept`` (``Vary: Accept``),
    optionally trimmed to ``?fields=`` (see :class:`lagless.payload.FastResponse`)::

        @app.get("/items")
        def items():
            return fast_response(load_items(), sparse=True)
    """
    rendered = render_payload(
        content,
        accept=request.headers.get("Accept"),
        fields=request.args.get("fields"),
        sparse=sparse,
        status=status,
        msgpack=msgpack,
    )
    response: Response = current_app.response_class(
        rendered.body, status=rendered.status, headers=headers, content_type=rendered.media_type
    )
    if msgpack:
        response.vary.add("Accept")
    return response
