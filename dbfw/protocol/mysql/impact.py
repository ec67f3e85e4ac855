"""What a MySQL statement waiting for approval would do (see dbfw.approvals.impact): EXPLAIN in a transaction
rolled back, under max_statement_time, and information_schema for the objects DDL names."""

from __future__ import annotations

from typing import Any

from ...approvals.impact import IMPACT_SECONDS, what_to_estimate
from ...config import Upstream
from ...sql.classify import Classification
from . import packets as p
from .upstream import connect, query_rows


async def estimate_mysql(up: Upstream, database: str, classification: Classification) -> dict[str, Any]:
    stmt, how = what_to_estimate(classification)
    if stmt is None:
        return {"note": how}
    # One statement per command, and no client files: whatever the text holds, EXPLAIN runs one statement.
    capabilities = int(p.SUPPORTED) & ~int(p.Capability.MULTI_STATEMENTS) & ~int(p.Capability.LOCAL_FILES)
    conn = await connect(up, capabilities, database or None, p.UTF8MB4_GENERAL_CI)
    try:
        await query_rows(conn, f"SET SESSION max_statement_time = {IMPACT_SECONDS:g}")
        # (MariaDB refuses EXPLAIN UPDATE/DELETE in a READ ONLY transaction: a plain one, rolled back. Only
        # statements that call no code are explained, and EXPLAIN runs none of them.)
        await query_rows(conn, "START TRANSACTION")
        try:
            if how == "explain":
                rows = await query_rows(conn, f"EXPLAIN {stmt.sql}")
                # One line per table read; the first is the table written (or read first), as MariaDB plans it.
                estimated = [int(r[8]) for r in rows if len(r) > 8 and r[8] is not None and r[8].isdigit()]
                return {"estimated_rows": estimated[0] if estimated else None}
            return {"objects": [await _mysql_object(conn, database, name) for name in stmt.tables[:10]]}
        finally:
            await query_rows(conn, "ROLLBACK")
    finally:
        conn.writer.close()


def _like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


async def _mysql_object(conn: Any, database: str, name: str) -> dict[str, Any]:
    schema, _, table = name.rpartition(".")
    schema = schema or database
    rows = await query_rows(conn, "SELECT table_type, table_rows, data_length + index_length FROM "
                                  f"information_schema.tables WHERE table_schema = {_quote(schema)} AND "
                                  f"table_name = {_quote(table)}")
    if not rows:
        return {"name": name, "note": "not found"}
    kind, tuples, size = (v.decode() if v is not None else None for v in rows[0])
    keys = await query_rows(conn, "SELECT CONCAT('foreign key ', constraint_name, ' on ', constraint_schema, '.', "
                                  "table_name) FROM information_schema.referential_constraints WHERE "
                                  f"unique_constraint_schema = {_quote(schema)} AND referenced_table_name = "
                                  f"{_quote(table)} ORDER BY 1 LIMIT 50")
    views = await query_rows(conn, "SELECT CONCAT('view ', table_schema, '.', table_name) FROM "
                                   "information_schema.views WHERE view_definition LIKE "
                                   f"{_quote('%`' + _like(table) + '`%')} "
                                   "ORDER BY 1 LIMIT 50")
    return {"name": f"{schema}.{table}", "kind": "view" if kind == "VIEW" else "table",
            "estimated_rows": int(tuples) if tuples and tuples.isdigit() else None,
            "bytes": int(size) if size and size.isdigit() else None,
            "dependents": [r[0].decode() for r in keys + views if r[0] is not None]}
