"""The embedded store: SQLite in WAL mode, fully synchronous, on a thread of its own."""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .. import log
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
    chained_rows,
    seal_updates,
)
from .writer import RecordingWriter


class SQLiteStore(Store):
    def __init__(self, path: str, url: str):
        self.path = path
        self.url = url
        self._conn: sqlite3.Connection | None = None
        self._writer: RecordingWriter | None = None
        self._writer_id = secrets.token_hex(8)  # this dbfw's writer, in recording_flushes
        # One thread owns the connection: sqlite3 objects must stay on the thread that made them.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dbfw-sqlite")

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): writers queue here, across processes too."""
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # durable before dbfw answers
        conn.execute("PRAGMA busy_timeout=10000")  # another dbfw process on the same file
        self._conn = conn
        self._migrate()

    def _migrate(self) -> None:
        with self._immediate() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            current = row[0] or 0
            for version, statements in enumerate(MIGRATIONS, 1):
                if version <= current:
                    continue
                for stmt in statements:
                    conn.execute(stmt.replace("${ID}", "INTEGER PRIMARY KEY AUTOINCREMENT"))
                conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    async def open(self) -> None:
        try:
            await self._run(self._open)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the SQLite store {self.path}: {e}") from e

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await self._run(writer.close)
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=False)

    def _fetch_sync(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        assert self._conn is not None
        return [tuple(r) for r in self._conn.execute(sql, tuple(args)).fetchall()]

    async def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._run(self._fetch_sync, sql, args)

    def _transaction_sync(self, steps: list[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        with self._immediate() as conn:
            return [[tuple(r) for r in conn.execute(sql, tuple(args)).fetchall()] for sql, args in steps]

    def _consume_sync(self, update: str, args: Sequence[Any], actor: str, now: float, detail: str) -> str | None:
        with self._immediate() as conn:
            row = conn.execute(update, tuple(args)).fetchone()
            if row is not None:
                conn.execute(self._AUDIT, (now, actor, "approval.consumed", row[0], detail))
        return row[0] if row is not None else None

    async def _consume(self, update: str, args: Sequence[Any], actor: str, now: float,
                       detail: dict[str, Any]) -> str | None:
        """The consuming UPDATE and its audit record: one transaction, one hop to the store's thread."""
        return await self._run(self._consume_sync, update, args, actor, now, json.dumps(detail, sort_keys=True))

    async def start_writer(self) -> None:
        await self._run(self.enable_writer)

    def enable_writer(self) -> None:
        """Write recordings through a process of their own (see dbfw.store.writer); in-process if it
        cannot start."""
        if self.path == ":memory:" or self._writer is not None:
            return
        writer = RecordingWriter(self.path)
        try:
            writer.start()
        except OSError as e:
            log.warning("recording.writer_unavailable", error=str(e))
            return
        self._writer = writer

    def _record_via_writer(self, sessions: list[SessionOpened], ends: list[SessionClosed],
                           events: list[Event]) -> None:
        writer = self._writer
        if writer is None:
            self._record_sync(sessions, ends, events)
            return
        flush = (self._writer_id, secrets.token_hex(8))
        try:
            writer.write(sessions, ends, events, flush)
            return
        except OSError as e:
            # Gone: this batch and the next are written here; if it committed this batch just before
            # going, its flush mark says so and the batch is not written twice.
            log.warning("recording.writer_lost", error=str(e))
            self._writer = None
            writer.close()
        self._record_sync(sessions, ends, events, flush)

    async def record(self, sessions: list[SessionOpened], ends: list[SessionClosed],
                     events: list[Event]) -> None:
        await self._run(self._record_via_writer, sessions, ends, events)

    def _record_sync(self, sessions: list[SessionOpened], ends: list[SessionClosed],
                     events: list[Event], flush: tuple[str, str] | None = None) -> None:
        """Sessions, their events and their ends: one transaction (with the writer's flush mark)."""
        with self._immediate() as conn:
            if flush is not None:
                done = conn.execute("SELECT flush FROM recording_flushes WHERE writer = ?", (flush[0],)).fetchone()
                if done is not None and done[0] == flush[1]:
                    return
                conn.execute("INSERT INTO recording_flushes (writer, flush) VALUES (?, ?) ON CONFLICT (writer) "
                             "DO UPDATE SET flush = excluded.flush", flush)
            if sessions:
                conn.executemany(SESSION_INSERT, sessions)
            if events:
                self._seal_locked(conn)  # anything written unchained (approval events) goes first
                rows = chained_rows(events, conn.execute(LAST_SEALED).fetchone())
                conn.executemany("INSERT INTO audit_events (at, actor, action, request_id, session_id, detail, "
                                 "seal_seq, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            if ends:
                conn.executemany(SESSION_END, ends)

    def _seal_locked(self, conn: sqlite3.Connection) -> int:
        updates = seal_updates(conn.execute(UNSEALED).fetchall(), conn.execute(LAST_SEALED).fetchone())
        if updates:
            conn.executemany("UPDATE audit_events SET seal_seq = ?, prev_hash = ?, hash = ? WHERE id = ?", updates)
        return len(updates)

    def _seal_sync(self) -> int:
        with self._immediate() as conn:  # one sealer at a time, even across processes
            return self._seal_locked(conn)

    async def seal(self) -> int:
        return await self._run(self._seal_sync)

    async def _transaction(self, steps: list[tuple[str, Sequence[Any]]]) -> list[list[tuple[Any, ...]]]:
        return await self._run(self._transaction_sync, steps)
