"""What a statement waiting for approval would do, estimated when its request is made, for the reviewer.

Never the statement itself: on a side connection of dbfw's own, in a READ ONLY transaction that is
rolled back, under a short statement timeout, dbfw asks the server's planner (EXPLAIN, no ANALYZE)
how many rows an UPDATE, DELETE, MERGE, INSERT ... SELECT or export would touch, and the catalog what
the objects a DDL statement or TRUNCATE names hold (estimated rows, bytes) and what depends on them
(views, foreign keys). Only statements whose class says they run no code are explained: a statement
that calls a function which writes is ``procedural`` and gets no EXPLAIN. A failure to estimate is
reported as such and never holds the request back.

The result is a JSON object: ``estimated_rows`` (the planner's guess at the rows written or exported),
``estimated_bytes`` (exports), ``objects`` (``name``, ``kind``, ``estimated_rows``, ``bytes``,
``dependents``), ``note`` (what was not estimated, and why).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..config import Upstream
from ..sql.classify import Classification, Statement

IMPACT_SECONDS = 2.0
_EXPLAINED = frozenset({"write", "destructive_write", "bulk_export"})
_EXPLAINED_COMMANDS = frozenset({"UPDATE", "DELETE", "INSERT", "MERGE", "SELECT", "REPLACE"})
_OBJECT_COMMANDS = frozenset({"DROP", "TRUNCATE", "ALTER", "COPY", "RENAME"})


def what_to_estimate(classification: Classification) -> tuple[Statement | None, str]:
    """The one statement to estimate and how ("explain" or "objects"), or None and why not."""
    if len(classification.statements) != 1:
        return None, "several statements in one message: not estimated"
    stmt = classification.statements[0]
    if stmt.cls in _EXPLAINED and stmt.command in _EXPLAINED_COMMANDS:
        return stmt, "explain"
    if stmt.command in _OBJECT_COMMANDS or (stmt.cls == "ddl" and stmt.tables_written):
        return stmt, "objects"
    return None, f"a {stmt.cls} statement ({stmt.command}): nothing dbfw estimates"


async def estimate_postgres(up: Upstream, database: str, classification: Classification) -> dict[str, Any]:
    from ..sideconn import connect_side

    stmt, how = what_to_estimate(classification)
    if stmt is None:
        return {"note": how}
    conn = await connect_side(up, database)
    try:
        tx = conn.transaction(readonly=True)
        await tx.start()
        try:
            await conn.execute(f"SET LOCAL statement_timeout = {int(IMPACT_SECONDS * 1000)}")
            if how == "explain":
                return _postgres_plan(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {stmt.sql}"))
            return {"objects": [await _postgres_object(conn, name) for name in stmt.tables[:10]]}
        finally:
            await tx.rollback()
    finally:
        await conn.close()


def _postgres_plan(raw: Any) -> dict[str, Any]:
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    if plan.get("Node Type") == "ModifyTable":
        source = (plan.get("Plans") or [plan])[0]
        return {"estimated_rows": int(source.get("Plan Rows", 0)), "operation": str(plan.get("Operation", ""))}
    rows = int(plan.get("Plan Rows", 0))
    return {"estimated_rows": rows, "estimated_bytes": rows * int(plan.get("Plan Width", 0))}


_PG_OBJECT = """
SELECT c.oid, c.relkind::text, c.reltuples::bigint, pg_catalog.pg_total_relation_size(c.oid)
FROM pg_catalog.pg_class c WHERE c.oid = pg_catalog.to_regclass($1)
"""
_PG_DEPENDENTS = """
SELECT DISTINCT 'view ' || r.ev_class::regclass::text
FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid
WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.refobjid = $1 AND r.ev_class <> $1
UNION
SELECT 'foreign key ' || conname || ' on ' || conrelid::regclass::text
FROM pg_catalog.pg_constraint WHERE contype = 'f' AND confrelid = $1 AND conrelid <> $1
ORDER BY 1 LIMIT 50
"""
_PG_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "f": "foreign table",
             "S": "sequence", "i": "index"}


async def _postgres_object(conn: Any, name: str) -> dict[str, Any]:
    row = await conn.fetchrow(_PG_OBJECT, name)
    if row is None:
        return {"name": name, "note": "not found"}
    oid, kind, tuples, size = row
    dependents = [r[0] for r in await conn.fetch(_PG_DEPENDENTS, oid)]
    return {"name": name, "kind": _PG_KINDS.get(kind, kind), "estimated_rows": int(tuples) if tuples >= 0 else None,
            "bytes": int(size), "dependents": dependents}


async def bounded(estimate: Any) -> dict[str, Any]:
    """An estimate within IMPACT_SECONDS (and a second for connecting), or why there is none: the request is
    made either way."""
    try:
        return await asyncio.wait_for(estimate, IMPACT_SECONDS + 1.0)
    except TimeoutError:
        return {"note": "not estimated: the server took too long"}
    except Exception as e:  # the statement does not plan (parameters, an error): the reviewer reads it as it is
        return {"note": f"not estimated: the server could not plan it ({type(e).__name__})"}


def describe(impact: dict[str, Any] | None) -> str:
    """One sentence for the DBF01 detail and the CLI."""
    if not impact:
        return ""
    parts: list[str] = []
    if impact.get("estimated_rows") is not None:
        parts.append(f"about {impact['estimated_rows']:,} rows")
    if impact.get("estimated_bytes"):
        parts.append(f"about {impact['estimated_bytes']:,} bytes")
    for obj in impact.get("objects") or []:
        text = obj.get("name", "?")
        if obj.get("estimated_rows") is not None:
            text += f" (about {obj['estimated_rows']:,} rows"
            text += f", {obj['bytes']:,} bytes)" if obj.get("bytes") is not None else ")"
        if obj.get("dependents"):
            text += f", with {len(obj['dependents'])} dependent(s): {', '.join(obj['dependents'][:3])}"
        parts.append(text)
    if not parts:
        return f"Impact: {impact.get('note', 'not estimated')}."
    return "Impact (estimated): " + "; ".join(parts) + "."
