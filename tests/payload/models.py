"""Real model classes for the round-trip tests: SQLAlchemy ORM, Django, Pydantic, msgspec."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import msgspec
from django.db import models as dj
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class SAOwner(Base):
    __tablename__ = "lagless_payload_owner"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(100))
    items: Mapped[list[SAItem]] = relationship(back_populates="owner")


class SAItem(Base):
    __tablename__ = "lagless_payload_item"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    created: Mapped[dt.datetime]
    owner_id: Mapped[int] = mapped_column(ForeignKey("lagless_payload_owner.id"))
    owner: Mapped[SAOwner] = relationship(back_populates="items")


class DjAuthor(dj.Model):
    name = dj.CharField(max_length=50)

    class Meta:
        app_label = "lagless_payload_tests"
        db_table = "lagless_payload_dj_author"


class DjBook(dj.Model):
    title = dj.CharField(max_length=50)
    price = dj.DecimalField(max_digits=8, decimal_places=2)
    published = dj.DateField()
    author = dj.ForeignKey(DjAuthor, on_delete=dj.CASCADE)

    class Meta:
        app_label = "lagless_payload_tests"
        db_table = "lagless_payload_dj_book"


class POwner(BaseModel):
    id: int
    email: str


class PItem(BaseModel):
    id: int
    name: str
    price: Decimal
    uid: uuid.UUID
    created: dt.datetime
    owner: POwner
    tags: list[str] = []


class SOwner(msgspec.Struct):
    id: int
    email: str


class SItem(msgspec.Struct):
    id: int
    name: str
    owner: SOwner
    created: dt.datetime


@dataclasses.dataclass
class DOwner:
    id: int
    email: str


@dataclasses.dataclass
class DItem:
    id: int
    name: str
    owner: DOwner
