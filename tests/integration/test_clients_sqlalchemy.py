"""SQLAlchemy 2 ORM over psycopg 3 through dbfw: DDL, CRUD, relationships, a pool of connections."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    selectinload,
    sessionmaker,
)

from tests.conftest import DbfwProcess, PgTarget

pytestmark = pytest.mark.timeout(60)


def _models(suffix: str) -> tuple[type[Any], type[Any], type[Any], sa.MetaData]:
    """Fresh declarative classes whose tables carry ``suffix``, so tests never share a table."""

    class Base(DeclarativeBase):
        pass

    class Author(Base):
        __tablename__ = f"sa_author_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(sa.String(100), unique=True)
        born: Mapped[dt.date | None]
        meta: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
        books: Mapped[list[Book]] = relationship(back_populates="author", cascade="all, delete-orphan",
                                                 order_by="Book.id")

    class Book(Base):
        __tablename__ = f"sa_book_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        title: Mapped[str]
        price: Mapped[Decimal] = mapped_column(sa.Numeric(10, 2))
        published: Mapped[dt.datetime] = mapped_column(sa.DateTime(timezone=True))
        ref: Mapped[uuid.UUID] = mapped_column(default=uuid.uuid4)
        author_id: Mapped[int] = mapped_column(sa.ForeignKey(f"sa_author_{suffix}.id"))
        author: Mapped[Author] = relationship(back_populates="books")
        tags: Mapped[list[Tag]] = relationship(secondary=f"sa_book_tag_{suffix}", order_by="Tag.name")

    class Tag(Base):
        __tablename__ = f"sa_tag_{suffix}"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(unique=True)

    sa.Table(f"sa_book_tag_{suffix}", Base.metadata,
             sa.Column("book_id", sa.ForeignKey(f"sa_book_{suffix}.id", ondelete="CASCADE"), primary_key=True),
             sa.Column("tag_id", sa.ForeignKey(f"sa_tag_{suffix}.id", ondelete="CASCADE"), primary_key=True))
    return Author, Book, Tag, Base.metadata


def _scenario(url: str) -> dict[str, Any]:
    suffix = uuid.uuid4().hex[:8]
    Author, Book, Tag, metadata = _models(suffix)
    engine = sa.create_engine(url)
    out: dict[str, Any] = {}
    try:
        metadata.create_all(engine)
        out["tables"] = sorted(t.removesuffix(f"_{suffix}") for t in sa.inspect(engine).get_table_names()
                               if t.endswith(suffix))
        when = dt.datetime(2023, 5, 17, 8, 30, tzinfo=dt.UTC)
        with Session(engine) as session, session.begin():
            fiction, poetry, classic = Tag(name="fiction"), Tag(name="poetry"), Tag(name="classic")
            ada = Author(name="Ada Ω", born=dt.date(1815, 12, 10), meta={"langs": ["en", "fr"]})
            ada.books = [Book(title="Notes", price=Decimal("12.50"), published=when, tags=[classic]),
                         Book(title="Poems ☃", price=Decimal("7.00"), published=when, tags=[poetry, fiction])]
            bob = Author(name="Bob", books=[Book(title="Solo", price=Decimal("1.99"), published=when)])
            session.add_all([ada, bob])
        with Session(engine) as session:
            authors = session.scalars(sa.select(Author).options(selectinload(Author.books).selectinload(Book.tags))
                                      .order_by(Author.name)).all()
            out["loaded"] = [(a.name, a.born, a.meta, [(b.title, b.price, b.published, [t.name for t in b.tags])
                                                        for b in a.books]) for a in authors]
            out["join"] = session.execute(
                sa.select(Author.name, sa.func.count(Book.id), sa.func.sum(Book.price)).join(Author.books)
                .group_by(Author.name).order_by(Author.name)).all()
            out["filter"] = session.scalars(sa.select(Book.title).where(Book.price > Decimal("5"),
                                                                        Book.title.like("%o%"))
                                            .order_by(Book.title)).all()
            book = session.scalars(sa.select(Book).where(Book.title == "Solo")).one()
            out["ref_is_uuid"] = isinstance(book.ref, uuid.UUID)
        # Update, both through the unit of work and in bulk.
        with Session(engine) as session, session.begin():
            ada = session.scalars(sa.select(Author).where(Author.name == "Ada Ω")).one()
            ada.meta = {**ada.meta, "updated": True}
            ada.books[0].price = Decimal("15.00")
            session.execute(sa.update(Book).where(Book.title == "Solo").values(price=Book.price * 2))
        # An integrity error rolls the session back, and the engine goes on.
        with Session(engine) as session:
            session.add(Author(name="Bob"))
            try:
                session.commit()
            except sa.exc.IntegrityError as e:
                out["integrity"] = e.orig.sqlstate  # type: ignore[union-attr]
                session.rollback()
            out["after_error"] = session.scalar(sa.select(sa.func.count()).select_from(Author))
        # Upsert with RETURNING.
        with engine.begin() as conn:
            stmt = pg_insert(Tag.__table__).values([{"name": "classic"}, {"name": "new"}])
            stmt = stmt.on_conflict_do_nothing(index_elements=["name"]).returning(Tag.__table__.c.name)
            out["upsert"] = sorted(conn.execute(stmt).scalars().all())
        # Delete with the ORM cascade.
        with Session(engine) as session, session.begin():
            session.delete(session.scalars(sa.select(Author).where(Author.name == "Ada Ω")).one())
        with Session(engine) as session:
            out["after_delete"] = session.execute(sa.select(Book.title, Book.price).order_by(Book.title)).all()
            out["meta"] = session.scalars(sa.select(Author.meta)).all()
            out["links"] = session.scalar(sa.select(sa.func.count()).select_from(
                metadata.tables[f"sa_book_tag_{suffix}"]))
    finally:
        metadata.drop_all(engine)
        out["left"] = [t for t in sa.inspect(engine).get_table_names() if t.endswith(suffix)]
        engine.dispose()
    return out


def test_orm_lifecycle(dbfw: DbfwProcess, pg: PgTarget) -> None:
    through = _scenario(dbfw.url(scheme="postgresql+psycopg"))
    direct = _scenario(f"postgresql+psycopg://{pg.user}:{pg.password or ''}@{pg.host}:{pg.port}/{pg.dbname}")
    assert through == direct
    when = dt.datetime(2023, 5, 17, 8, 30, tzinfo=dt.UTC)
    assert through["tables"] == ["sa_author", "sa_book", "sa_book_tag", "sa_tag"]
    assert through["loaded"] == [
        ("Ada Ω", dt.date(1815, 12, 10), {"langs": ["en", "fr"]},
         [("Notes", Decimal("12.50"), when, ["classic"]), ("Poems ☃", Decimal("7.00"), when, ["fiction", "poetry"])]),
        ("Bob", None, {}, [("Solo", Decimal("1.99"), when, [])]),
    ]
    assert through["join"] == [("Ada Ω", 2, Decimal("19.50")), ("Bob", 1, Decimal("1.99"))]
    assert through["filter"] == ["Notes", "Poems ☃"]
    assert through["ref_is_uuid"] is True
    assert through["integrity"] == "23505"
    assert through["after_error"] == 2
    assert through["upsert"] == ["new"]
    assert through["after_delete"] == [("Solo", Decimal("3.98"))]
    assert through["meta"] == [{}]
    assert through["links"] == 0
    assert through["left"] == []


def test_pool_with_concurrent_sessions(dbfw: DbfwProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    Author, _Book, _Tag, metadata = _models(suffix)
    engine = sa.create_engine(dbfw.url(scheme="postgresql+psycopg"), pool_size=4, max_overflow=0, pool_timeout=20,
                              pool_pre_ping=True)
    make_session = sessionmaker(engine)
    failures: list[BaseException] = []
    pids: set[int] = set()

    def worker(n: int) -> None:
        try:
            for i in range(5):
                with make_session() as session, session.begin():
                    session.add(Author(name=f"w{n}-{i}", meta={"n": n, "i": i}))
                    session.flush()
                    pids.add(session.scalar(sa.text("select pg_backend_pid()")))  # type: ignore[arg-type]
                    assert session.scalar(sa.text("select count(*) from pg_sleep(0.01)")) == 1
        except BaseException as e:  # collected and re-raised in the main thread
            failures.append(e)

    try:
        metadata.create_all(engine)
        threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(40)
        assert not failures, failures
        with make_session() as session:
            names = session.scalars(sa.select(Author.name)).all()
        assert sorted(names) == sorted(f"w{n}-{i}" for n in range(8) for i in range(5))
        assert 1 <= len(pids) <= 4  # the pool reused at most pool_size upstream connections
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        metadata.drop_all(engine)
        engine.dispose()
