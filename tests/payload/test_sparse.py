from __future__ import annotations

import pytest

from lagless.payload import FieldsError, apply_fields, parse_fields
from tests.payload.models import DItem, DOwner, PItem, SItem, SOwner


def test_parse() -> None:
    assert parse_fields(None) is None
    assert parse_fields("  ") is None
    assert parse_fields("a, b,c.d,c.e") == {"a": {}, "b": {}, "c": {"d": {}, "e": {}}}
    assert parse_fields("c.d,c") == {"c": {}}  # the whole of c wins
    assert parse_fields("c,c.d.e") == {"c": {}}


@pytest.mark.parametrize("bad", ["a,,b", "a.", "1abc", "a b", "a.b.c.d.e.f.g.h.i", "a;b"])
def test_parse_rejects_bad_syntax(bad: str) -> None:
    with pytest.raises(FieldsError) as info:
        parse_fields(bad)
    assert info.value.status == 400


def test_parse_bounds_the_request() -> None:
    with pytest.raises(FieldsError, match="too many"):
        parse_fields(",".join(f"f{i}" for i in range(300)))


ITEMS = [
    {"id": 1, "name": "a", "owner": {"id": 7, "email": "x@y"}, "big": "x" * 1000},
    {"id": 2, "name": "b", "owner": {"id": 8, "email": "z@y"}, "big": "y" * 1000},
]


def test_trims_dicts_and_lists() -> None:
    out = apply_fields(ITEMS, parse_fields("id,owner.email"))
    assert out == [{"id": 1, "owner": {"email": "x@y"}}, {"id": 2, "owner": {"email": "z@y"}}]
    assert apply_fields(ITEMS, None) is ITEMS


def test_unknown_field_is_a_clear_400() -> None:
    with pytest.raises(FieldsError) as info:
        apply_fields(ITEMS, parse_fields("id,nme,owner.mail"))
    err = info.value
    assert err.status == 400
    assert err.unknown == ["nme", "owner.mail"]
    assert "big" in err.known
    assert err.detail["error"] == "invalid_fields"
    assert "'nme'" in str(err)


def test_sub_field_of_a_scalar_is_unknown() -> None:
    with pytest.raises(FieldsError) as info:
        apply_fields(ITEMS, parse_fields("id.x"))
    assert info.value.unknown == ["id.x"]


def test_optional_key_missing_from_some_items_is_fine() -> None:
    data = [{"id": 1, "note": "n"}, {"id": 2}]
    assert apply_fields(data, parse_fields("note")) == [{"note": "n"}, {}]


class Exploding:
    """Reading ``big`` would be the expensive part the client did not ask for."""


def test_objects_are_trimmed_before_serialization() -> None:
    read: list[str] = []

    class Lazy(DItem):
        def __getattribute__(self, name: str) -> object:
            if not name.startswith("_"):
                read.append(name)
            return super().__getattribute__(name)

    item = Lazy(id=1, name="a", owner=DOwner(id=2, email="e"))
    assert apply_fields([item], parse_fields("id")) == [{"id": 1}]
    assert "name" not in read and "owner" not in read


def test_structs_and_pydantic_models() -> None:
    s = SItem(id=1, name="a", owner=SOwner(id=2, email="e"), created=None)  # type: ignore[arg-type]
    assert apply_fields(s, parse_fields("name,owner.id")) == {"name": "a", "owner": {"id": 2}}
    with pytest.raises(FieldsError):
        apply_fields(s, parse_fields("nope"))


def test_model_check_holds_for_empty_lists() -> None:
    assert apply_fields([], parse_fields("id,owner.email"), model=list[PItem]) == []
    with pytest.raises(FieldsError) as info:
        apply_fields([], parse_fields("id,owner.nope"), model=list[PItem])
    assert info.value.unknown == ["owner.nope"]
    with pytest.raises(FieldsError) as info:
        apply_fields([], parse_fields("name.x"), model=list[PItem])
    assert info.value.unknown == ["name.x"]
    with pytest.raises(FieldsError):
        apply_fields([], parse_fields("zzz"), model=list[DItem])
