"""The example shop's tables: authors, their books, and readers' reviews.

Indexes on the foreign keys exist in both modes (every ORM tutorial adds them); the indexes the
naive mode is missing on purpose (``books.isbn``, ``reviews.created_at``) are in
:data:`TUNED_INDEXES` and created only for the tuned database.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import Date, DateTime, ForeignKey, Index, Integer, Numeric, String, Text
from sqlalchemy.ext.asyncio import AsyncAttrs
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(AsyncAttrs, DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(60))
    bio: Mapped[str] = mapped_column(Text)

    books: Mapped[list[Book]] = relationship(back_populates="author")


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    title: Mapped[str] = mapped_column(String(200))
    isbn: Mapped[str] = mapped_column(String(20))
    genre: Mapped[str] = mapped_column(String(40))
    price: Mapped[Decimal] = mapped_column(Numeric(8, 2))
    published: Mapped[dt.date] = mapped_column(Date)
    pages: Mapped[int] = mapped_column(Integer)
    cover_url: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    # Catalogue details: a real shop's book row is wide, and list pages need few of them.
    subtitle: Mapped[str] = mapped_column(String(200))
    language: Mapped[str] = mapped_column(String(8))
    publisher: Mapped[str] = mapped_column(String(80))
    edition: Mapped[int] = mapped_column(Integer)
    format: Mapped[str] = mapped_column(String(20))
    weight_grams: Mapped[int] = mapped_column(Integer)
    height_mm: Mapped[int] = mapped_column(Integer)
    width_mm: Mapped[int] = mapped_column(Integer)
    depth_mm: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime)

    author: Mapped[Author] = relationship(back_populates="books")
    reviews: Mapped[list[Review]] = relationship(back_populates="book")

    __table_args__ = (Index("ix_books_author_id", "author_id"),)


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    book_id: Mapped[int] = mapped_column(ForeignKey("books.id"))
    reviewer: Mapped[str] = mapped_column(String(120))
    rating: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)

    book: Mapped[Book] = relationship(back_populates="reviews")

    __table_args__ = (Index("ix_reviews_book_id", "book_id"),)


#: (name, table, column) of the indexes only the tuned database has.
TUNED_INDEXES: tuple[tuple[str, str, str], ...] = (
    ("ix_books_isbn", "books", "isbn"),
    ("ix_reviews_created_at", "reviews", "created_at"),
)
