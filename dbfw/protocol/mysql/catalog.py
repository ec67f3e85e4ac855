"""What a MySQL upstream's tables are, as the classifier needs them: which columns a number compares with
exactly. Read over a connection of dbfw's own, cached per upstream, read again after DDL through dbfw and
once a minute (a column changed elsewhere is known within that)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from ...config import Upstream
from ...sql.functions import FunctionCatalog
from . import packets as p
from .upstream import connect, query_rows

TTL = 60.0
# Types whose comparison with a number is a comparison of strings as numbers (MySQL's rules): not exact.
_STRING_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "binary", "varbinary",
                           "tinyblob", "blob", "mediumblob", "longblob", "json", "geometry", "point", "linestring",
                           "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection",
                           "inet4", "inet6", "uuid"})
_COLUMNS = ("SELECT LOWER(table_schema), LOWER(table_name), LOWER(column_name), LOWER(data_type) "
            "FROM information_schema.columns WHERE table_schema NOT IN ('mysql', 'information_schema', "
            "'performance_schema', 'sys')")


@dataclass(frozen=True)
class MyCatalog:
    functions: FunctionCatalog  # the name the firewall reads a catalog's classification data by


def number_columns(rows: list[list[bytes | None]]) -> frozenset[tuple[str, str, str]]:
    """The columns every table of that (case-folded) name compares with a number exactly."""
    exact: set[tuple[str, str, str]] = set()
    inexact: set[tuple[str, str, str]] = set()
    for schema, table, column, data_type in rows:
        key = (p.text(schema or b""), p.text(table or b""), p.text(column or b""))
        (inexact if p.text(data_type or b"") in _STRING_TYPES else exact).add(key)
    return frozenset(exact - inexact)


class MyCatalogCache:
    def __init__(self) -> None:
        self._cached: dict[str, tuple[MyCatalog, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def invalidate(self, database: str | None = None) -> None:
        self._cached.clear()

    async def get(self, name: str, up: Upstream) -> MyCatalog:
        found = self._cached.get(name)
        if found is not None and found[1] > time.monotonic():
            return found[0]
        async with self._locks.setdefault(name, asyncio.Lock()):
            found = self._cached.get(name)
            if found is not None and found[1] > time.monotonic():
                return found[0]
            conn = await connect(up, int(p.SUPPORTED), None, p.UTF8MB4_GENERAL_CI)
            try:
                rows = await asyncio.wait_for(query_rows(conn, _COLUMNS), up.connect_timeout)
            finally:
                conn.writer.close()
            catalog = MyCatalog(FunctionCatalog(live=True, number_columns=number_columns(rows)))
            self._cached[name] = (catalog, time.monotonic() + TTL)
            return catalog
