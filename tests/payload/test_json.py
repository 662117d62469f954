from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import PurePosixPath

import msgspec
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, defer

from lagless._trace import Trace, _current_trace
from lagless.payload import Serializer, UnsupportedType, dumps, dumps_msgpack, loads
from tests.payload.models import (
    Base,
    DItem,
    DjAuthor,
    DjBook,
    DOwner,
    PItem,
    POwner,
    SAItem,
    SAOwner,
    SItem,
    SOwner,
)

UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
WHEN = dt.datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=dt.UTC)


def both(obj: object) -> tuple[object, object]:
    """``obj`` through JSON and MessagePack, decoded back to builtins."""
    return loads(dumps(obj)), msgspec.msgpack.decode(dumps_msgpack(obj))


class Color(enum.Enum):
    RED = "red"


class Handle:
    def __json__(self) -> dict[str, int]:
        return {"handle": 7}


def test_builtin_and_stdlib_types_round_trip() -> None:
    value = {
        "int": 1,
        "float": 1.5,
        "none": None,
        "bool": True,
        "str": "héllo",
        "list": [1, 2],
        "tuple": (3, 4),
        "set": {5},
        "uuid": UID,
        "decimal": Decimal("19.99"),
        "datetime": WHEN,
        "date": dt.date(2024, 5, 6),
        "time": dt.time(7, 8, 9),
        "timedelta": dt.timedelta(seconds=90),
        "enum": Color.RED,
        "path": PurePosixPath("/a/b"),
        "custom": Handle(),
    }
    as_json = loads(dumps(value))
    assert as_json == {
        "int": 1,
        "float": 1.5,
        "none": None,
        "bool": True,
        "str": "héllo",
        "list": [1, 2],
        "tuple": [3, 4],
        "set": [5],
        "uuid": str(UID),
        "decimal": "19.99",
        "datetime": "2024-05-06T07:08:09.123000Z",
        "date": "2024-05-06",
        "time": "07:08:09",
        "timedelta": "PT90S",
        "enum": "red",
        "path": "/a/b",
        "custom": {"handle": 7},
    }
    packed = msgspec.msgpack.decode(dumps_msgpack(value))
    assert packed["uuid"] == str(UID)
    assert packed["decimal"] == "19.99"
    assert packed["datetime"] == WHEN  # MessagePack timestamp extension
    assert packed["custom"] == {"handle": 7}


def test_decimal_as_number_when_asked() -> None:
    assert Serializer(decimal_format="number").json({"p": Decimal("1.25")}) == b'{"p":1.25}'


def test_str_subclasses_and_lazy_strings() -> None:
    from django.utils.translation import gettext_lazy
    from rest_framework.exceptions import ErrorDetail

    body = dumps({"e": ErrorDetail("bad", code="invalid"), "l": gettext_lazy("Hello")})
    assert loads(body) == {"e": "bad", "l": "Hello"}


def test_pydantic_models_round_trip() -> None:
    item = PItem(
        id=1,
        name="a",
        price=Decimal("2.50"),
        uid=UID,
        created=WHEN,
        owner=POwner(id=9, email="o@x.io"),
        tags=["t"],
    )
    expected = {
        "id": 1,
        "name": "a",
        "price": "2.50",
        "uid": str(UID),
        "created": "2024-05-06T07:08:09.123000Z",
        "owner": {"id": 9, "email": "o@x.io"},
        "tags": ["t"],
    }
    as_json, packed = both([item])
    assert as_json == [expected]
    assert PItem.model_validate(as_json[0]) == item  # what went out parses back to the model
    assert isinstance(packed, list) and packed[0]["owner"] == {"id": 9, "email": "o@x.io"}


def test_msgspec_structs_and_dataclasses_round_trip() -> None:
    s = SItem(id=1, name="a", owner=SOwner(id=2, email="e"), created=WHEN)
    as_json, packed = both(s)
    assert msgspec.convert(as_json, SItem) == s
    assert msgspec.convert(packed, SItem) == s
    d = DItem(id=1, name="a", owner=DOwner(id=2, email="e"))
    assert both(d) == ({"id": 1, "name": "a", "owner": {"id": 2, "email": "e"}},) * 2


@pytest.fixture
def sa_session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        owner = SAOwner(id=1, email="o@x.io")
        session.add_all(
            [owner, SAItem(id=1, name="first", created=WHEN.replace(tzinfo=None), owner=owner)]
        )
        session.commit()
        yield session
    engine.dispose()


def test_sqlalchemy_orm_objects_use_loaded_columns_only(sa_session: Session) -> None:
    item = sa_session.scalars(select(SAItem)).one()
    # The relationship is not followed (no lazy load from inside the serializer).
    assert both(item)[0] == {
        "id": 1,
        "name": "first",
        "created": "2024-05-06T07:08:09.123000",
        "owner_id": 1,
    }
    sa_session.expunge_all()
    deferred = sa_session.scalars(select(SAItem).options(defer(SAItem.name))).one()
    assert "name" not in loads(dumps(deferred))


def test_sqlalchemy_rows_round_trip(sa_session: Session) -> None:
    rows = sa_session.execute(select(SAItem.id, SAItem.name)).all()
    assert both(rows) == ([{"id": 1, "name": "first"}],) * 2


@pytest.fixture
def django_books() -> Iterator[None]:
    from django.db import connection

    with connection.schema_editor() as editor:
        editor.create_model(DjAuthor)
        editor.create_model(DjBook)
    try:
        author = DjAuthor.objects.create(name="Ann")
        DjBook.objects.create(
            title="T", price=Decimal("9.90"), published=dt.date(2020, 1, 2), author=author
        )
        yield
    finally:
        with connection.schema_editor() as editor:
            editor.delete_model(DjBook)
            editor.delete_model(DjAuthor)


def test_django_model_instances_use_concrete_fields(django_books: None) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    book = DjBook.objects.get()
    with CaptureQueriesContext(connection) as queries:
        as_json, packed = both(book)
    assert as_json == {
        "id": book.id,
        "title": "T",
        "price": "9.90",
        "published": "2020-01-02",
        "author_id": book.author_id,
    }
    assert packed == as_json
    assert len(queries) == 0  # the foreign key is written as its id: no query
    partial = DjBook.objects.only("id", "title").get()
    with CaptureQueriesContext(connection) as queries:
        assert loads(dumps(partial)) == {"id": book.id, "title": "T"}
    assert len(queries) == 0  # deferred fields are left out rather than loaded


def test_unknown_types_fail_with_a_clear_message() -> None:
    class Opaque:
        pass

    with pytest.raises(UnsupportedType, match=r"test_json\..*Opaque"):
        dumps({"x": Opaque()})


def test_serialization_is_recorded_as_a_span_when_a_trace_is_active() -> None:
    assert dumps([1]) == b"[1]"  # no trace: nothing to record, nothing fails
    trace = Trace("GET", "/x")
    token = _current_trace.set(trace)
    try:
        body = dumps({"a": [1, 2, 3]})
        packed = dumps_msgpack({"a": 1})
    finally:
        _current_trace.reset(token)
    spans = trace.spans_of("serialize")
    assert [(s.name, s.get("format"), s.get("bytes")) for s in spans] == [
        ("json", "json", len(body)),
        ("msgpack", "msgpack", len(packed)),
    ]
    assert all(s.duration_ns >= 0 for s in spans)
