"""What the upstream database holds: tables, columns, views, built-in functions. Read over a side
connection with dbfw's own credential, cached per database, invalidated after DDL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field, replace
from typing import Any

from ..config import Upstream
from ..sideconn import SideConnectionError, connect_side
from ..sql.functions import WRITE_EVENTS, FunctionCatalog, Proc, Trigger
from ..sql.settings import LIMIT_SETTINGS, limit_value

CATALOG_TTL = 60.0  # functions created outside dbfw are known within a minute (unknown ones fail closed meanwhile)

_COLUMNS_SQL = """
SELECT n.nspname, c.relname, c.relkind, a.attname, a.attnum, a.atttypid, c.oid
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY n.nspname, c.relname, a.attnum
"""
_VIEWS_SQL = """
SELECT n.nspname, c.relname, pg_catalog.pg_get_viewdef(c.oid, true), c.relkind
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
_BUILTINS_SQL = "SELECT DISTINCT proname FROM pg_catalog.pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace"
# Every function initdb did not create: user functions, extensions (also those installed into pg_catalog).
_FUNCTIONS_SQL = """
SELECT n.nspname, p.proname, p.provolatile, p.prokind, l.lanname, p.pronargs, p.pronargdefaults,
       p.provariadic <> 0, CASE WHEN l.lanname = 'sql' THEN {body} END
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
JOIN pg_catalog.pg_language l ON l.oid = p.prolang
WHERE p.oid >= 16384
"""
# Triggers (their function) and rules (their definition) on the database's tables: a write fires them.
_TRIGGERS_SQL = """
SELECT n.nspname, c.relname, t.tgname, t.tgtype, pn.nspname, p.proname, t.tgrelid, p.prosrc
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
WHERE NOT t.tgisinternal
"""
_RULES_SQL = """
SELECT n.nspname, c.relname, r.rulename, r.ev_type, pg_catalog.pg_get_ruledef(r.oid), r.ev_class
FROM pg_catalog.pg_rewrite r
JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE r.ev_type <> '1'
"""
_RULE_EVENTS = {"2": "UPDATE", "3": "INSERT", "4": "DELETE"}
# What else a write of a table reaches: its partitions and inheritance children (rows routed or updated
# there fire their triggers), and tables whose foreign keys cascade from it (ON DELETE/UPDATE CASCADE, SET
# NULL, SET DEFAULT: their DELETE and UPDATE triggers fire; TRUNCATE ... CASCADE their TRUNCATE triggers).
_REACH_SQL = """
SELECT inhparent, inhrelid, false FROM pg_catalog.pg_inherits
UNION ALL
SELECT confrelid, conrelid, true FROM pg_catalog.pg_constraint
WHERE contype = 'f' AND (confdeltype IN ('c', 'n', 'd') OR confupdtype IN ('c', 'n', 'd'))
"""
_RELATIONS_SQL = "SELECT c.oid, c.relname FROM pg_catalog.pg_class c WHERE c.relkind IN ('r', 'p', 'v', 'f')"
_CASCADE_EVENTS = frozenset({"UPDATE", "DELETE", "TRUNCATE"})
_LIMITS_SQL = "SELECT name, reset_val, unit FROM pg_catalog.pg_settings WHERE name = ANY($1::text[])"
_BODY_14 = "CASE WHEN p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_function_sqlbody(p.oid) ELSE p.prosrc END"


@dataclass
class Catalog:
    # schema -> table -> column -> type name (for sqlglot), in column order
    schema: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    column_types: dict[tuple[str, str, str], int] = field(default_factory=dict)  # -> type OID
    by_oid: dict[tuple[int, int], tuple[str, str, str]] = field(default_factory=dict)  # (relid, attnum)
    views: dict[tuple[str, str], str] = field(default_factory=dict)  # (schema, view) -> definition
    builtins: frozenset[str] = frozenset()
    functions: FunctionCatalog = field(default_factory=FunctionCatalog)
    loaded_at: float = 0.0
    server_version: int = 0  # server_version_num
    # How the upstream's SQL reads, and where an unqualified table lives ("public"; MySQL: the session's
    # database).
    dialect: str = "postgres"
    default_schema: str = "public"


async def load_catalog(up: Upstream, database: str) -> Catalog:
    try:
        conn = await connect_side(up, database)
    except SideConnectionError as e:
        raise SideConnectionError(f"cannot read the catalog: {e}") from None
    try:
        cat = Catalog(loaded_at=time.monotonic())
        for nsp, rel, _kind, att, attnum, typid, reloid in await conn.fetch(_COLUMNS_SQL):
            cat.schema.setdefault(nsp, {}).setdefault(rel, {})[att] = "text" if typid in (25, 1043) else "unknown"
            cat.column_types[(nsp, rel, att)] = typid
            cat.by_oid[(reloid, attnum)] = (nsp, rel, att)
        plain: dict[tuple[str, str], str] = {}  # reading these runs their definition (not materialized ones)
        for nsp, rel, definition, kind in await conn.fetch(_VIEWS_SQL):
            cat.views[(nsp, rel)] = definition
            if _char(kind) == "v":
                plain[(nsp, rel)] = definition
        cat.builtins = frozenset(r[0] for r in await conn.fetch(_BUILTINS_SQL))
        cat.server_version = int(await conn.fetchval("SELECT current_setting('server_version_num')"))
        sql = _FUNCTIONS_SQL.format(body=_BODY_14 if cat.server_version >= 140000 else "p.prosrc")
        user: dict[str, list[Proc]] = {}
        for nsp, name, volatility, kind, language, nargs, ndefaults, variadic, body in await conn.fetch(sql):
            # "char" columns come as bytes
            user.setdefault(name, []).append(Proc(nsp, name, _char(volatility), _char(kind), language, nargs, ndefaults,
                                                  variadic, body, False))
        limits: dict[str, int] = {}
        for name, value, unit in await conn.fetch(_LIMITS_SQL, list(LIMIT_SETTINGS)):
            amount = limit_value(name, f"{value}{unit or ''}")
            if amount is not None:
                limits[name] = amount
        cat.functions = FunctionCatalog({k: tuple(v) for k, v in user.items()}, live=True, settings=limits,
                                        triggers=await _triggers(conn), views=plain)
        return cat
    finally:
        await conn.close()


async def _triggers(conn: Any) -> dict[str, tuple[Trigger, ...]]:
    own: dict[int, list[Trigger]] = {}  # by the OID of the relation they are on
    for nsp, rel, name, tgtype, fn_nsp, fn_name, oid, source in await conn.fetch(_TRIGGERS_SQL):
        events = frozenset(event for bit, event in ((4, "INSERT"), (8, "DELETE"), (16, "UPDATE"), (32, "TRUNCATE"))
                           if tgtype & bit)
        own.setdefault(oid, []).append(Trigger(nsp, rel.lower(), name, events, source, function=(fn_nsp, fn_name)))
    for nsp, rel, name, ev_type, definition, oid in await conn.fetch(_RULES_SQL):
        event = _RULE_EVENTS.get(_char(ev_type))
        own.setdefault(oid, []).append(Trigger(nsp, rel.lower(), name, frozenset([event] if event else
                                                                                 WRITE_EVENTS), definition))
    edges: dict[int, list[tuple[int, bool]]] = {}
    for parent, child, cascade in await conn.fetch(_REACH_SQL):
        edges.setdefault(parent, []).append((child, cascade))
    names = {oid: name.lower() for oid, name in await conn.fetch(_RELATIONS_SQL)}
    found: dict[str, list[Trigger]] = {}
    for oid, name in names.items():
        for trigger in _reached(oid, own, edges):
            found.setdefault(name, []).append(trigger)
    return {table: tuple(triggers) for table, triggers in found.items()}


def _reached(oid: int, own: dict[int, list[Trigger]], edges: dict[int, list[tuple[int, bool]]]) -> list[Trigger]:
    """The triggers a write of relation ``oid`` may fire: its own, its partitions' and children's (for the
    same events), and those of tables a foreign key cascades to (their UPDATE, DELETE and TRUNCATE ones fire
    for any of those events here)."""
    out = list(own.get(oid, ()))
    seen = {oid}
    frontier: list[tuple[int, bool]] = [(oid, False)]
    while frontier:
        rel, cascaded = frontier.pop()
        for child, cascade in edges.get(rel, ()):
            if child in seen:
                continue
            seen.add(child)
            via_cascade = cascaded or cascade
            for trigger in own.get(child, ()):
                if not via_cascade:
                    out.append(trigger)
                elif trigger.events & _CASCADE_EVENTS:
                    out.append(replace(trigger, events=_CASCADE_EVENTS))
            frontier.append((child, via_cascade))
    return out


def _char(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


class CatalogCache:
    """One catalog per (upstream, database), loaded once and shared by all sessions."""

    def __init__(self) -> None:
        self._catalogs: dict[tuple[str, str], Catalog] = {}
        self._loading: dict[tuple[str, str], asyncio.Future[Catalog]] = {}
        self.generation = 0  # bumps on every invalidation: masking plans built before are stale

    async def get(self, upstream_name: str, up: Upstream, database: str) -> Catalog:
        key = (upstream_name, database)
        cat = self._catalogs.get(key)
        if cat is not None and time.monotonic() - cat.loaded_at < CATALOG_TTL:
            return cat
        pending = self._loading.get(key)
        if pending is not None:
            return await pending
        fut: asyncio.Future[Catalog] = asyncio.get_running_loop().create_future()
        self._loading[key] = fut
        try:
            cat = await load_catalog(up, database)
            self._catalogs[key] = cat
            fut.set_result(cat)
            return cat
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: waiters get it via await
            raise
        finally:
            self._loading.pop(key, None)

    def invalidate(self, database: str | None = None) -> None:
        """After DDL the catalog may be stale (a new view, a renamed column): read it again next time."""
        for key in list(self._catalogs):
            if database is None or key[1] == database:
                del self._catalogs[key]
        self.generation += 1
