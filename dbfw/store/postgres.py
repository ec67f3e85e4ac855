"""The shared store: PostgreSQL, so that several dbfw instances see the same requests and approvals."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from typing import Any

import asyncpg

from .base import (
    LAST_SEALED,
    MIGRATIONS,
    SESSION_END,
    SESSION_INSERT,
    UNSEALED,
    Event,
    SessionClosed,
    SessionOpened,
    Store,
    StoreError,
    chain,
    pack_events,
    seal_updates,
)

_PLACEHOLDER = re.compile(r"\?")
_MIGRATION_LOCK = 0x64626677  # "dbfw": serialises migrations of instances starting together
_SEAL_LOCK = 0x64626678  # one sealer of the audit chain at a time


def _numbered(sql: str) -> str:
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


class PostgresStore(Store):
    def __init__(self, url: str):
        self.url = url
        self._pool: asyncpg.Pool | None = None
        self._sql: dict[str, str] = {}

    def _q(self, sql: str) -> str:
        q = self._sql.get(sql)
        if q is None:
            q = self._sql[sql] = _numbered(sql)
        return q

    async def open(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(self.url, min_size=1, max_size=8, command_timeout=30)
        except (OSError, asyncpg.PostgresError) as e:
            raise StoreError(f"cannot open the PostgreSQL store: {type(e).__name__}: {e}") from None
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = await conn.fetchval("SELECT max(version) FROM schema_version") or 0
            for version, statements in enumerate(MIGRATIONS, 1):
                if version <= current:
                    continue
                for stmt in statements:
                    await conn.execute(stmt.replace("${ID}", "BIGSERIAL PRIMARY KEY"))
                await conn.execute("INSERT INTO schema_version (version) VALUES ($1)", version)

    async def _consume(self, update: str, args: Sequence[Any], actor: str, now: float,
                       detail: dict[str, Any]) -> str | None:
        """The consuming UPDATE and its audit record in one statement: one round trip, one transaction."""
        n = len(args)
        sql = (f"WITH used AS ({_numbered(update)}) INSERT INTO audit_events (at, actor, action, request_id, detail) "
               f"SELECT ${n + 1}::double precision, ${n + 2}::text, 'approval.consumed', used.id, ${n + 3}::text "
               "FROM used RETURNING request_id")
        assert self._pool is not None
        rows = await self._pool.fetch(sql, *args, now, actor, json.dumps(detail, sort_keys=True))
        return rows[0][0] if rows else None

    async def record(self, sessions: list[SessionOpened], ends: list[SessionClosed],
                     events: list[Event]) -> None:
        """Sessions, their events and their ends: one transaction. Encoding the events happens first, on a
        thread (off the event loop); only the chaining runs under the sealing lock."""
        assert self._pool is not None
        packed = await asyncio.to_thread(pack_events, events) if events else []
        async with self._pool.acquire() as conn, conn.transaction():
            if sessions:
                await conn.executemany(self._q(SESSION_INSERT), sessions)
            if packed:
                await self._seal_locked(conn)  # takes the lock; anything written unchained goes first
                rows = chain(packed, await conn.fetchrow(LAST_SEALED))
                await conn.executemany("INSERT INTO audit_events (at, actor, action, request_id, session_id, "
                                       "detail, seal_seq, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                                       "$9)", rows)
            if ends:
                await conn.executemany(self._q(SESSION_END), ends)

    async def seal(self) -> int:
        assert self._pool is not None
        async with self._pool.acquire() as conn, conn.transaction():
            return await self._seal_locked(conn)

    async def _seal_locked(self, conn: Any) -> int:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _SEAL_LOCK)  # one sealer across instances
        last = await conn.fetchrow(LAST_SEALED)
        updates = seal_updates(await conn.fetch(UNSEALED), last)
        if updates:
            await conn.executemany("UPDATE audit_events SET seal_seq = $1, prev_hash = $2, hash = $3 WHERE id = $4",
                                   updates)
        return len(updates)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        assert self._pool is not None
        rows = await self._pool.fetch(self._q(sql), *args)
        return [tuple(r) for r in rows]

    async def _transaction(self, steps: list[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        assert self._pool is not None
        async with self._pool.acquire() as conn:
            if len(steps) == 1:  # one statement is its own transaction: one round trip
                sql, args = steps[0]
                return [[tuple(r) for r in await conn.fetch(self._q(sql), *args)]]
            async with conn.transaction():
                return [[tuple(r) for r in await conn.fetch(self._q(sql), *args)] for sql, args in steps]
