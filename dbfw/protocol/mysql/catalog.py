"""What a MySQL upstream's tables, views and stored routines are: for masking (lineage over the columns,
view definitions and function bodies) and for the classifier (which columns a number compares with
exactly, what a stored function's body does). Read over a
connection of dbfw's own, cached per upstream, read again after DDL through dbfw and once a minute (a
column changed elsewhere is known within that)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace

from ...config import Upstream
from ...masking.catalog import Catalog
from ...sql.classify import LEX_MYSQL_ANSI_QUOTES, LEX_MYSQL_NO_BACKSLASH_ESCAPES
from ...sql.dialects import MYSQL_BUILTINS
from ...sql.functions import WRITE_EVENTS, FunctionCatalog, Proc, Trigger
from . import packets as p
from .upstream import MyUpstream, connect, query_rows

TTL = 60.0
# Types whose comparison with a number is a comparison of strings as numbers (MySQL's rules): not exact.
_STRING_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "binary", "varbinary",
                           "tinyblob", "blob", "mediumblob", "longblob", "json", "geometry", "point", "linestring",
                           "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection",
                           "inet4", "inet6", "uuid"})
_SYSTEM = "('mysql', 'information_schema', 'performance_schema', 'sys')"
_COLUMNS = ("SELECT LOWER(table_schema), LOWER(table_name), LOWER(column_name), LOWER(data_type) "
            f"FROM information_schema.columns WHERE table_schema NOT IN {_SYSTEM} "
            "ORDER BY table_schema, table_name, ordinal_position")
_VIEWS = f"SELECT LOWER(table_schema), LOWER(table_name), view_definition FROM information_schema.views " \
    f"WHERE table_schema NOT IN {_SYSTEM}"
# Stored functions and procedures. routine_definition is NULL where dbfw's upstream user may not read it.
_ROUTINES = ("SELECT LOWER(routine_schema), LOWER(routine_name), routine_type, routine_definition, sql_mode "
             f"FROM information_schema.routines WHERE routine_schema NOT IN {_SYSTEM}")
# Triggers: what a write of their table runs. (The upstream user sees the triggers of the tables it holds
# the TRIGGER privilege on.)
_TRIGGERS = ("SELECT LOWER(event_object_schema), LOWER(event_object_table), trigger_name, event_manipulation, "
             f"action_statement, sql_mode FROM information_schema.triggers WHERE event_object_schema NOT IN {_SYSTEM}")
# Where dbfw's upstream user may see triggers: everywhere with a global TRIGGER privilege, else in the
# databases it holds it on (a write elsewhere may fire triggers dbfw cannot see: procedural).
# (The current user as information_schema names grantees, 'user'@'host': a user that may read mysql.user
# sees every account's privileges there.)
_GRANTEE = ("CONCAT(CHAR(39), SUBSTRING_INDEX(CURRENT_USER(), '@', 1), CHAR(39, 64, 39), "
            "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), CHAR(39))")
_TRIGGER_GLOBAL = ("SELECT COUNT(*) FROM information_schema.user_privileges WHERE privilege_type = 'TRIGGER' "
                   f"AND grantee = {_GRANTEE}")
_TRIGGER_SCHEMAS = ("SELECT DISTINCT LOWER(table_schema) FROM information_schema.schema_privileges "
                    f"WHERE privilege_type = 'TRIGGER' AND grantee = {_GRANTEE}")
_RETURN = re.compile(r"\s*RETURN\b", re.IGNORECASE)


def _lex(mode: bytes | None) -> int:
    modes = p.text(mode or b"").upper().split(",")
    return (LEX_MYSQL_ANSI_QUOTES if "ANSI_QUOTES" in modes else 0) | (
        LEX_MYSQL_NO_BACKSLASH_ESCAPES if "NO_BACKSLASH_ESCAPES" in modes else 0)


def triggers(rows: list[list[bytes | None]]) -> dict[str, tuple[Trigger, ...]]:
    """Triggers by the lower-case name of their table; a body the upstream user may not read is None
    (procedural)."""
    out: dict[str, list[Trigger]] = {}
    for schema, table, name, events, body, mode in rows:
        named = frozenset(e.strip().upper() for e in p.text(events or b"").split(",") if e.strip())
        trigger = Trigger(p.text(schema or b""), p.text(table or b""), p.text(name or b""),
                          named or WRITE_EVENTS, p.text(body) if body is not None else None, lex=_lex(mode))
        out.setdefault(trigger.table, []).append(trigger)
    return {table: tuple(found) for table, found in out.items()}


def routines(rows: list[list[bytes | None]]) -> dict[str, tuple[Proc, ...]]:
    """Stored routines by name. A function whose body is one RETURN keeps it as ``SELECT <expression>``, which
    the classifier and masking read as a query; any other body (BEGIN ... END) is kept as None: unread, so
    procedural, and untraceable for masking."""
    out: dict[str, list[Proc]] = {}
    for schema, name, kind, definition, mode in rows:
        text = p.text(definition) if definition is not None else None
        body = None
        if text is not None and _RETURN.match(text):
            body = "SELECT " + _RETURN.sub("", text, count=1).strip().removesuffix(";")
        lex = _lex(mode)
        proc = Proc(p.text(schema or b""), p.text(name or b""), "v", "f" if kind == b"FUNCTION" else "p", "sql", 0,
                    0, True, body, False, lex)
        out.setdefault(proc.name, []).append(proc)
    return {name: tuple(procs) for name, procs in out.items()}


def build_catalog(columns: list[list[bytes | None]], views: list[list[bytes | None]],
                  stored: list[list[bytes | None]] | None = None,
                  fired: list[list[bytes | None]] | None = None) -> Catalog:
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for db, table, column, data_type in columns:
        schema.setdefault(p.text(db or b""), {}).setdefault(p.text(table or b""), {})[p.text(column or b"")] = \
            p.text(data_type or b"")
    cat = Catalog(schema=schema, builtins=MYSQL_BUILTINS, dialect="mysql", default_schema="",
                  functions=FunctionCatalog(user=routines(stored or []), live=True, triggers=triggers(fired or []),
                                            number_columns=number_columns(columns),
                                            columns=frozenset((p.text(d or b""), p.text(t or b""), p.text(c or b""))
                                                              for d, t, c, _ in columns)),
                  loaded_at=time.monotonic())
    for db, view, definition in views:
        if definition:
            cat.views[(p.text(db or b""), p.text(view or b""))] = p.text(definition)
    cat.functions.views = cat.views
    return cat


def number_columns(rows: list[list[bytes | None]]) -> frozenset[tuple[str, str, str]]:
    """The columns every table of that (case-folded) name compares with a number exactly."""
    exact: set[tuple[str, str, str]] = set()
    inexact: set[tuple[str, str, str]] = set()
    for schema, table, column, data_type in rows:
        key = (p.text(schema or b""), p.text(table or b""), p.text(column or b""))
        (inexact if p.text(data_type or b"") in _STRING_TYPES else exact).add(key)
    return frozenset(exact - inexact)


async def _trigger_schemas(conn: MyUpstream) -> frozenset[str] | None:
    (count,), = await query_rows(conn, _TRIGGER_GLOBAL)
    if count is not None and int(count) > 0:
        return None
    return frozenset(p.text(r[0]) for r in await query_rows(conn, _TRIGGER_SCHEMAS) if r[0] is not None)


class MyCatalogCache:
    def __init__(self) -> None:
        self._cached: dict[str, tuple[Catalog, float]] = {}
        self._per_database: dict[tuple[str, str], Catalog] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def invalidate(self, database: str | None = None) -> None:
        self._cached.clear()
        self._per_database.clear()

    async def get(self, name: str, up: Upstream, database: str) -> Catalog:
        """The upstream's catalog as seen from ``database`` (its unqualified tables)."""
        base = await self._base(name, up)
        key = (name, database.lower())
        found = self._per_database.get(key)
        if found is None or found.loaded_at != base.loaded_at:
            found = self._per_database[key] = replace(base, default_schema=database.lower())
        return found

    async def _base(self, name: str, up: Upstream) -> Catalog:
        found = self._cached.get(name)
        if found is not None and found[1] > time.monotonic():
            return found[0]
        async with self._locks.setdefault(name, asyncio.Lock()):
            found = self._cached.get(name)
            if found is not None and found[1] > time.monotonic():
                return found[0]
            conn = await connect(up, int(p.SUPPORTED), None, p.UTF8MB4_GENERAL_CI)
            try:
                columns = await asyncio.wait_for(query_rows(conn, _COLUMNS), up.connect_timeout)
                views = await asyncio.wait_for(query_rows(conn, _VIEWS), up.connect_timeout)
                stored = await asyncio.wait_for(query_rows(conn, _ROUTINES), up.connect_timeout)
                fired = await asyncio.wait_for(query_rows(conn, _TRIGGERS), up.connect_timeout)
                schemas = await asyncio.wait_for(_trigger_schemas(conn), up.connect_timeout)
            finally:
                conn.writer.close()
            catalog = build_catalog(columns, views, stored, fired)
            catalog.functions.trigger_schemas = schemas
            self._cached[name] = (catalog, time.monotonic() + TTL)
            return catalog
